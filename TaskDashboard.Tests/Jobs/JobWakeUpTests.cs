using Hangfire;
using Microsoft.Extensions.DependencyInjection;
using TaskDashboard.Jobs.Execution;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;

namespace TaskDashboard.Tests.Jobs;

/// <summary>
/// A worker-only process that polls Hangfire's queue only every five minutes and dispatches nothing
/// itself: a job enqueued by another process can only start soon because the enqueue's NOTIFY wakes it,
/// also after its listening connection was killed; no connection is left listening for
/// Hangfire.PostgreSql's own long polling, and Hangfire's dashboard lists each queue once. Jobs
/// announced as fewer than they are still start together: a worker that takes one wakes another.
/// </summary>
[Collection(AppCollection.Name)]
public sealed class JobWakeUpTests(TaskDashboardApp app) : IClassFixture<TaskDashboardApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task AJobEnqueuedElsewhere_WakesAnIdleWorker_LongBeforeItsNextPoll()
    {
        await using var worker = WorkerProcess.Start(app, new Dictionary<string, string>
        {
            ["Jobs:QueuePollInterval"] = "00:05:00",
            ["Jobs:DispatchInterval"] = "00:05:00",
        });
        await TaskDashboardApp.WaitUntilAsync(async () => await CountAsync($"application_name = '{JobWakeListener.ApplicationName}'") == 1, "the worker's wake-up listener", Ct);
        // Its workers looked at the (empty) queue once when they started and now wait.
        await Task.Delay(TimeSpan.FromSeconds(1), Ct);
        var client = app.CreateClient();

        var first = await client.SubmitAsync("/api/exports", """{"parameters":{}}""", Ct);
        var firstDone = await app.WaitForStateAsync(client, first.Id, TaskState.Succeeded, Ct, TimeSpan.FromSeconds(20));

        Assert.Equal(1, await CountAsync($"application_name = '{JobWakeListener.ApplicationName}'", "count(pg_terminate_backend(pid))"));
        var second = await client.SubmitAsync("/api/exports", """{"parameters":{}}""", Ct);
        var secondDone = await app.WaitForStateAsync(client, second.Id, TaskState.Succeeded, Ct, TimeSpan.FromSeconds(20));

        var listeningForHangfire = await CountAsync("query = 'LISTEN new_job'");

        // With no worker left, a third task's job stays queued: Hangfire's dashboard (/hangfire) lists
        // its queue once (both queue providers read the same table), with the job in it.
        worker.Kill();
        await client.SubmitAsync("/api/exports", """{"parameters":{}}""", Ct);
        var monitoring = app.Services.GetRequiredService<JobStorage>().GetMonitoringApi();
        await TaskDashboardApp.WaitUntilAsync(() => Task.FromResult(monitoring.Queues().Any(q => q.Length > 0)), "the third job to be queued", Ct);
        var queues = monitoring.Queues();

        Assert.Equal(queues.Select(q => q.Name).Distinct(), queues.Select(q => q.Name));
        Assert.Equal(1, queues.Single(q => q.Name == TaskPriority.Default.QueueName()).Length);
        Assert.Equal(TaskState.Succeeded, firstDone.Status);
        Assert.Equal(TaskState.Succeeded, secondDone.Status);
        Assert.Equal(0, listeningForHangfire);
    }

    [Fact]
    public async Task JobsAnnouncedAsFewer_StillAllStartAtOnce()
    {
        await using var worker = WorkerProcess.Start(app, new Dictionary<string, string>
        {
            ["Jobs:WorkerCount"] = "10",
            ["Jobs:QueuePollInterval"] = "00:05:00",
            ["Jobs:DispatchInterval"] = "00:05:00",
        });
        await TaskDashboardApp.WaitUntilAsync(async () => await CountAsync($"application_name = '{JobWakeListener.ApplicationName}'") == 1, "the worker's wake-up listener", Ct);
        await Task.Delay(TimeSpan.FromSeconds(1), Ct);
        var client = app.CreateClient();
        // Three exports of ~5 s each, held back by a delay; then given Hangfire jobs here, in one
        // transaction with the task rows, and announced as ONE job.
        var ids = new List<Guid>();
        for (var i = 0; i < 3; i++)
        {
            ids.Add((await client.SubmitAsync("/api/exports", """{"parameters":{"throttleMs":500},"delay":3600}""", Ct)).Id);
        }

        var jobs = app.Services.GetRequiredService<IBackgroundJobClient>();
        var queue = TaskPriority.Default.QueueName();
        await using (var connection = await app.Database.OpenConnectionAsync(Ct))
        await using (var transaction = await connection.BeginTransactionAsync(Ct))
        {
            foreach (var id in ids)
            {
                string jobId;
                using (JobQueueWakeUp.Defer())
                {
                    jobId = jobs.Create(Hangfire.Common.Job.FromExpression<TaskJob>(j => j.RunAsync(id, CancellationToken.None), queue), new Hangfire.States.EnqueuedState(queue));
                }

                await using var release = new Npgsql.NpgsqlCommand(
                    "UPDATE dashboard.tasks SET hangfire_job_id = @job, scheduled_at = now() WHERE id = @id", connection, transaction);
                release.Parameters.AddWithValue("job", jobId);
                release.Parameters.AddWithValue("id", id);
                await release.ExecuteNonQueryAsync(Ct);
            }

            await using var notify = new Npgsql.NpgsqlCommand($"NOTIFY {JobQueueWakeUp.Channel}, '1'", connection, transaction);
            await notify.ExecuteNonQueryAsync(Ct);
            await transaction.CommitAsync(Ct);
        }

        // The woken worker wakes another when it takes a job: all three run together. Woken only
        // once, they would run one after another (the next poll is minutes away).
        await TaskDashboardApp.WaitUntilAsync(async () =>
        {
            await using var running = app.Database.CreateCommand("SELECT count(*) FROM dashboard.tasks WHERE id = ANY(@ids) AND state = 'Running'");
            running.Parameters.AddWithValue("ids", ids.ToArray());
            return (long)(await running.ExecuteScalarAsync(Ct))! == 3;
        }, "the three exports to run at once", Ct);
        foreach (var id in ids)
        {
            Assert.Equal(TaskState.Succeeded, (await app.WaitForStateAsync(client, id, TaskState.Succeeded, Ct, TimeSpan.FromSeconds(30))).Status);
        }
    }

    private async Task<long> CountAsync(string condition, string count = "count(*)")
    {
        await using var command = app.Database.CreateCommand($"SELECT {count} FROM pg_stat_activity WHERE datname = current_database() AND {condition}");
        return (long)(await command.ExecuteScalarAsync(Ct))!;
    }
}
