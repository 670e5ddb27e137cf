using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using TaskDashboard.Jobs;
using TaskDashboard.Jobs.Database;
using TaskDashboard.Jobs.Execution;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;

namespace TaskDashboard.Tests.Database;

/// <summary>
/// A running task's row is written up to twice a second, and its lease renewed every 3 s: those writes
/// change no indexed column, so PostgreSQL writes them in place on the row's page (HOT updates) instead
/// of adding an entry to every index of the table (migrations 0012 and 0013); and the lost-job check
/// reads how long a task has waited on its job since it got it or since the job was last seen
/// waiting, which those writes do not touch (migration 0012).
/// </summary>
[Collection(AppCollection.Name)]
public sealed class TaskRowWriteTests(QuietReaperApp app) : IClassFixture<QuietReaperApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ProgressRowWrites_AreHotUpdates()
    {
        const int writes = 10;
        var lease = await app.ClaimNewExportAsync("worker-a", Ct);

        // The first write may find its row's page full and move the row to another page; the rest
        // fit beside it. With an index on any column they set, none is written in place.
        await AssertHotUpdatesAsync(writes, "writes", JobsExtensions.ForProgressBatches(app.ConnectionString), batches =>
        {
            var store = new TaskStore(app.Database, TimeProvider.System, batches);
            for (var i = 1; i <= writes; i++)
            {
                Assert.Equal([true], store.WriteProgressRows([new ProgressRowWrite(lease, i * 5, $"Stage {i % 3}", $"write {i}", """{"offset":1}""", DateTimeOffset.UtcNow)]));
            }

            return Task.CompletedTask;
        });
    }

    [Fact]
    public async Task LeaseRenewals_AreHotUpdates()
    {
        const int renewals = 10;
        var lease = await app.ClaimNewExportAsync("worker-a", Ct);

        // With an index on lease_expires_at (before migration 0013), none is written in place.
        await AssertHotUpdatesAsync(renewals, "renewals", app.ConnectionString, async session =>
        {
            var store = new TaskStore(session, TimeProvider.System);
            for (var i = 1; i <= renewals; i++)
            {
                Assert.Equal([(true, false, true)], await store.CheckLeasesAsync([(lease, true)], TimeSpan.FromMinutes(5 + i), Ct));
            }
        });
    }

    [Fact]
    public async Task LostJobCheck_CountsTheWaitFromWhenTheTaskGotItsJob_NotFromItsLastUpdate()
    {
        var store = app.Services.GetRequiredService<TaskStore>();
        var task = await app.CreateClient().SubmitAsync("/api/exports", """{"parameters":{}}""", Ct);
        await app.WaitForJobIdAsync(task.Id, Ct);

        // Submitted an hour ago, given its job just now (a backlog drained late): not yet long waiting.
        await SetAsync(task.Id, "updated_at = now() - interval '1 hour', created_at = now() - interval '1 hour'");
        Assert.DoesNotContain(await LongWaitingAsync(store), w => w.Id == task.Id);

        // Given its job an hour ago.
        await SetAsync(task.Id, "job_checked_at = now() - interval '1 hour'");
        Assert.Contains(await LongWaitingAsync(store), w => w.Id == task.Id);
    }

    [Fact]
    public async Task TaskHandedBackToItsJob_StartsWaitingOnItAgain()
    {
        var store = app.Services.GetRequiredService<TaskStore>();
        var lease = await app.ClaimNewExportAsync("worker-a", Ct);
        await SetAsync(lease.TaskId, "job_checked_at = now() - interval '1 hour'");

        // A worker shutting down hands the task back; Hangfire re-queues the same job.
        Assert.NotNull(await store.RequeueAsync(lease, "shutting down", Ct));

        var requeued = (await store.GetForExecutionAsync(lease.TaskId, Ct))!;
        Assert.Equal(TaskState.Pending, requeued.State);
        Assert.NotNull(requeued.HangfireJobId);
        Assert.DoesNotContain(await LongWaitingAsync(store), w => w.Id == lease.TaskId);
    }

    [Fact]
    public async Task JobSeenWaiting_IsNotCheckedAgainUntilItHasWaitedAsLongOnceMore()
    {
        var store = app.Services.GetRequiredService<TaskStore>();
        var reaper = ActivatorUtilities.CreateInstance<LeaseReaper>(app.Services);
        var task = await app.CreateClient().SubmitAsync("/api/exports", """{"parameters":{}}""", Ct);
        var jobId = await app.WaitForJobIdAsync(task.Id, Ct);
        await SetAsync(task.Id, "job_checked_at = now() - interval '1 hour'");

        // No worker runs here: the check finds the job still enqueued, keeps it, and looks again later.
        await reaper.RecoverOnceAsync(Ct);

        Assert.Equal(jobId, (await store.GetForExecutionAsync(task.Id, Ct))!.HangfireJobId);
        Assert.DoesNotContain(await LongWaitingAsync(store), w => w.Id == task.Id);
    }

    [Fact]
    public async Task JobsSeenWaiting_SkipsARowAnotherTransactionHolds_InsteadOfWaitingForIt()
    {
        var store = app.Services.GetRequiredService<TaskStore>();
        var task = await app.CreateClient().SubmitAsync("/api/exports", """{"parameters":{}}""", Ct);
        var jobId = await app.WaitForJobIdAsync(task.Id, Ct);
        await SetAsync(task.Id, "job_checked_at = now() - interval '1 hour'");

        // As a claim (or another node's check) would hold it.
        await using var other = await app.Database.OpenConnectionAsync(Ct);
        await using var transaction = await other.BeginTransactionAsync(Ct);
        await RowLock.WaitAsync(other, transaction, "dashboard.tasks", "id", task.Id, Ct);

        await store.JobsSeenWaitingAsync([(task.Id, jobId)], Ct).WaitAsync(TimeSpan.FromSeconds(10), Ct);
        await transaction.RollbackAsync(Ct);

        // Left for a later pass.
        Assert.Contains(await LongWaitingAsync(store), w => w.Id == task.Id);
    }

    private static Task<IReadOnlyList<(Guid Id, string JobId)>> LongWaitingAsync(TaskStore store) =>
        store.FindLongWaitingAsync(TimeSpan.FromMinutes(1), 1_000, Ct);

    private async Task SetAsync(Guid id, string set)
    {
        await using var command = app.Database.CreateCommand($"UPDATE dashboard.tasks SET {set} WHERE id = $1");
        command.Parameters.AddWithValue(id);
        Assert.Equal(1, await command.ExecuteNonQueryAsync(Ct));
    }

    /// <summary>
    /// Runs <paramref name="write"/> on a session of its own, closed at the end (a backend reports its
    /// table statistics when it exits, otherwise only some seconds after it went idle), and waits for
    /// at least all but one of its <paramref name="count"/> row writes to be counted as HOT updates.
    /// </summary>
    private async Task AssertHotUpdatesAsync(int count, string what, string connectionString, Func<NpgsqlDataSource, Task> write)
    {
        var before = await HotUpdatesAsync();
        await using (var session = NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(connectionString) { MaxPoolSize = 1 }.ConnectionString))
        {
            await write(session);
        }

        await TaskDashboardApp.WaitUntilAsync(async () => await HotUpdatesAsync() - before >= count - 1, $"at least {count - 1} of {count} {what} counted as HOT updates", Ct);
    }

    private async Task<long> HotUpdatesAsync()
    {
        await using var command = app.Database.CreateCommand("SELECT n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'dashboard.tasks'::regclass");
        return (long)(await command.ExecuteScalarAsync(Ct))!;
    }
}

/// <summary>
/// The app without its background lease reaper, whose passes (every half second here) would move a
/// waiting task's <c>job_checked_at</c> between a test's steps: the tests run a pass themselves.
/// </summary>
public sealed class QuietReaperApp : TaskDashboardApp
{
    protected override void ConfigureTestServices(IServiceCollection services)
    {
        var reaper = services.Single(d => d.ServiceType == typeof(IHostedService) && d.ImplementationType == typeof(LeaseReaper));
        services.Remove(reaper);
    }
}
