using System.Threading.Channels;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Jobs.Progress;

/// <summary>
/// Each node's one LISTEN connection on <see cref="TaskStore.EventChannel"/>. A dedicated connection
/// (a pooled one would be reset), pinged when idle, reopened with backoff when it drops; after every
/// (re)connect the bus catches up from the event log, because notifications sent while disconnected
/// are gone.
/// </summary>
public sealed class TaskEventListener(
    NpgsqlDataSource dataSource,
    [FromKeyedServices(TaskEventListener.ListenDataSourceKey)] NpgsqlDataSource listenSource,
    TaskEventBus bus,
    IOptions<ProgressOptions> options,
    ILogger<TaskEventListener> logger) : BackgroundService
{
    /// <summary>The listener connection's application_name in pg_stat_activity.</summary>
    public const string ApplicationName = "taskdashboard-listener";

    /// <summary>The key of the unpooled data source the listener opens its connection from.</summary>
    public const string ListenDataSourceKey = "listen";

    private static readonly System.Text.Json.JsonSerializerOptions Json = new(System.Text.Json.JsonSerializerDefaults.Web)
    {
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() },
    };

    private NpgsqlConnection? current;

    /// <summary>Times the listener (re)connected; for tests and health.</summary>
    public int Connections { get; private set; }

    /// <summary>Breaks the current LISTEN connection (for tests of reconnect and catch-up).</summary>
    public async Task DropConnectionAsync()
    {
        if (current is { } connection)
        {
            await using var admin = dataSource.CreateCommand("SELECT pg_terminate_backend(@pid)");
            admin.Parameters.AddWithValue("pid", connection.ProcessID);
            await admin.ExecuteNonQueryAsync();
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var settings = options.Value;
        var backoff = settings.ListenerBackoff;
        var notifications = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true });
        var pump = PumpAsync(notifications.Reader, stoppingToken);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = await OpenListeningConnectionAsync(stoppingToken);
                connection.Notification += (_, e) => notifications.Writer.TryWrite(e.Payload);
                current = connection;
                Connections++;
                backoff = settings.ListenerBackoff;
                await bus.CatchUpAsync(stoppingToken);
                while (!stoppingToken.IsCancellationRequested)
                {
                    if (!await connection.WaitAsync(settings.ListenerKeepAlive, stoppingToken))
                    {
                        await using var ping = new NpgsqlCommand("SELECT 1", connection);
                        await ping.ExecuteNonQueryAsync(stoppingToken);
                    }
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception exception)
            {
                logger.LogWarning(exception, "The event listener lost its connection; reconnecting in {Backoff}", backoff);
                current = null;
                try
                {
                    await Task.Delay(backoff, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    break;
                }

                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, settings.ListenerMaxBackoff.Ticks));
            }
        }

        notifications.Writer.TryComplete();
        await pump;
    }

    private async Task<NpgsqlConnection> OpenListeningConnectionAsync(CancellationToken cancellationToken)
    {
        var connection = await listenSource.OpenConnectionAsync(cancellationToken);
        try
        {
            await using var listen = new NpgsqlCommand($"LISTEN {TaskStore.EventChannel}", connection);
            await listen.ExecuteNonQueryAsync(cancellationToken);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    private async Task PumpAsync(ChannelReader<string> notifications, CancellationToken stoppingToken)
    {
        try
        {
            await foreach (var payload in notifications.ReadAllAsync(stoppingToken))
            {
                TaskEventNotification? notification;
                try
                {
                    notification = System.Text.Json.JsonSerializer.Deserialize<TaskEventNotification>(payload, Json);
                }
                catch (System.Text.Json.JsonException)
                {
                    continue;
                }

                if (notification is null)
                {
                    continue;
                }

                try
                {
                    await bus.OnNotifiedAsync(notification, stoppingToken);
                }
                catch (Exception exception) when (exception is not OperationCanceledException)
                {
                    // The next notification or reconnect catches up.
                    logger.LogWarning(exception, "Delivering new events of task {TaskId} failed", notification.TaskId);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
