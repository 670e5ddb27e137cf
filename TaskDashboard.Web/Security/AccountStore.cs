using System.Buffers.Text;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Identity;
using Npgsql;

namespace TaskDashboard.Web.Security;

public sealed record UserAccount(string Id, string UserName, IReadOnlyList<string> Roles, DateTimeOffset CreatedAt)
{
    public bool IsOps => Roles.Contains(SecurityOptions.OpsRole);
}

public sealed record ApiKeyInfo(Guid Id, string Name, string Prefix, DateTimeOffset CreatedAt, DateTimeOffset? LastUsedAt, DateTimeOffset? RevokedAt);

/// <summary>
/// Users (with <see cref="PasswordHasher{TUser}"/> hashes) and their API keys in PostgreSQL. An API
/// key is shown once when created; only its SHA-256 is kept.
/// </summary>
public sealed class AccountStore(NpgsqlDataSource dataSource, TimeProvider time)
{
    private const string KeyPrefix = "tdk_";
    private static readonly PasswordHasher<UserAccount> Hasher = new();

    /// <summary>Creates a user; null when the name is taken.</summary>
    public async Task<UserAccount?> CreateUserAsync(string userName, string password, IReadOnlyList<string> roles, CancellationToken cancellationToken)
    {
        var user = NewUser(userName, roles);
        await using var command = dataSource.CreateCommand("""
            INSERT INTO dashboard.users (id, user_name, password_hash, roles, created_at)
            VALUES (@id, @name, @hash, @roles, @at)
            ON CONFLICT ((lower(user_name))) DO NOTHING
            """);
        AddUserParameters(command.Parameters, user, password);
        return await command.ExecuteNonQueryAsync(cancellationToken) == 1 ? user : null;
    }

    /// <summary>Creates the first user only while there are none (several nodes may start at once).</summary>
    public async Task<bool> CreateFirstUserAsync(string userName, string password, IReadOnlyList<string> roles, CancellationToken cancellationToken)
    {
        var user = NewUser(userName, roles);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        // Serialise the "are there users yet?" check across nodes.
        await using (var lockCommand = new NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtext('dashboard.users.first'))", connection, transaction))
        {
            await lockCommand.ExecuteNonQueryAsync(cancellationToken);
        }

        await using var insert = new NpgsqlCommand("""
            INSERT INTO dashboard.users (id, user_name, password_hash, roles, created_at)
            SELECT @id, @name, @hash, @roles, @at WHERE NOT EXISTS (SELECT 1 FROM dashboard.users)
            """, connection, transaction);
        AddUserParameters(insert.Parameters, user, password);
        var created = await insert.ExecuteNonQueryAsync(cancellationToken) == 1;
        await transaction.CommitAsync(cancellationToken);
        return created;
    }

    /// <summary>The user when the password matches; null for an unknown name or a wrong password.</summary>
    public async Task<UserAccount?> CheckPasswordAsync(string userName, string password, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            SELECT id, user_name, roles, created_at, password_hash FROM dashboard.users WHERE lower(user_name) = lower(@name)
            """);
        command.Parameters.AddWithValue("name", userName);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            // Spend the same time as a real check, so response times do not reveal which names exist.
            Hasher.VerifyHashedPassword(DummyUser, DummyHash, password);
            return null;
        }

        var user = ReadUser(reader);
        var hash = reader.GetString(4);
        var verdict = Hasher.VerifyHashedPassword(user, hash, password);
        if (verdict == PasswordVerificationResult.Failed)
        {
            return null;
        }

        if (verdict == PasswordVerificationResult.SuccessRehashNeeded)
        {
            await reader.DisposeAsync();
            await using var rehash = dataSource.CreateCommand("UPDATE dashboard.users SET password_hash = @hash WHERE id = @id");
            rehash.Parameters.AddWithValue("hash", Hasher.HashPassword(user, password));
            rehash.Parameters.AddWithValue("id", user.Id);
            await rehash.ExecuteNonQueryAsync(cancellationToken);
        }

        return user;
    }

    public async Task<UserAccount?> FindUserByNameAsync(string userName, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT id, user_name, roles, created_at FROM dashboard.users WHERE lower(user_name) = lower(@name)");
        command.Parameters.AddWithValue("name", userName);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? ReadUser(reader) : null;
    }

    public async Task<IReadOnlyList<UserAccount>> ListUsersAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT id, user_name, roles, created_at FROM dashboard.users ORDER BY lower(user_name)");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var users = new List<UserAccount>();
        while (await reader.ReadAsync(cancellationToken))
        {
            users.Add(ReadUser(reader));
        }

        return users;
    }

    /// <summary>Creates an API key for the user and returns it in full: the only time it is seen.</summary>
    public async Task<(ApiKeyInfo Info, string Key)> CreateApiKeyAsync(string userId, string name, CancellationToken cancellationToken)
    {
        var key = KeyPrefix + Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));
        var info = new ApiKeyInfo(Guid.CreateVersion7(), name, key[..(KeyPrefix.Length + 6)], time.GetUtcNow(), null, null);
        await using var command = dataSource.CreateCommand("""
            INSERT INTO dashboard.api_keys (id, user_id, name, prefix, key_hash, created_at)
            VALUES (@id, @user, @name, @prefix, @hash, @at)
            """);
        command.Parameters.AddWithValue("id", info.Id);
        command.Parameters.AddWithValue("user", userId);
        command.Parameters.AddWithValue("name", name);
        command.Parameters.AddWithValue("prefix", info.Prefix);
        command.Parameters.AddWithValue("hash", HashKey(key));
        command.Parameters.AddWithValue("at", info.CreatedAt);
        await command.ExecuteNonQueryAsync(cancellationToken);
        return (info, key);
    }

    public async Task<IReadOnlyList<ApiKeyInfo>> ListApiKeysAsync(string userId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            SELECT id, name, prefix, created_at, last_used_at, revoked_at FROM dashboard.api_keys
            WHERE user_id = @user ORDER BY created_at DESC
            """);
        command.Parameters.AddWithValue("user", userId);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var keys = new List<ApiKeyInfo>();
        while (await reader.ReadAsync(cancellationToken))
        {
            keys.Add(new ApiKeyInfo(
                reader.GetGuid(0), reader.GetString(1), reader.GetString(2), reader.GetFieldValue<DateTimeOffset>(3),
                reader.IsDBNull(4) ? null : reader.GetFieldValue<DateTimeOffset>(4),
                reader.IsDBNull(5) ? null : reader.GetFieldValue<DateTimeOffset>(5)));
        }

        return keys;
    }

    /// <summary>Revokes one of the user's keys; false when the user has no such live key.</summary>
    public async Task<bool> RevokeApiKeyAsync(string userId, Guid keyId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            UPDATE dashboard.api_keys SET revoked_at = @now WHERE id = @id AND user_id = @user AND revoked_at IS NULL
            """);
        command.Parameters.AddWithValue("now", time.GetUtcNow());
        command.Parameters.AddWithValue("id", keyId);
        command.Parameters.AddWithValue("user", userId);
        return await command.ExecuteNonQueryAsync(cancellationToken) == 1;
    }

    /// <summary>The owner of a live key, or null; marks the key used (at most once a minute).</summary>
    public async Task<UserAccount?> FindUserByApiKeyAsync(string key, CancellationToken cancellationToken)
    {
        if (!key.StartsWith(KeyPrefix, StringComparison.Ordinal) || key.Length > 100)
        {
            return null;
        }

        await using var command = dataSource.CreateCommand("""
            WITH used AS (
                UPDATE dashboard.api_keys SET last_used_at = @now
                WHERE key_hash = @hash AND revoked_at IS NULL
                  AND (last_used_at IS NULL OR last_used_at < @now - interval '1 minute'))
            SELECT u.id, u.user_name, u.roles, u.created_at
            FROM dashboard.api_keys k JOIN dashboard.users u ON u.id = k.user_id
            WHERE k.key_hash = @hash AND k.revoked_at IS NULL
            """);
        command.Parameters.AddWithValue("hash", HashKey(key));
        command.Parameters.AddWithValue("now", time.GetUtcNow());
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? ReadUser(reader) : null;
    }

    private UserAccount NewUser(string userName, IReadOnlyList<string> roles) =>
        new(Guid.CreateVersion7().ToString("N"), userName, roles, time.GetUtcNow());

    private static void AddUserParameters(NpgsqlParameterCollection parameters, UserAccount user, string password)
    {
        parameters.AddWithValue("id", user.Id);
        parameters.AddWithValue("name", user.UserName);
        parameters.AddWithValue("hash", Hasher.HashPassword(user, password));
        parameters.AddWithValue("roles", user.Roles.ToArray());
        parameters.AddWithValue("at", user.CreatedAt);
    }

    public static byte[] HashKey(string key) => SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(key));

    private static UserAccount ReadUser(NpgsqlDataReader reader) =>
        new(reader.GetString(0), reader.GetString(1), reader.GetFieldValue<string[]>(2), reader.GetFieldValue<DateTimeOffset>(3));

    private static readonly UserAccount DummyUser = new("", "", [], default);
    private static readonly string DummyHash = Hasher.HashPassword(DummyUser, Guid.NewGuid().ToString());
}
