using System.Text.Json;
using Npgsql;
using NpgsqlTypes;

namespace TaskDashboard.Jobs.Tasks;

/// <summary>A task to insert, already validated and normalised.</summary>
public sealed record NewTask(
    Guid Id,
    string OwnerId,
    string Kind,
    string ParametersJson,
    TaskPriority Priority,
    int MaxAttempts,
    string? IdempotencyKey,
    string RequestHash);

/// <summary>A page of an owner's tasks, newest first.</summary>
public sealed record TaskPage(IReadOnlyList<TaskItem> Items, long TotalCount);

/// <summary>
/// Reads and writes <c>dashboard.tasks</c> and its event log. Every read takes the owner; every
/// state change is one conditional UPDATE whose allowed source states come from
/// <see cref="TaskTransitions"/>, and appends its event in the same statement.
/// </summary>
public sealed class TaskStore(NpgsqlDataSource dataSource, TimeProvider timeProvider)
{
    private const string Columns = """
        id, owner_id, kind, parameters, priority, state, progress, stage, message, attempt, max_attempts,
        errors, result, idempotency_key, request_hash, hangfire_job_id, cancel_requested_at, last_event_seq,
        created_at, updated_at, scheduled_at, started_at, completed_at, failed_at, cancelled_at
        """;

    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>
    /// Inserts the task with its first event in one statement (one commit). Returns the existing
    /// task instead when the owner already used the idempotency key.
    /// </summary>
    public async Task<(TaskItem Task, bool Created)> InsertAsync(NewTask task, CancellationToken cancellationToken)
    {
        // PostgreSQL keeps microseconds; round here so the task we return equals the stored one.
        var now = timeProvider.GetUtcNow();
        now = now.AddTicks(-(now.Ticks % 10));

        // The common case (no key) skips ON CONFLICT's speculative insertion. Only the id comes
        // back: the rest of the new row is what we just sent.
        var onConflict = task.IdempotencyKey is null
            ? ""
            : "ON CONFLICT (owner_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING";
        await using var command = dataSource.CreateCommand($"""
            WITH inserted AS (
                INSERT INTO dashboard.tasks (id, owner_id, kind, parameters, priority, state, max_attempts,
                    idempotency_key, request_hash, last_event_seq, created_at, updated_at)
                VALUES (@id, @owner, @kind, @parameters, @priority, 'Pending', @maxAttempts,
                    @idempotencyKey, @requestHash, 1, @now, @now)
                {onConflict}
                RETURNING id, state, created_at),
            created_event AS (
                INSERT INTO dashboard.task_events (task_id, seq, type, state, progress, created_at)
                SELECT id, 1, 'created', state, 0, created_at FROM inserted)
            SELECT count(*) FROM inserted
            """);
        command.Parameters.AddWithValue("id", task.Id);
        command.Parameters.AddWithValue("owner", task.OwnerId);
        command.Parameters.AddWithValue("kind", task.Kind);
        command.Parameters.AddWithValue("parameters", NpgsqlDbType.Jsonb, task.ParametersJson);
        command.Parameters.AddWithValue("priority", task.Priority.ToApiName());
        command.Parameters.AddWithValue("maxAttempts", task.MaxAttempts);
        command.Parameters.AddWithValue("idempotencyKey", NpgsqlDbType.Text, (object?)task.IdempotencyKey ?? DBNull.Value);
        command.Parameters.AddWithValue("requestHash", task.RequestHash);
        command.Parameters.AddWithValue("now", now);

        if ((long)(await command.ExecuteScalarAsync(cancellationToken))! == 1)
        {
            return (new TaskItem
            {
                Id = task.Id,
                OwnerId = task.OwnerId,
                Kind = task.Kind,
                Parameters = JsonDocument.Parse(task.ParametersJson).RootElement,
                Priority = task.Priority,
                State = TaskState.Pending,
                MaxAttempts = task.MaxAttempts,
                IdempotencyKey = task.IdempotencyKey,
                RequestHash = task.RequestHash,
                LastEventSeq = 1,
                CreatedAt = now,
                UpdatedAt = now,
            }, true);
        }

        // The key was taken: the conflicting row is committed by now (ON CONFLICT waited for it).
        await using var existing = dataSource.CreateCommand($"""
            SELECT {Columns} FROM dashboard.tasks WHERE owner_id = @owner AND idempotency_key = @idempotencyKey
            """);
        existing.Parameters.AddWithValue("owner", task.OwnerId);
        existing.Parameters.AddWithValue("idempotencyKey", task.IdempotencyKey!);
        var found = await ReadSingleAsync(existing, cancellationToken)
            ?? throw new InvalidOperationException("Idempotency conflict without a conflicting task.");
        return (found, false);
    }

    public async Task<TaskItem?> GetAsync(string ownerId, Guid id, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT {Columns} FROM dashboard.tasks WHERE id = @id AND owner_id = @owner");
        command.Parameters.AddWithValue("id", id);
        command.Parameters.AddWithValue("owner", ownerId);
        return await ReadSingleAsync(command, cancellationToken);
    }

    /// <summary>Reads a task for the engine, which acts on behalf of its owner.</summary>
    public async Task<TaskItem?> GetForExecutionAsync(Guid id, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT {Columns} FROM dashboard.tasks WHERE id = @id");
        command.Parameters.AddWithValue("id", id);
        return await ReadSingleAsync(command, cancellationToken);
    }

    public async Task<TaskPage> ListAsync(string ownerId, TaskState? state, string? kind, int offset, int limit, CancellationToken cancellationToken)
    {
        const string filter = """
            WHERE owner_id = @owner
              AND (@state::text IS NULL OR state = @state::text)
              AND (@kind::text IS NULL OR kind = @kind::text)
            """;
        await using var batch = dataSource.CreateBatch();
        var page = new NpgsqlBatchCommand($"SELECT {Columns} FROM dashboard.tasks {filter} ORDER BY created_at DESC, id DESC OFFSET @offset LIMIT @limit");
        var count = new NpgsqlBatchCommand($"SELECT count(*) FROM dashboard.tasks {filter}");
        foreach (var command in new[] { page, count })
        {
            command.Parameters.AddWithValue("owner", ownerId);
            command.Parameters.AddWithValue("state", NpgsqlDbType.Text, (object?)state?.ToString() ?? DBNull.Value);
            command.Parameters.AddWithValue("kind", NpgsqlDbType.Text, (object?)kind ?? DBNull.Value);
            batch.BatchCommands.Add(command);
        }

        page.Parameters.AddWithValue("offset", offset);
        page.Parameters.AddWithValue("limit", limit);

        await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
        var items = new List<TaskItem>();
        while (await reader.ReadAsync(cancellationToken))
        {
            items.Add(ReadTask(reader));
        }

        await reader.NextResultAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return new TaskPage(items, reader.GetInt64(0));
    }

    public async Task<IReadOnlyList<TaskEvent>> GetEventsAsync(Guid id, long afterSeq, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            SELECT task_id, seq, type, state, progress, stage, message, created_at
            FROM dashboard.task_events WHERE task_id = @id AND seq > @after ORDER BY seq
            """);
        command.Parameters.AddWithValue("id", id);
        command.Parameters.AddWithValue("after", afterSeq);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var events = new List<TaskEvent>();
        while (await reader.ReadAsync(cancellationToken))
        {
            events.Add(new TaskEvent(
                reader.GetGuid(0), reader.GetInt64(1), reader.GetString(2), Enum.Parse<TaskState>(reader.GetString(3)),
                reader.GetInt16(4), GetNullableString(reader, 5), GetNullableString(reader, 6), reader.GetFieldValue<DateTimeOffset>(7)));
        }

        return events;
    }

    /// <summary>
    /// Cancels a pending or scheduled task at once, or asks a running one to stop. Returns null when
    /// the owner has no such task; <c>Changed</c> is false when it was final or already asked to stop.
    /// </summary>
    public async Task<(TaskItem Task, bool Changed)?> RequestCancelAsync(string ownerId, Guid id, CancellationToken cancellationToken)
    {
        var cancelNow = Sql(TaskTransitions.SourcesOf(TaskState.Cancelled).Where(s => s != TaskState.Running));
        var changed = await TransitionAsync(
            id,
            sources: [TaskState.Pending, TaskState.Scheduled, TaskState.Running],
            set: $"""
                state = CASE WHEN state IN ({cancelNow}) THEN 'Cancelled' ELSE state END,
                cancelled_at = CASE WHEN state IN ({cancelNow}) THEN @now ELSE cancelled_at END,
                completed_at = CASE WHEN state IN ({cancelNow}) THEN @now ELSE completed_at END,
                message = CASE WHEN state IN ({cancelNow}) THEN 'Cancelled before it started' ELSE 'Cancellation requested' END,
                cancel_requested_at = coalesce(cancel_requested_at, @now)
                """,
            eventType: $"CASE WHEN state = 'Cancelled' THEN 'cancelled' ELSE 'cancel_requested' END",
            extraWhere: "AND owner_id = @owner AND cancel_requested_at IS NULL",
            parameters: p => p.AddWithValue("owner", ownerId),
            cancellationToken);
        if (changed is not null)
        {
            return (changed, true);
        }

        return await GetAsync(ownerId, id, cancellationToken) is { } unchanged ? (unchanged, false) : null;
    }

    /// <summary>
    /// Claims a dispatched, pending task for an attempt. Returns null when the task is not there to
    /// start (already running or final, cancelled, or its dispatch was rolled back).
    /// </summary>
    public Task<TaskItem?> TryStartAsync(Guid id, CancellationToken cancellationToken) =>
        TransitionAsync(
            id,
            TaskTransitions.SourcesOf(TaskState.Running),
            set: "state = 'Running', attempt = attempt + 1, started_at = @now, progress = 0, stage = 'Starting', message = NULL",
            eventType: "'started'",
            extraWhere: "AND hangfire_job_id IS NOT NULL AND cancel_requested_at IS NULL",
            parameters: null,
            cancellationToken);

    public Task<TaskItem?> ReportProgressAsync(Guid id, int progress, string? stage, string? message, CancellationToken cancellationToken) =>
        TransitionAsync(
            id,
            [TaskState.Running],
            set: "progress = @progress, stage = @stage, message = @message",
            eventType: "'progress'",
            extraWhere: null,
            parameters: p =>
            {
                p.AddWithValue("progress", (short)Math.Clamp(progress, 0, 100));
                p.AddWithValue("stage", NpgsqlDbType.Text, (object?)stage ?? DBNull.Value);
                p.AddWithValue("message", NpgsqlDbType.Text, (object?)message ?? DBNull.Value);
            },
            cancellationToken);

    public Task<TaskItem?> SucceedAsync(Guid id, TaskResult result, CancellationToken cancellationToken) =>
        TransitionAsync(
            id,
            TaskTransitions.SourcesOf(TaskState.Succeeded),
            set: "state = 'Succeeded', progress = 100, stage = 'Done', message = @message, result = @result, completed_at = @now",
            eventType: "'succeeded'",
            extraWhere: null,
            parameters: p =>
            {
                p.AddWithValue("message", $"Wrote {result.FileName} ({result.SizeBytes:N0} bytes)");
                p.AddWithValue("result", NpgsqlDbType.Jsonb, JsonSerializer.Serialize(result, Json));
            },
            cancellationToken);

    public Task<TaskItem?> FailAsync(Guid id, string error, CancellationToken cancellationToken) =>
        TransitionAsync(
            id,
            TaskTransitions.SourcesOf(TaskState.Failed),
            set: """
                state = 'Failed', message = @error, failed_at = @now, completed_at = @now,
                errors = errors || jsonb_build_array(jsonb_build_object('at', @now, 'attempt', attempt, 'message', @error))
                """,
            eventType: "'failed'",
            extraWhere: null,
            parameters: p => p.AddWithValue("error", error),
            cancellationToken);

    /// <summary>Ends a running task whose cancellation was requested.</summary>
    public Task<TaskItem?> CompleteCancellationAsync(Guid id, CancellationToken cancellationToken) =>
        TransitionAsync(
            id,
            [TaskState.Running],
            set: "state = 'Cancelled', message = 'Cancelled while running', cancelled_at = @now, completed_at = @now",
            eventType: "'cancelled'",
            extraWhere: "AND cancel_requested_at IS NOT NULL",
            parameters: null,
            cancellationToken);

    /// <summary>Hands a running task back to the queue (worker shutdown); the job runs it again.</summary>
    public Task<TaskItem?> RequeueAsync(Guid id, string reason, CancellationToken cancellationToken) =>
        TransitionAsync(
            id,
            TaskTransitions.SourcesOf(TaskState.Pending),
            set: "state = 'Pending', stage = 'Queued', message = @reason",
            eventType: "'requeued'",
            extraWhere: null,
            parameters: p => p.AddWithValue("reason", reason),
            cancellationToken);

    public async Task<bool> IsCancelRequestedAsync(Guid id, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT cancel_requested_at IS NOT NULL FROM dashboard.tasks WHERE id = @id");
        command.Parameters.AddWithValue("id", id);
        return await command.ExecuteScalarAsync(cancellationToken) is true;
    }

    // One statement per transition: the conditional UPDATE bumps the task's event sequence and the
    // CTE appends the event with that number, so a task's row and its log never disagree.
    private async Task<TaskItem?> TransitionAsync(
        Guid id,
        IReadOnlyList<TaskState> sources,
        string set,
        string eventType,
        string? extraWhere,
        Action<NpgsqlParameterCollection>? parameters,
        CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"""
            WITH changed AS (
                UPDATE dashboard.tasks SET {set}, updated_at = @now, last_event_seq = last_event_seq + 1
                WHERE id = @id AND state IN ({Sql(sources)}) {extraWhere}
                RETURNING {Columns}),
            logged AS (
                INSERT INTO dashboard.task_events (task_id, seq, type, state, progress, stage, message, created_at)
                SELECT id, last_event_seq, {eventType}, state, progress, stage, message, updated_at FROM changed)
            SELECT {Columns} FROM changed
            """);
        command.Parameters.AddWithValue("id", id);
        command.Parameters.AddWithValue("now", timeProvider.GetUtcNow());
        parameters?.Invoke(command.Parameters);
        return await ReadSingleAsync(command, cancellationToken);
    }

    private static string Sql(IEnumerable<TaskState> states) => string.Join(", ", states.Select(s => $"'{s}'"));

    private static async Task<TaskItem?> ReadSingleAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? ReadTask(reader) : null;
    }

    internal static TaskItem ReadTask(NpgsqlDataReader reader) => new()
    {
        Id = reader.GetGuid(0),
        OwnerId = reader.GetString(1),
        Kind = reader.GetString(2),
        Parameters = JsonDocument.Parse(reader.GetString(3)).RootElement,
        Priority = Enum.Parse<TaskPriority>(reader.GetString(4), ignoreCase: true),
        State = Enum.Parse<TaskState>(reader.GetString(5)),
        Progress = reader.GetInt16(6),
        Stage = GetNullableString(reader, 7),
        Message = GetNullableString(reader, 8),
        Attempt = reader.GetInt32(9),
        MaxAttempts = reader.GetInt32(10),
        Errors = JsonSerializer.Deserialize<List<TaskError>>(reader.GetString(11), Json) ?? [],
        Result = reader.IsDBNull(12) ? null : JsonSerializer.Deserialize<TaskResult>(reader.GetString(12), Json),
        IdempotencyKey = GetNullableString(reader, 13),
        RequestHash = GetNullableString(reader, 14),
        HangfireJobId = GetNullableString(reader, 15),
        CancelRequestedAt = GetNullableTime(reader, 16),
        LastEventSeq = reader.GetInt64(17),
        CreatedAt = reader.GetFieldValue<DateTimeOffset>(18),
        UpdatedAt = reader.GetFieldValue<DateTimeOffset>(19),
        ScheduledAt = GetNullableTime(reader, 20),
        StartedAt = GetNullableTime(reader, 21),
        CompletedAt = GetNullableTime(reader, 22),
        FailedAt = GetNullableTime(reader, 23),
        CancelledAt = GetNullableTime(reader, 24),
    };

    private static string? GetNullableString(NpgsqlDataReader reader, int ordinal) =>
        reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);

    private static DateTimeOffset? GetNullableTime(NpgsqlDataReader reader, int ordinal) =>
        reader.IsDBNull(ordinal) ? null : reader.GetFieldValue<DateTimeOffset>(ordinal);
}
