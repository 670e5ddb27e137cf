using Npgsql;
using NpgsqlTypes;

namespace TaskDashboard.Jobs.Webhooks;

public sealed record WebhookAttempt(int Attempt, DateTimeOffset At, int? StatusCode, int DurationMs, string? Error);

/// <summary>One callback of one task end, with every attempt made so far.</summary>
public sealed record WebhookDelivery(
    Guid Id,
    Guid TaskId,
    string WebhookId,
    string EventType,
    string Url,
    string Status,
    int Attempts,
    DateTimeOffset NextAttemptAt,
    int? LastStatusCode,
    string? LastError,
    DateTimeOffset CreatedAt,
    DateTimeOffset? CompletedAt,
    IReadOnlyList<WebhookAttempt> AttemptLog);

/// <summary>The delivery log: <c>dashboard.webhook_deliveries</c> and <c>dashboard.webhook_attempts</c>.</summary>
public sealed class WebhookStore(NpgsqlDataSource dataSource)
{
    /// <summary>The task's deliveries, oldest first, each with its attempts. Callers check the task's owner first.</summary>
    public async Task<IReadOnlyList<WebhookDelivery>> ListForTaskAsync(Guid taskId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            SELECT d.id, d.task_id, d.webhook_id, d.event_type, d.url, d.status, d.attempts, d.next_attempt_at,
                   d.last_status_code, d.last_error, d.created_at, d.completed_at,
                   coalesce((SELECT json_agg(json_build_object('attempt', a.attempt, 'at', a.at, 'statusCode', a.status_code,
                                                              'durationMs', a.duration_ms, 'error', a.error) ORDER BY a.attempt)
                             FROM dashboard.webhook_attempts a WHERE a.delivery_id = d.id), '[]')::text
            FROM dashboard.webhook_deliveries d WHERE d.task_id = @task ORDER BY d.created_at, d.id
            """);
        command.Parameters.AddWithValue("task", taskId);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var deliveries = new List<WebhookDelivery>();
        while (await reader.ReadAsync(cancellationToken))
        {
            deliveries.Add(new WebhookDelivery(
                reader.GetGuid(0), reader.GetGuid(1), reader.GetString(2), reader.GetString(3), reader.GetString(4), reader.GetString(5),
                reader.GetInt32(6), reader.GetFieldValue<DateTimeOffset>(7),
                reader.IsDBNull(8) ? null : reader.GetInt32(8), reader.IsDBNull(9) ? null : reader.GetString(9),
                reader.GetFieldValue<DateTimeOffset>(10), reader.IsDBNull(11) ? null : reader.GetFieldValue<DateTimeOffset>(11),
                System.Text.Json.JsonSerializer.Deserialize<List<WebhookAttempt>>(reader.GetString(12), Tasks.TaskStore.Json) ?? []));
        }

        return deliveries;
    }

    /// <summary>
    /// Sends a delivery of the task again, as a new delivery with the same <c>webhook-id</c> and body
    /// (receivers that already have it can tell). Null when the task has no such delivery.
    /// </summary>
    public async Task<Guid?> RedeliverAsync(Guid taskId, Guid deliveryId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            INSERT INTO dashboard.webhook_deliveries (id, task_id, webhook_id, event_type, url, payload, next_attempt_at, created_at)
            SELECT @newId, task_id, webhook_id, event_type, url, payload, now(), now()
            FROM dashboard.webhook_deliveries WHERE id = @id AND task_id = @task
            RETURNING id
            """);
        command.Parameters.AddWithValue("newId", Guid.CreateVersion7());
        command.Parameters.AddWithValue("id", deliveryId);
        command.Parameters.AddWithValue("task", taskId);
        return await command.ExecuteScalarAsync(cancellationToken) as Guid?;
    }

    /// <summary>
    /// Takes attempt <paramref name="attempt"/> of an in-flight delivery. The job can start before
    /// the dispatcher that enqueued it has committed (it still holds the row): the row lock waits for
    /// that commit (see <see cref="Database.RowLock"/>), so a job whose dispatch rolled back finds
    /// nothing to do and one whose dispatch committed always finds its attempt.
    /// </summary>
    internal async Task<(string Url, string Payload, string WebhookId)?> ClaimAttemptAsync(Guid id, int attempt, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await Database.RowLock.WaitAsync(connection, transaction, "dashboard.webhook_deliveries", "status", id, cancellationToken);
        await using var command = new NpgsqlCommand("""
            UPDATE dashboard.webhook_deliveries SET in_flight_since = now()
            WHERE id = @id AND status = 'InFlight' AND attempts = @done AND payload IS NOT NULL
            RETURNING url, payload, webhook_id
            """, connection, transaction);
        command.Parameters.AddWithValue("id", id);
        command.Parameters.AddWithValue("done", attempt - 1);
        (string, string, string)? claimed = null;
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            if (await reader.ReadAsync(cancellationToken))
            {
                claimed = (reader.GetString(0), reader.GetString(1), reader.GetString(2));
            }
        }

        await transaction.CommitAsync(cancellationToken);
        return claimed;
    }

    /// <summary>Logs the attempt and moves the delivery on: delivered, gone, retry at <paramref name="retryAt"/>, or failed for good.</summary>
    internal async Task RecordAttemptAsync(Guid id, int attempt, DateTimeOffset at, WebhookAttemptResult result, string status, DateTimeOffset? retryAt, CancellationToken cancellationToken)
    {
        await using var batch = dataSource.CreateBatch();
        var log = new NpgsqlBatchCommand("""
            INSERT INTO dashboard.webhook_attempts (delivery_id, attempt, at, status_code, duration_ms, error)
            VALUES (@id, @attempt, @at, @code, @ms, @error)
            ON CONFLICT (delivery_id, attempt) DO UPDATE
                SET at = EXCLUDED.at, status_code = EXCLUDED.status_code, duration_ms = EXCLUDED.duration_ms, error = EXCLUDED.error
            """);
        var move = new NpgsqlBatchCommand("""
            UPDATE dashboard.webhook_deliveries SET
                attempts = @attempt, status = @status, last_status_code = @code, last_error = @error,
                next_attempt_at = coalesce(@retryAt, next_attempt_at), in_flight_since = NULL, hangfire_job_id = NULL,
                completed_at = CASE WHEN @status IN ('Delivered', 'Failed', 'Gone') THEN @at END
            WHERE id = @id AND status = 'InFlight' AND attempts = @attempt - 1
            """);
        foreach (var command in new[] { log, move })
        {
            command.Parameters.AddWithValue("id", id);
            command.Parameters.AddWithValue("attempt", attempt);
            command.Parameters.AddWithValue("at", at);
            command.Parameters.AddWithValue("code", NpgsqlDbType.Integer, (object?)result.StatusCode ?? DBNull.Value);
            command.Parameters.AddWithValue("error", NpgsqlDbType.Text, (object?)result.Error ?? DBNull.Value);
            batch.BatchCommands.Add(command);
        }

        log.Parameters.AddWithValue("ms", (int)Math.Min(int.MaxValue, result.Duration.TotalMilliseconds));
        move.Parameters.AddWithValue("status", status);
        move.Parameters.AddWithValue("retryAt", NpgsqlDbType.TimestampTz, (object?)retryAt ?? DBNull.Value);
        await batch.ExecuteNonQueryAsync(cancellationToken);
    }
}
