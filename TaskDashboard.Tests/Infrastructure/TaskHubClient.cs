using System.Text.Json.Serialization;
using System.Threading.Channels;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using TaskDashboard.Web.Progress;

namespace TaskDashboard.Tests.Infrastructure;

/// <summary>A connected .NET SignalR client of /hubs/tasks whose received events land in <see cref="Events"/>.</summary>
public sealed class TaskHubClient : IAsyncDisposable
{
    private readonly Channel<TaskEventData> events = Channel.CreateUnbounded<TaskEventData>();

    private TaskHubClient(Uri baseAddress, string? apiKey)
    {
        Connection = new HubConnectionBuilder()
            .WithUrl(new Uri(baseAddress, "/hubs/tasks"), o => o.AccessTokenProvider = () => Task.FromResult(apiKey))
            .AddJsonProtocol(o => o.PayloadSerializerOptions.Converters.Add(new JsonStringEnumConverter()))
            .Build();
        Connection.On<TaskEventData>(nameof(IProgressClient.TaskProgressChanged), e => events.Writer.TryWrite(e));
        Connection.On<TaskEventData>(nameof(IProgressClient.TaskStateChanged), e => events.Writer.TryWrite(e));
    }

    public HubConnection Connection { get; }

    public ChannelReader<TaskEventData> Events => events.Reader;

    /// <summary>Connects with <paramref name="apiKey"/> (sent as a bearer token; null: anonymous).</summary>
    public static async Task<TaskHubClient> ConnectAsync(Uri baseAddress, string? apiKey, CancellationToken cancellationToken)
    {
        var client = new TaskHubClient(baseAddress, apiKey);
        await client.Connection.StartAsync(cancellationToken);
        return client;
    }

    public ValueTask DisposeAsync() => Connection.DisposeAsync();
}
