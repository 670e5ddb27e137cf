using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;
using TaskDashboard.Tests.Jobs;
using TaskDashboard.Web.Tasks;

namespace TaskDashboard.Tests.Scheduling;

/// <summary>One worker, one dispatch loop, and at most two tasks waiting in Hangfire's queues.</summary>
public sealed class DispatchAheadApp : ScriptedWorkerApp
{
    protected override IReadOnlyDictionary<string, string> Settings { get; } = new Dictionary<string, string>
    {
        ["Jobs:WorkerCount"] = "1",
        ["Jobs:DispatchConcurrency"] = "1",
        ["Jobs:DispatchAhead"] = "2",
    };
}

[Collection(AppCollection.Name)]
public sealed class DispatchAheadTests(DispatchAheadApp app) : IClassFixture<DispatchAheadApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Backlog_WaitsInTheOutbox_HighestPriorityFirst_AndEveryTaskRuns()
    {
        var client = app.CreateClient();
        var low = new List<TaskResponse>();
        for (var i = 0; i < 8; i++)
        {
            low.Add(await client.SubmitAsync("/api/tasks", """{"kind":"scripted","priority":"low","parameters":{"runMs":300}}""", Ct));
        }

        await app.WaitForStateAsync(client, low[0].Id, TaskState.Running, Ct);
        var critical = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","priority":"critical","parameters":{"runMs":10}}""", Ct);
        var ids = low.Select(t => t.Id).Append(critical.Id).ToArray();
        var (peakQueued, peakOutbox) = (0L, 0L);
        await TaskDashboardApp.WaitUntilAsync(async () =>
        {
            var (queued, outbox, unfinished) = await CountAsync(ids);
            (peakQueued, peakOutbox) = (Math.Max(peakQueued, queued), Math.Max(peakOutbox, outbox));
            return unfinished == 0;
        }, "every task to finish", Ct);

        var done = await app.GetTaskAsync(client, critical.Id, Ct);
        var lows = new List<TaskResponse>();
        foreach (var task in low)
        {
            lows.Add(await app.GetTaskAsync(client, task.Id, Ct));
        }

        Assert.All(lows.Append(done), t => Assert.Equal(TaskState.Succeeded, t.Status));
        Assert.InRange(peakQueued, 1, 2);
        Assert.True(peakOutbox > 0, "No task waited in the outbox: the cap was never reached.");
        // Only the low tasks already in Hangfire's queue (two) and the one running may go first.
        Assert.InRange(lows.Count(t => t.StartedAt < done.StartedAt), 1, 3);
    }

    // Waiting with a Hangfire job, waiting without one, and not finished yet.
    private async Task<(long Queued, long Outbox, long Unfinished)> CountAsync(Guid[] ids)
    {
        await using var command = app.Database.CreateCommand("""
            SELECT count(*) FILTER (WHERE state = 'Pending' AND hangfire_job_id IS NOT NULL),
                   count(*) FILTER (WHERE state = 'Pending' AND hangfire_job_id IS NULL),
                   count(*) FILTER (WHERE state NOT IN ('Succeeded', 'Failed', 'Cancelled'))
            FROM dashboard.tasks WHERE id = ANY(@ids)
            """);
        command.Parameters.AddWithValue("ids", ids);
        await using var reader = await command.ExecuteReaderAsync(Ct);
        await reader.ReadAsync(Ct);
        return (reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2));
    }
}
