using System.Diagnostics.Metrics;
using System.Threading.Channels;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using TaskDashboard.Jobs.Database;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Jobs.Progress;

/// <summary>
/// Each web node's one LISTEN connection on <see cref="TaskStore.EventChannel"/>
/// (<see cref="ChannelListener"/>): notifications are handed to the bus in order by one pump, and
/// after every (re)connect the bus catches up from the event log.
/// </summary>
public sealed class TaskEventListener(
    NpgsqlDataSource dataSource,
    [FromKeyedServices(TaskEventListener.ListenDataSourceKey)] NpgsqlDataSource listenSource,
    DatabasePools pools,
    TaskEventBus bus,
    IOptions<ProgressOptions> options,
    IMeterFactory meters,
    TimeProvider timeProvider,
    ILogger<TaskEventListener> logger) : ChannelListener(listenSource, pools, options.Value, logger)
{
    /// <summary>The listener connection's application_name in pg_stat_activity.</summary>
    public const string ApplicationName = "taskdashboard-listener";

    /// <summary>The key of the unpooled data source the listener opens its connection from.</summary>
    public const string ListenDataSourceKey = "listen";

    private readonly Histogram<double> notifyDelay = meters.Create(JobsMetrics.MeterName).CreateHistogram<double>(
        JobsMetrics.ProgressNotifyDelay, unit: "ms", description: "From an event's timestamp to its NOTIFY reaching this node's listener");

    // The pump, when it waits, runs on the connection's reader as a notification is handed over (it
    // never blocks: a read of the log awaits another connection): one thread-pool hop less per event,
    // which under a full machine waited behind the node's other work (bench/README: "the listener's pump").
    private readonly Channel<string> notifications = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true, AllowSynchronousContinuations = true });

    protected override string ChannelName => TaskStore.EventChannel;

    /// <summary>Breaks the current LISTEN connection (for tests of reconnect and catch-up).</summary>
    public Task DropConnectionAsync() => DropConnectionAsync(dataSource);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var pump = PumpAsync(notifications.Reader, stoppingToken);
        await base.ExecuteAsync(stoppingToken);
        notifications.Writer.TryComplete();
        await pump;
    }

    protected override Task OnListeningAsync(CancellationToken cancellationToken) => bus.CatchUpAsync(cancellationToken);

    protected override void OnNotification(string payload) => notifications.Writer.TryWrite(payload);

    private async Task PumpAsync(ChannelReader<string> notifications, CancellationToken stoppingToken)
    {
        try
        {
            await foreach (var payload in notifications.ReadAllAsync(stoppingToken))
            {
                TaskEventNotification? notification;
                try
                {
                    notification = TaskEventNotification.Parse(payload);
                }
                catch (System.Text.Json.JsonException)
                {
                    continue;
                }

                if (notification is null)
                {
                    continue;
                }

                // A task's created event is announced only when it is dispatched: its age says nothing here.
                if (notification is { CreatedAt: { } createdAt, Type: not "created" })
                {
                    notifyDelay.Record((timeProvider.GetUtcNow() - createdAt).TotalMilliseconds);
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
