using Npgsql;

namespace TaskDashboard.Tests.Infrastructure;

/// <summary>
/// The throwaway cluster that <c>./test</c> starts. Each app fixture gets a database of its own so
/// that dispatchers and Hangfire servers of different fixtures never see each other's tasks.
/// </summary>
public static class TestPostgres
{
    public const string EnvironmentVariable = "TASKDASHBOARD_TEST_POSTGRES";

    public static string AdminConnectionString =>
        Environment.GetEnvironmentVariable(EnvironmentVariable)
        ?? throw new InvalidOperationException(
            $"{EnvironmentVariable} is not set. Run the tests with ./test, which starts a throwaway PostgreSQL cluster.");

    /// <summary>Creates an empty database and returns its connection string.</summary>
    public static async Task<string> CreateDatabaseAsync(CancellationToken cancellationToken = default)
    {
        var name = $"td_{Guid.NewGuid():N}"[..30];
        await using (var admin = new NpgsqlConnection(AdminConnectionString))
        {
            await admin.OpenAsync(cancellationToken);
            await using var create = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", admin);
            await create.ExecuteNonQueryAsync(cancellationToken);
        }

        return new NpgsqlConnectionStringBuilder(AdminConnectionString) { Database = name }.ConnectionString;
    }
}
