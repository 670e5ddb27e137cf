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

    private TaskHubClient(Uri baseAddress)
    {
        Connection = new HubConnectionBuilder()
            .WithUrl(new Uri(baseAddress, "/hubs/tasks"))
            .AddJsonProtocol(o => o.PayloadSerializerOptions.Converters.Add(new JsonStringEnumConverter()))
            .Build();
        Connection.On<TaskEventData>(nameof(IProgressClient.TaskProgressChanged), e => events.Writer.TryWrite(e));
        Connection.On<TaskEventData>(nameof(IProgressClient.TaskStateChanged), e => events.Writer.TryWrite(e));
    }

    public HubConnection Connection { get; }

    public ChannelReader<TaskEventData> Events => events.Reader;

    public static async Task<TaskHubClient> ConnectAsync(Uri baseAddress, CancellationToken cancellationToken)
    {
        var client = new TaskHubClient(baseAddress);
        await client.Connection.StartAsync(cancellationToken);
        return client;
    }

    public ValueTask DisposeAsync() => Connection.DisposeAsync();
}
