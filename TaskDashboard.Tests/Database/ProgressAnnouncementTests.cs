using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using TaskDashboard.Jobs;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;

namespace TaskDashboard.Tests.Database;

/// <summary>
/// The progress batches commit their events first and announce them in a commit of their own, in
/// the same round trip: heard on a LISTEN connection of the test's, as a web node's listener hears them.
/// </summary>
[Collection(AppCollection.Name)]
public sealed class ProgressAnnouncementTests(TaskDashboardApp app) : IClassFixture<TaskDashboardApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task RowBatch_AnnouncesTheEventOfEachWrittenRow_AfterItIsInTheLog()
    {
        var store = app.Services.GetRequiredService<TaskStore>();
        var lease = await app.ClaimNewExportAsync("worker-a", Ct);
        await using var listener = await ProgressNotificationListener.StartAsync(app.ConnectionString, lease.TaskId, app.Database);

        Assert.Equal([true], store.WriteProgressRows([new ProgressRowWrite(lease, 40, "Exporting", "row", null, DateTimeOffset.UtcNow)]));

        var heard = Assert.Single(await listener.WaitForAsync(1));
        Assert.Equal((40, "row"), (heard.Progress, heard.Message));
        Assert.Equal(heard.Seq, (await store.GetForExecutionAsync(lease.TaskId, Ct))!.LastEventSeq);
        Assert.True(listener.WasLoggedWhenHeard(heard.Seq), "the event was not in the log when its notification arrived");
    }

    [Fact]
    public async Task FailedBatch_AnnouncesNothing_NotEvenTheSessionsEarlierEvents()
    {
        // One connection: the failing batch runs on the session whose earlier batch stashed its events.
        var connectionString = new NpgsqlConnectionStringBuilder(JobsExtensions.ForProgressBatches(app.ConnectionString)) { MaxPoolSize = 1 }.ConnectionString;
        await using var batches = NpgsqlDataSource.Create(connectionString);
        var store = new TaskStore(app.Database, TimeProvider.System, batches);
        var lease = await app.ClaimNewExportAsync("worker-a", Ct);
        await using var listener = await ProgressNotificationListener.StartAsync(app.ConnectionString, lease.TaskId);
        Assert.Equal([true], store.WriteProgressRows([new ProgressRowWrite(lease, 10, "Exporting", "logged", null, DateTimeOffset.UtcNow)]));
        Assert.Single(await listener.WaitForAsync(1));

        var failed = Assert.Throws<PostgresException>(() =>
            store.WriteProgressRows([new ProgressRowWrite(lease, 20, "Exporting", "bad checkpoint", "{not json", DateTimeOffset.UtcNow)]));

        Assert.Equal(PostgresErrorCodes.InvalidTextRepresentation, failed.SqlState);
        Assert.DoesNotContain(await store.GetEventsAsync(lease.TaskId, 0, Ct), e => e.Message == "bad checkpoint");
        await Task.Delay(300, Ct);
        Assert.Equal("logged", Assert.Single(listener.Heard).Message);

        // The session goes on: the next batch is written and announced.
        Assert.Equal([true], store.WriteProgressRows([new ProgressRowWrite(lease, 30, "Exporting", "next", null, DateTimeOffset.UtcNow)]));
        Assert.Equal(["logged", "next"], (await listener.WaitForAsync(2)).Select(n => n.Message));
    }

    [Fact]
    public async Task Announcing_LeavesTheBatchSessionsCommitsSynchronous()
    {
        // One connection, so that the session the batch and its announcement ran on is the one asked
        // below; its commits wait for their flush (./test's cluster does not by default).
        var builder = new NpgsqlConnectionStringBuilder(JobsExtensions.ForProgressBatches(app.ConnectionString)) { MaxPoolSize = 1 };
        builder.Options = $"{builder.Options} -c synchronous_commit=on";
        await using var batches = NpgsqlDataSource.Create(builder.ConnectionString);
        var store = new TaskStore(app.Database, TimeProvider.System, batches);
        var lease = await app.ClaimNewExportAsync("worker-a", Ct);
        await using var listener = await ProgressNotificationListener.StartAsync(app.ConnectionString, lease.TaskId);

        Assert.Equal([true], store.AppendProgressEvents([new ProgressEventWrite(lease, 10, "Exporting", "announced", DateTimeOffset.UtcNow)]));
        Assert.Single(await listener.WaitForAsync(1));

        // The announcement's commit does not wait for its flush; the next batch's must.
        await using var command = batches.CreateCommand("SHOW synchronous_commit");
        Assert.Equal("on", await command.ExecuteScalarAsync(Ct));
    }

    [Fact]
    public async Task EveryAnnouncement_NamesTheTasksOwner_AlsoWhenCutToTheIds()
    {
        var store = app.Services.GetRequiredService<TaskStore>();
        var lease = await app.ClaimNewExportAsync("worker-a", Ct);
        var owner = (await store.GetForExecutionAsync(lease.TaskId, Ct))!.OwnerId;
        await using var listener = await ProgressNotificationListener.StartAsync(app.ConnectionString, lease.TaskId, everyType: true);

        store.WriteProgressRows([new ProgressRowWrite(lease, 10, "Exporting", "row", null, DateTimeOffset.UtcNow)]);
        store.AppendProgressEvents([new ProgressEventWrite(lease, 20, "Exporting", new string('x', 8_000), DateTimeOffset.UtcNow)]);
        await store.FailAsync(lease, "failed on purpose", Ct);

        // A task-row batch, a live-event batch (too long for NOTIFY, so cut to the ids) and a state
        // change (and whatever the dispatcher announced of the task meanwhile).
        await TaskDashboardApp.WaitUntilAsync(
            () => Task.FromResult(listener.Heard.Any(n => n.Type is "failed" or "retry_scheduled")), "the state change's notification", Ct);
        var heard = listener.Heard.ToArray();
        Assert.All(heard, notification => Assert.Equal(owner, notification.OwnerId));
        Assert.Equal(["progress", null], heard.Where(n => n.Type is "progress" or null).Select(n => n.Type));
    }
}
