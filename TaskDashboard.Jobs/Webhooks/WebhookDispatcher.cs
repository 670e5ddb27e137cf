using System.Text.Json;
using Hangfire;
using Hangfire.Common;
using Hangfire.States;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Jobs.Webhooks;

/// <summary>
/// Turns due deliveries into Hangfire jobs, one job per attempt (the outbox pattern of the task
/// dispatcher): rows are claimed with <c>FOR UPDATE SKIP LOCKED</c> on every node; a delivery's body
/// is built once, from the ended task, before its first attempt. Attempts that never reported back
/// (their worker died) are made due again after <see cref="WebhookOptions.InFlightTimeout"/>.
/// </summary>
public sealed class WebhookDispatcher(
    NpgsqlDataSource dataSource,
    TaskStore tasks,
    IBackgroundJobClient jobClient,
    IOptionsMonitor<WebhookOptions> options,
    ILogger<WebhookDispatcher> logger) : BackgroundService
{
    public async Task<int> DispatchOnceAsync(CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var reclaim = new NpgsqlCommand("""
            UPDATE dashboard.webhook_deliveries
            SET status = 'Pending', next_attempt_at = now(), in_flight_since = NULL, hangfire_job_id = NULL,
                last_error = 'The attempt did not report back (its worker stopped); trying again.'
            WHERE status = 'InFlight' AND in_flight_since < now() - @timeout
            """, connection, transaction))
        {
            reclaim.Parameters.AddWithValue("timeout", options.CurrentValue.InFlightTimeout);
            await reclaim.ExecuteNonQueryAsync(cancellationToken);
        }

        var due = new List<(Guid Id, Guid TaskId, string EventType, int Attempts, bool HasPayload)>();
        await using (var select = new NpgsqlCommand("""
            SELECT id, task_id, event_type, attempts, payload IS NOT NULL FROM dashboard.webhook_deliveries
            WHERE status = 'Pending' AND next_attempt_at <= now()
            ORDER BY next_attempt_at LIMIT @limit
            FOR UPDATE SKIP LOCKED
            """, connection, transaction))
        {
            select.Parameters.AddWithValue("limit", options.CurrentValue.DispatchBatchSize);
            await using var reader = await select.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                due.Add((reader.GetGuid(0), reader.GetGuid(1), reader.GetString(2), reader.GetInt32(3), reader.GetBoolean(4)));
            }
        }

        if (due.Count == 0)
        {
            await transaction.CommitAsync(cancellationToken);
            return 0;
        }

        var queue = TaskPriority.High.QueueName();
        foreach (var delivery in due)
        {
            var payload = delivery.HasPayload ? null : await BuildPayloadAsync(delivery.TaskId, delivery.EventType, cancellationToken);
            var attempt = delivery.Attempts + 1;
            var jobId = jobClient.Create(Job.FromExpression<WebhookDeliveryJob>(j => j.RunAsync(delivery.Id, attempt, CancellationToken.None), queue), new EnqueuedState(queue));
            await using var update = new NpgsqlCommand("""
                UPDATE dashboard.webhook_deliveries
                SET status = 'InFlight', in_flight_since = now(), hangfire_job_id = @job, payload = coalesce(payload, @payload)
                WHERE id = @id
                """, connection, transaction);
            update.Parameters.AddWithValue("id", delivery.Id);
            update.Parameters.AddWithValue("job", jobId);
            update.Parameters.AddWithValue("payload", NpgsqlTypes.NpgsqlDbType.Text, (object?)payload ?? DBNull.Value);
            await update.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return due.Count;
    }

    /// <summary>The JSON body: what ended, how, and where the result is.</summary>
    private async Task<string> BuildPayloadAsync(Guid taskId, string eventType, CancellationToken cancellationToken)
    {
        var task = await tasks.GetForExecutionAsync(taskId, cancellationToken)
            ?? throw new InvalidOperationException($"Task {taskId} of a webhook delivery is gone.");
        var resultPath = $"/api/tasks/{task.Id}/result";
        var baseUrl = options.CurrentValue.PublicBaseUrl?.TrimEnd('/');
        return JsonSerializer.Serialize(new
        {
            type = eventType,
            timestamp = task.CompletedAt ?? task.UpdatedAt,
            data = new
            {
                taskId = task.Id,
                kind = task.Kind,
                status = task.State.ToString(),
                attempt = task.Attempt,
                createdAt = task.CreatedAt,
                startedAt = task.StartedAt,
                completedAt = task.CompletedAt,
                resultUrl = task is { State: TaskState.Succeeded, Result: not null } ? baseUrl + resultPath : null,
                result = task.Result is { } r ? new { r.FileName, r.ContentType, r.SizeBytes, r.RowCount, r.Sha256 } : null,
                error = task.State == TaskState.Succeeded ? null : task.LastError ?? task.Message,
            },
        }, TaskStore.Json);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                // A full batch means more are waiting: go again at once.
                if (await DispatchOnceAsync(stoppingToken) >= options.CurrentValue.DispatchBatchSize)
                {
                    continue;
                }
            }
            catch (Exception exception) when (exception is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                logger.LogWarning(exception, "Dispatching webhook deliveries failed; trying again");
            }

            try
            {
                await Task.Delay(options.CurrentValue.DispatchInterval, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}
