using Npgsql;
using NpgsqlTypes;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Jobs.Schedules;

/// <summary><c>dashboard.schedules</c>, every read scoped like tasks (owner, or all for ops).</summary>
public sealed class ScheduleStore(NpgsqlDataSource dataSource)
{
    private const string Columns = """
        id, owner_id, name, kind, parameters::text, priority, timeout_seconds, callback_url, cron, time_zone,
        paused, run_count, last_run_at, last_task_id, last_error, created_at
        """;

    public async Task InsertAsync(Schedule schedule, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            INSERT INTO dashboard.schedules (id, owner_id, name, kind, parameters, priority, timeout_seconds, callback_url, cron, time_zone, paused, created_at)
            VALUES (@id, @owner, @name, @kind, @parameters::jsonb, @priority, @timeout, @callback, @cron, @zone, @paused, @created)
            """);
        command.Parameters.AddWithValue("id", schedule.Id);
        command.Parameters.AddWithValue("owner", schedule.OwnerId);
        command.Parameters.AddWithValue("name", schedule.Name);
        command.Parameters.AddWithValue("kind", schedule.Kind);
        command.Parameters.AddWithValue("parameters", schedule.Parameters.GetRawText());
        command.Parameters.AddWithValue("priority", schedule.Priority);
        command.Parameters.AddWithValue("timeout", NpgsqlDbType.Integer, (object?)schedule.TimeoutSeconds ?? DBNull.Value);
        command.Parameters.AddWithValue("callback", NpgsqlDbType.Text, (object?)schedule.CallbackUrl ?? DBNull.Value);
        command.Parameters.AddWithValue("cron", schedule.Cron);
        command.Parameters.AddWithValue("zone", schedule.TimeZone);
        command.Parameters.AddWithValue("paused", schedule.Paused);
        command.Parameters.AddWithValue("created", schedule.CreatedAt);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task<Schedule?> GetAsync(TaskScope scope, Guid id, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT {Columns} FROM dashboard.schedules WHERE id = @id AND (@all OR owner_id = @owner)");
        command.Parameters.AddWithValue("id", id);
        scope.AddParameters(command.Parameters);
        return (await ReadAsync(command, cancellationToken)).SingleOrDefault();
    }

    /// <summary>For the run job, which acts for the owner.</summary>
    public async Task<Schedule?> GetForRunAsync(Guid id, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT {Columns} FROM dashboard.schedules WHERE id = @id");
        command.Parameters.AddWithValue("id", id);
        return (await ReadAsync(command, cancellationToken)).SingleOrDefault();
    }

    public async Task<IReadOnlyList<Schedule>> ListAsync(TaskScope scope, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT {Columns} FROM dashboard.schedules WHERE (@all OR owner_id = @owner) ORDER BY created_at, id");
        scope.AddParameters(command.Parameters);
        return await ReadAsync(command, cancellationToken);
    }

    public async Task<bool> SetPausedAsync(TaskScope scope, Guid id, bool paused, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("UPDATE dashboard.schedules SET paused = @paused WHERE id = @id AND (@all OR owner_id = @owner)");
        command.Parameters.AddWithValue("id", id);
        command.Parameters.AddWithValue("paused", paused);
        scope.AddParameters(command.Parameters);
        return await command.ExecuteNonQueryAsync(cancellationToken) == 1;
    }

    public async Task<bool> DeleteAsync(TaskScope scope, Guid id, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("DELETE FROM dashboard.schedules WHERE id = @id AND (@all OR owner_id = @owner)");
        command.Parameters.AddWithValue("id", id);
        scope.AddParameters(command.Parameters);
        return await command.ExecuteNonQueryAsync(cancellationToken) == 1;
    }

    internal async Task RecordRunAsync(Guid id, DateTimeOffset at, Guid? taskId, string? error, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            UPDATE dashboard.schedules SET run_count = run_count + 1, last_run_at = @at,
                last_task_id = coalesce(@task, last_task_id), last_error = @error
            WHERE id = @id
            """);
        command.Parameters.AddWithValue("id", id);
        command.Parameters.AddWithValue("at", at);
        command.Parameters.AddWithValue("task", NpgsqlDbType.Uuid, (object?)taskId ?? DBNull.Value);
        command.Parameters.AddWithValue("error", NpgsqlDbType.Text, (object?)error ?? DBNull.Value);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task<List<Schedule>> ReadAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var schedules = new List<Schedule>();
        while (await reader.ReadAsync(cancellationToken))
        {
            schedules.Add(new Schedule(
                reader.GetGuid(0), reader.GetString(1), reader.GetString(2), reader.GetString(3),
                System.Text.Json.JsonSerializer.Deserialize<System.Text.Json.JsonElement>(reader.GetString(4)),
                reader.GetString(5), reader.IsDBNull(6) ? null : reader.GetInt32(6), reader.IsDBNull(7) ? null : reader.GetString(7),
                reader.GetString(8), reader.GetString(9), reader.GetBoolean(10), reader.GetInt32(11),
                reader.IsDBNull(12) ? null : reader.GetFieldValue<DateTimeOffset>(12), reader.IsDBNull(13) ? null : reader.GetGuid(13),
                reader.IsDBNull(14) ? null : reader.GetString(14), reader.GetFieldValue<DateTimeOffset>(15)));
        }

        return schedules;
    }
}
