using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using TaskDashboard.Jobs.Database;
using TaskDashboard.Tests.Infrastructure;

namespace TaskDashboard.Tests.Database;

public sealed class MigrationRunnerTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task MigrateAsync_AppliesEachScriptOnce_WhenNodesStartTogether()
    {
        var connectionString = await TestPostgres.CreateDatabaseAsync(Ct);
        await using var dataSource = NpgsqlDataSource.Create(connectionString);

        var runs = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ =>
            new MigrationRunner(dataSource, NullLogger<MigrationRunner>.Instance).MigrateAsync(Ct)));
        var again = await new MigrationRunner(dataSource, NullLogger<MigrationRunner>.Instance).MigrateAsync(Ct);

        Assert.Equal(MigrationRunner.Scripts.Select(s => s.Version), runs.SelectMany(r => r).Order(StringComparer.Ordinal));
        Assert.Empty(again);
        await using var command = dataSource.CreateCommand("SELECT count(*) FROM dashboard.schema_migrations");
        Assert.Equal((long)MigrationRunner.Scripts.Count, await command.ExecuteScalarAsync(Ct));
    }
}
