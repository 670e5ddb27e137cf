using Microsoft.Extensions.Options;
using Npgsql;
using TaskDashboard.Jobs;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;

namespace TaskDashboard.Tests.Tasks;

/// <summary>Group commit of submissions on real PostgreSQL: what one batch does when one of its rows is refused.</summary>
[Collection(AppCollection.Name)]
public sealed class TaskInsertBatcherTests(TaskDashboardApp app) : IClassFixture<TaskDashboardApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Batch_CommitsEveryOtherTask_AndFailsOnlyTheRefusedOne_WhenOneRowBreaksTheStatement()
    {
        var store = new TaskStore(app.Database, TimeProvider.System);
        await using var batcher = new TaskInsertBatcher(store, Options.Create(new JobsOptions { SubmitWriters = 1 }));
        var taken = NewTask(Guid.CreateVersion7());
        Assert.True((await batcher.InsertAsync(taken, Ct)).Created);

        // Hold inserts back so that everything below queues up behind the first write and goes in one batch.
        await using var blocker = await app.Database.OpenConnectionAsync(Ct);
        await using var hold = await blocker.BeginTransactionAsync(Ct);
        await new NpgsqlCommand("LOCK TABLE dashboard.tasks IN SHARE MODE", blocker, hold).ExecuteNonQueryAsync(Ct);
        var first = batcher.InsertAsync(NewTask(Guid.CreateVersion7()), Ct);
        await WaitForBlockedInsertAsync();
        var good = Enumerable.Range(0, 19).Select(_ => NewTask(Guid.CreateVersion7())).ToArray();
        var goodInserts = good.Select(t => batcher.InsertAsync(t, Ct)).ToArray();
        var duplicateId = batcher.InsertAsync(NewTask(taken.Id), Ct);
        await hold.CommitAsync(Ct);

        Assert.True((await first).Created);
        Assert.All(await Task.WhenAll(goodInserts), r => Assert.True(r.Created));
        var refused = await Assert.ThrowsAsync<PostgresException>(() => duplicateId);
        Assert.Equal(PostgresErrorCodes.UniqueViolation, refused.SqlState);
        foreach (var task in good)
        {
            var stored = await store.GetForExecutionAsync(task.Id, Ct);
            Assert.Equal(TaskState.Pending, stored!.State);
            Assert.Equal(1, stored.LastEventSeq);
        }
    }

    private NewTask NewTask(Guid id) =>
        new(id, app.User.Id, "export", """{"format":"csv"}""", TaskPriority.Default, MaxAttempts: 3, TimeoutSeconds: null, IdempotencyKey: null, RequestHash: "test");

    private async Task WaitForBlockedInsertAsync() =>
        await TaskDashboardApp.WaitUntilAsync(async () =>
        {
            await using var command = app.Database.CreateCommand("""
                SELECT count(*) FROM pg_stat_activity
                WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO dashboard.tasks%'
                """);
            return (long)(await command.ExecuteScalarAsync(Ct))! > 0;
        }, "the batch insert to wait for the table lock", Ct);
}
