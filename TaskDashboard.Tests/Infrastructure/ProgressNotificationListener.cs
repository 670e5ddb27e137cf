using System.Collections.Concurrent;
using Npgsql;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Tests.Infrastructure;

/// <summary>
/// A LISTEN connection of the test's on <see cref="TaskStore.EventChannel"/>, as a web node's listener:
/// keeps one task's progress notifications, or all of them with <c>everyType</c> (and, when given a
/// data source, whether each event was already readable in the log the moment it was heard).
/// </summary>
public sealed class ProgressNotificationListener : IAsyncDisposable
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private readonly NpgsqlConnection connection;
    private readonly Guid taskId;
    private readonly NpgsqlDataSource? log;
    private readonly bool everyType;
    private readonly ConcurrentDictionary<long, bool> loggedWhenHeard = new();
    private readonly CancellationTokenSource stop = new();
    private Task pump = Task.CompletedTask;

    private ProgressNotificationListener(NpgsqlConnection connection, Guid taskId, NpgsqlDataSource? log, bool everyType) =>
        (this.connection, this.taskId, this.log, this.everyType) = (connection, taskId, log, everyType);

    public ConcurrentQueue<TaskEventNotification> Heard { get; } = new();

    public static async Task<ProgressNotificationListener> StartAsync(string connectionString, Guid taskId, NpgsqlDataSource? log = null, bool everyType = false)
    {
        var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(Ct);
        var listener = new ProgressNotificationListener(connection, taskId, log, everyType);
        connection.Notification += (_, e) => listener.OnNotification(e.Payload);
        await using (var command = new NpgsqlCommand($"LISTEN {TaskStore.EventChannel}", connection))
        {
            await command.ExecuteNonQueryAsync(Ct);
        }

        listener.pump = Task.Run(listener.PumpAsync);
        return listener;
    }

    public bool WasLoggedWhenHeard(long seq) => loggedWhenHeard.TryGetValue(seq, out var logged) && logged;

    public async Task<IReadOnlyList<TaskEventNotification>> WaitForAsync(int count)
    {
        await TaskDashboardApp.WaitUntilAsync(() => Task.FromResult(Heard.Count >= count), $"{count} notifications of the task", Ct);
        return Heard.ToArray();
    }

    private void OnNotification(string payload)
    {
        var notification = TaskEventNotification.Parse(payload)!;
        // The task's created and started events are announced too, by the dispatcher and the claim.
        if (notification.TaskId != taskId || (notification.Type != "progress" && !everyType))
        {
            return;
        }

        if (log is not null)
        {
            // On the notifying thread, before anything else is heard: is the event readable yet?
            using var command = log.CreateCommand("SELECT count(*) FROM dashboard.task_events WHERE task_id = @id AND seq = @seq");
            command.Parameters.AddWithValue("id", notification.TaskId);
            command.Parameters.AddWithValue("seq", notification.Seq);
            loggedWhenHeard[notification.Seq] = (long)command.ExecuteScalar()! == 1;
        }

        Heard.Enqueue(notification);
    }

    private async Task PumpAsync()
    {
        try
        {
            while (!stop.IsCancellationRequested)
            {
                await connection.WaitAsync(stop.Token);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await stop.CancelAsync();
        await pump;
        await connection.DisposeAsync();
        stop.Dispose();
    }
}
