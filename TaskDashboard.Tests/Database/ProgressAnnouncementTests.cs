using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using TaskDashboard.Jobs;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;

namespace TaskDashboard.Tests.Database;

/// <summary>
/// The progress batches commit their events first and announce them in a commit of their own:
/// heard on a LISTEN connection of the test's, as a web node's listener hears them.
/// </summary>
[Collection(AppCollection.Name)]
public sealed class ProgressAnnouncementTests(TaskDashboardApp app) : IClassFixture<TaskDashboardApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task RowBatch_AnnouncesTheEventOfEachWrittenRow_AfterItIsInTheLog()
    {
        var store = app.Services.GetRequiredService<TaskStore>();
        var lease = await ClaimNewTaskAsync(store);
        await using var listener = await ProgressNotificationListener.StartAsync(app.ConnectionString, lease.TaskId, app.Database);

        Assert.Equal([true], store.WriteProgressRows([new ProgressRowWrite(lease, 40, "Exporting", "row", null, DateTimeOffset.UtcNow)]));

        var heard = Assert.Single(await listener.WaitForAsync(1));
        Assert.Equal((40, "row"), (heard.Progress, heard.Message));
        Assert.Equal(heard.Seq, (await store.GetForExecutionAsync(lease.TaskId, Ct))!.LastEventSeq);
        Assert.True(listener.WasLoggedWhenHeard(heard.Seq), "the event was not in the log when its notification arrived");
    }

    [Fact]
    public async Task Announcing_LeavesTheBatchSessionsCommitsSynchronous()
    {
        // One connection, so that the session the batch and its announcement ran on is the one asked
        // below; its commits wait for their flush (./test's cluster does not by default).
        var builder = new NpgsqlConnectionStringBuilder(JobsExtensions.ForProgressBatches(app.ConnectionString)) { MaxPoolSize = 1 };
        builder.Options = $"{builder.Options} -c synchronous_commit=on";
        await using var batches = NpgsqlDataSource.Create(builder.ConnectionString);
        var appStore = app.Services.GetRequiredService<TaskStore>();
        var store = new TaskStore(app.Database, TimeProvider.System, batches);
        var lease = await ClaimNewTaskAsync(appStore);
        await using var listener = await ProgressNotificationListener.StartAsync(app.ConnectionString, lease.TaskId);

        Assert.Equal([true], store.AppendProgressEvents([new ProgressEventWrite(lease, 10, "Exporting", "announced", DateTimeOffset.UtcNow)]));
        Assert.Single(await listener.WaitForAsync(1));

        // The announcement's commit does not wait for its flush; the next batch's must.
        await using var command = batches.CreateCommand("SHOW synchronous_commit");
        Assert.Equal("on", await command.ExecuteScalarAsync(Ct));
    }

    private async Task<TaskLease> ClaimNewTaskAsync(TaskStore store)
    {
        var task = await app.CreateClient().SubmitAsync("/api/exports", """{"parameters":{}}""", Ct);
        await app.WaitForJobIdAsync(task.Id, Ct);
        var running = await store.TryClaimAsync(task.Id, "worker-a", TimeSpan.FromMinutes(1), Ct);
        return new TaskLease(task.Id, "worker-a", running!.Attempt);
    }
}
