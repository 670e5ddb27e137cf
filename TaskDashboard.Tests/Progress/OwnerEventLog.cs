using Microsoft.Extensions.DependencyInjection;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;

namespace TaskDashboard.Tests.Progress;

/// <summary>
/// The event log as the tests of the all-my-tasks watches (<c>GET /api/events</c> and the hub's)
/// use it: events written without their announcement, and what a watch sent checked against the log.
/// Events are compared by (task, seq).
/// </summary>
internal static class OwnerEventLog
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>
    /// Logs a progress event of <paramref name="task"/> without NOTIFY, as when a process dies between
    /// a batch's commit and its announcement; with a <paramref name="state"/> no task has, an event the
    /// node cannot read.
    /// </summary>
    public static async Task LogUnannouncedAsync(TaskDashboardApp app, Guid task, long seq, string state = "Scheduled")
    {
        await using var command = app.Database.CreateCommand("""
            INSERT INTO dashboard.task_events (task_id, seq, type, state, progress, stage, message, created_at)
            VALUES (@id, @seq, 'progress', @state, 0, 'Waiting', 'logged by the test', now())
            """);
        command.Parameters.AddWithValue("id", task);
        command.Parameters.AddWithValue("seq", seq);
        command.Parameters.AddWithValue("state", state);
        await command.ExecuteNonQueryAsync(Ct);
    }

    /// <summary>Mends an event <see cref="LogUnannouncedAsync"/> made unreadable.</summary>
    public static async Task MakeReadableAsync(TaskDashboardApp app, Guid task, long seq)
    {
        await using var command = app.Database.CreateCommand("UPDATE dashboard.task_events SET state = 'Scheduled' WHERE task_id = @id AND seq = @seq");
        command.Parameters.AddWithValue("id", task);
        command.Parameters.AddWithValue("seq", seq);
        await command.ExecuteNonQueryAsync(Ct);
    }

    /// <summary>
    /// The same events, each task's in order. (A replay is ordered by task within each range of the
    /// log, where the live watch had the commits' order.)
    /// </summary>
    public static void AssertSameEvents(IEnumerable<(Guid TaskId, long Seq)> expected, IReadOnlyList<(Guid TaskId, long Seq)> actual)
    {
        Assert.Equal(expected.Order(), actual.Order());
        foreach (var task in actual.GroupBy(e => e.TaskId))
        {
            var seqs = task.Select(e => e.Seq).ToList();
            Assert.Equal(seqs.Order(), seqs);
        }
    }

    /// <summary>Each task's events as the log has them: every one, once, in order.</summary>
    public static async Task AssertEveryEventOnceAsync(TaskDashboardApp app, IReadOnlyList<(Guid TaskId, long Seq)> events, IEnumerable<Guid> tasks)
    {
        var store = app.Services.GetRequiredService<TaskStore>();
        foreach (var id in tasks)
        {
            var log = await store.GetEventsAsync(id, 0, Ct);
            Assert.Equal(log.Select(e => e.Seq), events.Where(e => e.TaskId == id).Select(e => e.Seq));
        }
    }
}
