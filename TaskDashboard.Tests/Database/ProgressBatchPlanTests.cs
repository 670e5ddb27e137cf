using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using TaskDashboard.Jobs;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;

namespace TaskDashboard.Tests.Database;

/// <summary>The progress batches run on a pool of their own whose sessions plan each statement once.</summary>
[Collection(AppCollection.Name)]
public sealed class ProgressBatchPlanTests(TaskDashboardApp app) : IClassFixture<TaskDashboardApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ProgressBatches_AreNeverPlannedAgain_OnTheirOwnConnections()
    {
        // One connection, so that the session the batches ran on is the one inspected below.
        var connectionString = new NpgsqlConnectionStringBuilder(JobsExtensions.ForProgressBatches(app.ConnectionString)) { MaxPoolSize = 1 }.ConnectionString;
        await using var batches = NpgsqlDataSource.Create(connectionString);
        var store = new TaskStore(app.Database, TimeProvider.System, batches);
        var lease = new TaskLease(Guid.CreateVersion7(), "nobody", 1);

        // Batches of different sizes, as the writers send them (a plan for one size is not one for another).
        for (var size = 1; size <= 8; size++)
        {
            var rows = Enumerable.Range(0, size).Select(_ => new ProgressRowWrite(lease with { TaskId = Guid.CreateVersion7() }, 5, "Working", null, null, DateTimeOffset.UtcNow)).ToArray();
            var events = Enumerable.Range(0, size).Select(_ => new ProgressEventWrite(lease with { TaskId = Guid.CreateVersion7() }, 5, "Working", null, DateTimeOffset.UtcNow)).ToArray();
            Assert.All(store.WriteProgressRows(rows), Assert.False);
            Assert.All(store.AppendProgressEvents(events), Assert.False);
        }

        await using var connection = await batches.OpenConnectionAsync(Ct);
        await using var command = new NpgsqlCommand(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE '%unnest(%' ORDER BY name", connection);
        await using var reader = await command.ExecuteReaderAsync(Ct);
        var plans = new List<(long Generic, long Custom)>();
        while (await reader.ReadAsync(Ct))
        {
            plans.Add((reader.GetInt64(0), reader.GetInt64(1)));
        }

        // Both statements prepared (after their second use) and run on their generic plan from then on.
        Assert.Equal(2, plans.Count);
        Assert.All(plans, p =>
        {
            Assert.Equal(0, p.Custom);
            Assert.True(p.Generic >= 6, $"generic plans used: {p.Generic}");
        });
    }

    [Fact]
    public async Task TheAppsTaskStore_WritesProgressOnTheProgressPool()
    {
        var store = app.Services.GetRequiredService<TaskStore>();

        store.AppendProgressEvents([new ProgressEventWrite(new TaskLease(Guid.CreateVersion7(), "nobody", 1), 5, "Working", null, DateTimeOffset.UtcNow)]);

        // The pool keeps the connection open (idle) after the batch.
        await using var command = app.Database.CreateCommand(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = @name");
        command.Parameters.AddWithValue("name", JobsExtensions.ProgressBatchesApplicationName);
        Assert.True((long)(await command.ExecuteScalarAsync(Ct))! >= 1);
    }
}
