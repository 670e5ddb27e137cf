using System.Reflection;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace TaskDashboard.Jobs.Database;

/// <summary>
/// Applies the embedded, numbered SQL scripts in <c>Database/Migrations</c> once each, in order.
/// </summary>
/// <remarks>
/// Every node runs this at start-up. A transaction-scoped advisory lock serialises them, and
/// PostgreSQL's transactional DDL means a failed script leaves nothing half-applied.
/// </remarks>
public sealed class MigrationRunner(NpgsqlDataSource dataSource, ILogger<MigrationRunner> logger)
{
    // Any constant works; it only has to be the same on every node.
    private const long AdvisoryLockKey = 0x7461736B64617368; // "taskdash"

    /// <summary>The scripts shipped in this assembly, ordered by their numeric prefix.</summary>
    public static IReadOnlyList<(string Version, string Sql)> Scripts { get; } = LoadScripts();

    /// <summary>Applies pending scripts and returns the versions it applied.</summary>
    public async Task<IReadOnlyList<string>> MigrateAsync(CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);

        await ExecuteAsync(connection, transaction, $"SELECT pg_advisory_xact_lock({AdvisoryLockKey})", cancellationToken);
        await ExecuteAsync(connection, transaction, """
            CREATE SCHEMA IF NOT EXISTS dashboard;
            CREATE TABLE IF NOT EXISTS dashboard.schema_migrations (
                version    text        PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now())
            """, cancellationToken);

        var applied = new HashSet<string>();
        await using (var command = new NpgsqlCommand("SELECT version FROM dashboard.schema_migrations", connection, transaction))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                applied.Add(reader.GetString(0));
            }
        }

        var appliedNow = new List<string>();
        foreach (var (version, sql) in Scripts.Where(s => !applied.Contains(s.Version)))
        {
            await ExecuteAsync(connection, transaction, sql, cancellationToken);
            await using var record = new NpgsqlCommand("INSERT INTO dashboard.schema_migrations (version) VALUES ($1)", connection, transaction);
            record.Parameters.AddWithValue(version);
            await record.ExecuteNonQueryAsync(cancellationToken);
            appliedNow.Add(version);
            logger.LogInformation("Applied migration {Version}", version);
        }

        await transaction.CommitAsync(cancellationToken);
        return appliedNow;
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static List<(string Version, string Sql)> LoadScripts()
    {
        var assembly = typeof(MigrationRunner).Assembly;
        const string prefix = "TaskDashboard.Jobs.Database.Migrations.";
        return assembly.GetManifestResourceNames()
            .Where(name => name.StartsWith(prefix, StringComparison.Ordinal) && name.EndsWith(".sql", StringComparison.Ordinal))
            .Select(name => (Version: name[prefix.Length..^".sql".Length], Sql: Read(assembly, name)))
            .OrderBy(script => script.Version, StringComparer.Ordinal)
            .ToList();
    }

    private static string Read(Assembly assembly, string name)
    {
        using var stream = assembly.GetManifestResourceStream(name)!;
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
