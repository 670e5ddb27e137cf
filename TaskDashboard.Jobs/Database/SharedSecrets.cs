using System.Security.Cryptography;
using Npgsql;

namespace TaskDashboard.Jobs.Database;

/// <summary>
/// Random keys made once and kept in <c>dashboard.secrets</c>, so every node of a deployment signs
/// and checks with the same key without anyone configuring one.
/// </summary>
public sealed class SharedSecrets(NpgsqlDataSource dataSource, TimeProvider time)
{
    /// <summary>The secret called <paramref name="name"/>, created with <paramref name="length"/> random bytes if there is none yet.</summary>
    public async Task<byte[]> GetOrCreateAsync(string name, int length, CancellationToken cancellationToken)
    {
        // Two nodes creating at once: one insert wins, and both read the winner's value.
        await using var command = dataSource.CreateCommand("""
            WITH created AS (
                INSERT INTO dashboard.secrets (name, value, created_at) VALUES (@name, @value, @now)
                ON CONFLICT (name) DO NOTHING RETURNING value)
            SELECT value FROM created UNION ALL SELECT value FROM dashboard.secrets WHERE name = @name
            """);
        command.Parameters.AddWithValue("name", name);
        command.Parameters.AddWithValue("value", RandomNumberGenerator.GetBytes(length));
        command.Parameters.AddWithValue("now", time.GetUtcNow());
        return (byte[])(await command.ExecuteScalarAsync(cancellationToken))!;
    }
}
