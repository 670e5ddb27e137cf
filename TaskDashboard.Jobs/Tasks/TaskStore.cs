using System.Data;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;
using TaskDashboard.Jobs.Database;

namespace TaskDashboard.Jobs.Tasks;

/// <summary>A task to insert, already validated and normalised.</summary>
public sealed record NewTask(
    Guid Id,
    string OwnerId,
    string Kind,
    string ParametersJson,
    TaskPriority Priority,
    int MaxAttempts,
    int? TimeoutSeconds,
    string? IdempotencyKey,
    string RequestHash,
    string? CallbackUrl = null,
    DateTimeOffset? RunAt = null);

/// <summary>What both progress batches write per element: the attempt's progress, stamped <see cref="At"/>.</summary>
public interface IProgressWrite
{
    TaskLease Lease { get; }

    int Progress { get; }

    string? Stage { get; }

    string? Message { get; }

    DateTimeOffset At { get; }
}

/// <summary>A live progress event to append for the attempt holding <paramref name="Lease"/>, stamped <paramref name="At"/>.</summary>
public sealed record ProgressEventWrite(TaskLease Lease, int Progress, string? Stage, string? Message, DateTimeOffset At) : IProgressWrite;

/// <summary>A write of an attempt's progress to its task row, with its event (and checkpoint, when given).</summary>
public sealed record ProgressRowWrite(TaskLease Lease, int Progress, string? Stage, string? Message, string? CheckpointJson, DateTimeOffset At) : IProgressWrite;

/// <summary>Ended tasks in one time bucket: how many of each outcome, and the mean run time of the succeeded ones.</summary>
public sealed record TaskBucket(DateTimeOffset At, long Succeeded, long Failed, long Cancelled, double MeanSeconds);

/// <summary>What the overview page shows: task counts by state and priority, and ended tasks over time.</summary>
public sealed record TaskOverview(IReadOnlyList<(TaskState State, TaskPriority Priority, long Count)> Counts, IReadOnlyList<TaskBucket> Buckets);

/// <summary>A page of an owner's tasks, newest first.</summary>
public sealed record TaskPage(IReadOnlyList<TaskItem> Items, long TotalCount);

/// <summary>
/// Reads and writes <c>dashboard.tasks</c> and its event log. Every read takes the owner; every
/// state change is one conditional UPDATE whose allowed source states come from
/// <see cref="TaskTransitions"/>, and appends its event in the same statement.
/// </summary>
/// <param name="progressBatches">
/// Connections for the progress batches (<see cref="AppendProgressEvents"/>,
/// <see cref="WriteProgressRows"/>); the main pool when not given. See <see cref="ProgressBatchesKey"/>.
/// </param>
public sealed class TaskStore(
    NpgsqlDataSource dataSource,
    TimeProvider timeProvider,
    [FromKeyedServices(TaskStore.ProgressBatchesKey)] NpgsqlDataSource? progressBatches = null,
    ILogger<TaskStore>? logger = null,
    IOptions<JobsOptions>? options = null)
{
    /// <summary>
    /// The key of the data source the progress batches run on: a pool of their own whose sessions
    /// plan them once (<c>plan_cache_mode=force_generic_plan</c>). On the main pool nearly every
    /// batch was planned again, and planning took longer than running it (0.39 ms against 0.30 ms,
    /// pg_stat_statements in bench/live): a session prepares a statement on its second use and makes
    /// five plans for the given values before it weighs a generic one, and the main pool
    /// (2 × workers + 20 connections) spread the batches over so many sessions that few got there.
    /// </summary>
    public const string ProgressBatchesKey = "progress-batches";

    private readonly NpgsqlDataSource batchSource = progressBatches ?? dataSource;

    private const string Columns = """
        id, owner_id, kind, parameters, priority, state, progress, stage, message, attempt, max_attempts,
        errors, result, idempotency_key, request_hash, hangfire_job_id, cancel_requested_at, last_event_seq,
        created_at, updated_at, scheduled_at, started_at, completed_at, failed_at, cancelled_at,
        lease_owner, lease_expires_at, timeout_seconds, checkpoint, callback_url
        """;

    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>
    /// Inserts tasks, each with its first event, in one statement (one commit for the lot; see
    /// <see cref="TaskInsertBatcher"/>). Returns one result per task, in order: the existing task
    /// instead when its owner already used the idempotency key (also by an earlier task of the same
    /// batch). The <c>created</c> events are announced later, by the dispatcher
    /// (<see cref="AnnounceCreatedSql"/>): a NOTIFY takes a database-wide lock at commit, and one per
    /// submission halved the submission rate (measured).
    /// </summary>
    public IReadOnlyList<(TaskItem Task, bool Created)> Insert(IReadOnlyList<NewTask> tasks)
    {
        // PostgreSQL keeps microseconds; round here so the tasks we return equal the stored ones.
        var now = timeProvider.GetUtcNow();
        now = now.AddTicks(-(now.Ticks % 10));

        // A start time in the future makes a task Scheduled; the dispatcher enqueues it when due.
        var scheduled = tasks.Select(t => t.RunAt > now).ToArray();

        // A batch without keys skips ON CONFLICT's speculative insertion. Only the ids come back: the
        // rest of each new row is what we just sent.
        var onConflict = tasks.All(t => t.IdempotencyKey is null)
            ? ""
            : "ON CONFLICT (owner_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING";
        using var command = dataSource.CreateCommand($"""
            WITH inserted AS (
                INSERT INTO dashboard.tasks (id, owner_id, kind, parameters, priority, state, max_attempts,
                    timeout_seconds, idempotency_key, request_hash, callback_url, scheduled_at, last_event_seq, created_at, updated_at)
                SELECT id, owner_id, kind, parameters, priority, state, max_attempts,
                    timeout_seconds, idempotency_key, request_hash, callback_url, scheduled_at, 1, @now, @now
                FROM unnest(@ids, @owners, @kinds, @parameters, @priorities, @states, @maxAttempts,
                    @timeouts, @idempotencyKeys, @requestHashes, @callbackUrls, @runAts)
                    AS r(id, owner_id, kind, parameters, priority, state, max_attempts,
                    timeout_seconds, idempotency_key, request_hash, callback_url, scheduled_at)
                {onConflict}
                RETURNING id, state, created_at),
            created_event AS (
                INSERT INTO dashboard.task_events (task_id, seq, type, state, progress, created_at)
                SELECT id, 1, 'created', state, 0, created_at FROM inserted
                RETURNING task_id)
            SELECT task_id FROM created_event
            """);
        command.Parameters.AddWithValue("ids", tasks.Select(t => t.Id).ToArray());
        command.Parameters.AddWithValue("owners", tasks.Select(t => t.OwnerId).ToArray());
        command.Parameters.AddWithValue("kinds", tasks.Select(t => t.Kind).ToArray());
        command.Parameters.AddWithValue("parameters", NpgsqlDbType.Array | NpgsqlDbType.Jsonb, tasks.Select(t => t.ParametersJson).ToArray());
        command.Parameters.AddWithValue("priorities", tasks.Select(t => t.Priority.ToApiName()).ToArray());
        command.Parameters.AddWithValue("states", scheduled.Select(s => s ? nameof(TaskState.Scheduled) : nameof(TaskState.Pending)).ToArray());
        command.Parameters.AddWithValue("maxAttempts", tasks.Select(t => t.MaxAttempts).ToArray());
        command.Parameters.AddWithValue("timeouts", NpgsqlDbType.Array | NpgsqlDbType.Integer, tasks.Select(t => t.TimeoutSeconds).ToArray());
        command.Parameters.AddWithValue("idempotencyKeys", NpgsqlDbType.Array | NpgsqlDbType.Text, tasks.Select(t => t.IdempotencyKey).ToArray());
        command.Parameters.AddWithValue("requestHashes", tasks.Select(t => t.RequestHash).ToArray());
        command.Parameters.AddWithValue("callbackUrls", NpgsqlDbType.Array | NpgsqlDbType.Text, tasks.Select(t => t.CallbackUrl).ToArray());
        command.Parameters.AddWithValue("runAts", NpgsqlDbType.Array | NpgsqlDbType.TimestampTz,
            tasks.Select((t, i) => scheduled[i] ? t.RunAt!.Value.ToUniversalTime() : (DateTimeOffset?)null).ToArray());
        command.Parameters.AddWithValue("now", now);

        var inserted = new HashSet<Guid>();
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
            {
                inserted.Add(reader.GetGuid(0));
            }
        }

        var results = new List<(TaskItem, bool)>(tasks.Count);
        for (var i = 0; i < tasks.Count; i++)
        {
            var task = tasks[i];
            results.Add(inserted.Contains(task.Id)
                ? (new TaskItem
                {
                    Id = task.Id,
                    OwnerId = task.OwnerId,
                    Kind = task.Kind,
                    Parameters = ParseJson(task.ParametersJson),
                    Priority = task.Priority,
                    State = scheduled[i] ? TaskState.Scheduled : TaskState.Pending,
                    ScheduledAt = scheduled[i] ? task.RunAt!.Value.ToUniversalTime() : null,
                    MaxAttempts = task.MaxAttempts,
                    TimeoutSeconds = task.TimeoutSeconds,
                    IdempotencyKey = task.IdempotencyKey,
                    RequestHash = task.RequestHash,
                    CallbackUrl = task.CallbackUrl,
                    LastEventSeq = 1,
                    CreatedAt = now,
                    UpdatedAt = now,
                }, true)
                : (FindByIdempotencyKey(task), false));
        }

        return results;
    }

    // The key was taken: the conflicting row is committed by now (ON CONFLICT waited for it).
    private TaskItem FindByIdempotencyKey(NewTask task)
    {
        using var existing = dataSource.CreateCommand($"""
            SELECT {Columns} FROM dashboard.tasks WHERE owner_id = @owner AND idempotency_key = @idempotencyKey
            """);
        existing.Parameters.AddWithValue("owner", task.OwnerId);
        existing.Parameters.AddWithValue("idempotencyKey", NpgsqlDbType.Text, (object?)task.IdempotencyKey ?? DBNull.Value);
        using var reader = existing.ExecuteReader();
        return (reader.Read() ? ReadTask(reader) : null)
            ?? throw new InvalidOperationException($"Task {task.Id} was neither inserted nor found by its idempotency key.");
    }

    public async Task<TaskItem?> GetAsync(TaskScope scope, Guid id, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT {Columns} FROM dashboard.tasks WHERE id = @id AND (@all OR owner_id = @owner)");
        command.Parameters.AddWithValue("id", id);
        scope.AddParameters(command.Parameters);
        return await ReadSingleAsync(command, cancellationToken);
    }

    /// <summary>Reads a task for the engine, which acts on behalf of its owner.</summary>
    public async Task<TaskItem?> GetForExecutionAsync(Guid id, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT {Columns} FROM dashboard.tasks WHERE id = @id");
        command.Parameters.AddWithValue("id", id);
        return await ReadSingleAsync(command, cancellationToken);
    }

    /// <param name="search">Text found in the id, kind, stage, message or parameters (case-insensitive).</param>
    public async Task<TaskPage> ListAsync(TaskScope scope, TaskState? state, string? kind, int offset, int limit, CancellationToken cancellationToken, string? search = null)
    {
        const string filter = """
            WHERE (@all OR owner_id = @owner)
              AND (@state::text IS NULL OR state = @state::text)
              AND (@kind::text IS NULL OR kind = @kind::text)
              AND (@search::text IS NULL OR id::text LIKE @search || '%' OR kind ILIKE '%' || @search || '%' ESCAPE '\'
                   OR stage ILIKE '%' || @search || '%' ESCAPE '\' OR message ILIKE '%' || @search || '%' ESCAPE '\'
                   OR parameters::text ILIKE '%' || @search || '%' ESCAPE '\')
            """;
        await using var batch = dataSource.CreateBatch();
        var page = new NpgsqlBatchCommand($"SELECT {Columns} FROM dashboard.tasks {filter} ORDER BY created_at DESC, id DESC OFFSET @offset LIMIT @limit");
        var count = new NpgsqlBatchCommand($"SELECT count(*) FROM dashboard.tasks {filter}");
        foreach (var command in new[] { page, count })
        {
            scope.AddParameters(command.Parameters);
            command.Parameters.AddWithValue("state", NpgsqlDbType.Text, (object?)state?.ToString() ?? DBNull.Value);
            command.Parameters.AddWithValue("kind", NpgsqlDbType.Text, (object?)kind ?? DBNull.Value);
            command.Parameters.AddWithValue("search", NpgsqlDbType.Text, string.IsNullOrWhiteSpace(search) ? DBNull.Value : EscapeLike(search.Trim()));
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
            SELECT task_id, seq, type, state, progress, stage, message, created_at, tx::text::bigint
            FROM dashboard.task_events WHERE task_id = @id AND seq > @after ORDER BY seq
            """);
        command.Parameters.AddWithValue("id", id);
        command.Parameters.AddWithValue("after", afterSeq);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var events = new List<TaskEvent>();
        while (await reader.ReadAsync(cancellationToken))
        {
            events.Add(ReadEvent(reader));
        }

        return events;
    }

    // task_id, seq, type, state, progress, stage, message, created_at, tx::text::bigint (null before migration 0011).
    private static TaskEvent ReadEvent(NpgsqlDataReader reader) => new(
        reader.GetGuid(0), reader.GetInt64(1), reader.GetString(2), Enum.Parse<TaskState>(reader.GetString(3)),
        reader.GetInt16(4), GetNullableString(reader, 5), GetNullableString(reader, 6), reader.GetFieldValue<DateTimeOffset>(7),
        reader.IsDBNull(8) ? null : (ulong)reader.GetInt64(8));

    /// <summary>The log's position now: every event committed so far is before it.</summary>
    public async Task<LogSnapshot> GetLogPositionAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT pg_current_snapshot()::text");
        return LogSnapshot.FromPostgres((string)(await command.ExecuteScalarAsync(cancellationToken))!);
    }

    // Columns, with the number of the task's last logged event in place of the row's, which lags
    // behind the live progress events.
    private static readonly string LastLoggedColumns = Columns.Replace(
        "last_event_seq", "(SELECT coalesce(max(e.seq), 0) FROM dashboard.task_events e WHERE e.task_id = ranked.id) AS last_event_seq", StringComparison.Ordinal);

    /// <summary>
    /// The owner's unfinished tasks (Running, then Pending, then Scheduled; up to
    /// <paramref name="perState"/> of each, newest first) and the log position they were read at:
    /// the rows show exactly the events before it, and each task's <see cref="TaskItem.LastEventSeq"/>
    /// is its last event before it (not the row's, which lags behind live progress events).
    /// </summary>
    public async Task<(LogSnapshot Position, IReadOnlyList<TaskItem> Tasks)> GetUnfinishedTasksAsync(string ownerId, int perState, CancellationToken cancellationToken)
    {
        // One statement, so the rows, their last events and pg_current_snapshot() (the statement's
        // own snapshot) agree.
        await using var command = dataSource.CreateCommand($"""
            WITH position AS (SELECT pg_current_snapshot()::text AS snapshot)
            SELECT t.*, position.snapshot FROM position LEFT JOIN LATERAL (
                SELECT {LastLoggedColumns} FROM (
                    SELECT *, row_number() OVER (PARTITION BY state ORDER BY created_at DESC, id DESC) AS n
                    FROM dashboard.tasks WHERE owner_id = @owner AND state IN ('Running', 'Pending', 'Scheduled')) ranked
                WHERE n <= @perState) t ON true
            ORDER BY array_position(ARRAY['Running', 'Pending', 'Scheduled'], t.state), t.created_at DESC, t.id DESC
            """);
        command.Parameters.AddWithValue("owner", ownerId);
        command.Parameters.AddWithValue("perState", perState);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var tasks = new List<TaskItem>();
        LogSnapshot? position = null;
        while (await reader.ReadAsync(cancellationToken))
        {
            position ??= LogSnapshot.FromPostgres(reader.GetString(reader.FieldCount - 1));
            if (!reader.IsDBNull(0))
            {
                tasks.Add(ReadTask(reader));
            }
        }

        return (position!, tasks);
    }

    /// <summary>
    /// The owner's events between two log positions: logged by a transaction that
    /// <paramref name="after"/> does not show as committed and <paramref name="upTo"/> does (now when
    /// null), except those of a task in <paramref name="delivered"/> up to the number given there;
    /// ordered by task and number, after <paramref name="afterKey"/> in that order, at most
    /// <paramref name="limit"/>; with the position they run up to. Paging with the same
    /// <paramref name="upTo"/> reads the same events however many commit meanwhile. Per task, events
    /// commit in number order, so each range holds the next events of each task, without gaps.
    /// </summary>
    public async Task<(LogSnapshot UpTo, IReadOnlyList<TaskEvent> Events)> GetOwnerEventsAsync(
        string ownerId, LogSnapshot after, IReadOnlyDictionary<Guid, long> delivered, LogSnapshot? upTo, (Guid TaskId, long Seq)? afterKey, int limit,
        CancellationToken cancellationToken)
    {
        // The index on tx finds the transactions after `after`: those from its xmax on, and those it
        // lists as in progress. Rows of transactions still in progress (or aborted) are invisible
        // to the statement anyway; pg_visible_in_snapshot drops those committed after `upTo`.
        await using var command = dataSource.CreateCommand("""
            WITH bounds AS (SELECT coalesce(@upTo::pg_snapshot, pg_current_snapshot()) AS up_to, @after::pg_snapshot AS after)
            SELECT e.task_id, e.seq, e.type, e.state, e.progress, e.stage, e.message, e.created_at, e.tx::text::bigint, bounds.up_to::text
            FROM bounds LEFT JOIN LATERAL (
                SELECT e.* FROM dashboard.task_events e JOIN dashboard.tasks t ON t.id = e.task_id
                WHERE (e.tx >= pg_snapshot_xmax(bounds.after) OR e.tx = ANY(ARRAY(SELECT pg_snapshot_xip(bounds.after))))
                  AND pg_visible_in_snapshot(e.tx, bounds.up_to)
                  AND t.owner_id = @owner AND (e.task_id, e.seq) > (@afterTask, @afterSeq)
                  AND NOT EXISTS (SELECT FROM unnest(@deliveredTasks, @deliveredSeqs) AS d(task_id, seq) WHERE d.task_id = e.task_id AND e.seq <= d.seq)
                ORDER BY e.task_id, e.seq LIMIT @limit) e ON true
            ORDER BY e.task_id, e.seq
            """);
        command.Parameters.AddWithValue("deliveredTasks", delivered.Keys.ToArray());
        command.Parameters.AddWithValue("deliveredSeqs", delivered.Values.ToArray());
        command.Parameters.AddWithValue("upTo", NpgsqlDbType.Text, (object?)upTo?.ToPostgres() ?? DBNull.Value);
        command.Parameters.AddWithValue("after", after.ToPostgres());
        command.Parameters.AddWithValue("owner", ownerId);
        command.Parameters.AddWithValue("afterTask", afterKey?.TaskId ?? Guid.Empty);
        command.Parameters.AddWithValue("afterSeq", afterKey?.Seq ?? 0L);
        command.Parameters.AddWithValue("limit", limit);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var events = new List<TaskEvent>();
        LogSnapshot? position = null;
        while (await reader.ReadAsync(cancellationToken))
        {
            position ??= LogSnapshot.FromPostgres(reader.GetString(9));
            if (!reader.IsDBNull(0))
            {
                events.Add(ReadEvent(reader));
            }
        }

        return (position!, events);
    }

    /// <summary>
    /// The number of the task's last logged event (0: none). The row's <see cref="TaskItem.LastEventSeq"/>
    /// may be behind it while the task runs: live progress events are logged without touching the row.
    /// </summary>
    public async Task<long> GetLastEventSeqAsync(Guid id, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT coalesce(max(seq), 0) FROM dashboard.task_events WHERE task_id = @id");
        command.Parameters.AddWithValue("id", id);
        return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>The owners' tasks (every owner's when null) that logged events since a time, with the first such event's number.</summary>
    public async Task<IReadOnlyList<(Guid TaskId, long FirstSeq)>> GetTasksWithEventsSinceAsync(string[]? ownerIds, DateTimeOffset since, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            SELECT e.task_id, min(e.seq) FROM dashboard.task_events e JOIN dashboard.tasks t ON t.id = e.task_id
            WHERE (@owners::text[] IS NULL OR t.owner_id = ANY(@owners)) AND e.created_at >= @since
            GROUP BY e.task_id
            """);
        command.Parameters.AddWithValue("owners", NpgsqlDbType.Array | NpgsqlDbType.Text, (object?)ownerIds ?? DBNull.Value);
        command.Parameters.AddWithValue("since", since);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var found = new List<(Guid, long)>();
        while (await reader.ReadAsync(cancellationToken))
        {
            found.Add((reader.GetGuid(0), reader.GetInt64(1)));
        }

        return found;
    }

    /// <summary>
    /// Cancels a pending or scheduled task at once, or asks a running one to stop. Returns null when
    /// the owner has no such task; <c>Changed</c> is false when it was final or already asked to stop.
    /// </summary>
    public async Task<(TaskItem Task, bool Changed)?> RequestCancelAsync(TaskScope scope, Guid id, CancellationToken cancellationToken)
    {
        var cancelNow = Sql(TaskTransitions.SourcesOf(TaskState.Cancelled).Where(s => s != TaskState.Running));
        var changed = await TransitionAsync(
            id,
            sources: [TaskState.Pending, TaskState.Scheduled, TaskState.Running],
            set: $"""
                state = CASE WHEN state IN ({cancelNow}) THEN 'Cancelled' ELSE state END,
                cancelled_at = CASE WHEN state IN ({cancelNow}) THEN @now ELSE cancelled_at END,
                completed_at = CASE WHEN state IN ({cancelNow}) THEN @now ELSE completed_at END,
                message = CASE WHEN state NOT IN ({cancelNow}) THEN 'Cancellation requested'
                               WHEN started_at IS NULL THEN 'Cancelled before it started'
                               ELSE 'Cancelled while waiting to run again' END,
                cancel_requested_at = coalesce(cancel_requested_at, @now)
                """,
            eventType: $"CASE WHEN state = 'Cancelled' THEN 'cancelled' ELSE 'cancel_requested' END",
            extraWhere: "AND (@all OR owner_id = @owner) AND cancel_requested_at IS NULL",
            parameters: scope.AddParameters,
            cancellationToken);
        if (changed is not null)
        {
            return (changed, true);
        }

        return await GetAsync(scope, id, cancellationToken) is { } unchanged ? (unchanged, false) : null;
    }

    /// <summary>
    /// How many tasks wait (Pending or Scheduled): the owner's and everyone's, each counted only up
    /// to its cap, so a flood costs no more than the cap to count.
    /// </summary>
    public async Task<(long Owner, long Total)> CountWaitingAsync(string ownerId, int ownerCap, int? totalCap, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            SELECT (SELECT count(*) FROM (SELECT 1 FROM dashboard.tasks
                        WHERE owner_id = @owner AND state IN ('Pending', 'Scheduled') LIMIT @ownerCap) o),
                   CASE WHEN @totalCap::int IS NULL THEN -1 ELSE
                       (SELECT count(*) FROM (SELECT 1 FROM dashboard.tasks
                        WHERE state IN ('Pending', 'Scheduled') LIMIT @totalCap) t) END
            """);
        command.Parameters.AddWithValue("owner", ownerId);
        command.Parameters.AddWithValue("ownerCap", ownerCap);
        command.Parameters.AddWithValue("totalCap", NpgsqlDbType.Integer, (object?)totalCap ?? DBNull.Value);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    /// <summary>Tasks by state and priority, and per time bucket since <paramref name="since"/>: how many ended and how long they ran.</summary>
    public async Task<TaskOverview> GetOverviewAsync(TaskScope scope, DateTimeOffset since, TimeSpan bucket, CancellationToken cancellationToken)
    {
        await using var batch = dataSource.CreateBatch();
        var counts = new NpgsqlBatchCommand("""
            SELECT state, priority, count(*) FROM dashboard.tasks WHERE (@all OR owner_id = @owner) GROUP BY state, priority
            """);
        var buckets = new NpgsqlBatchCommand("""
            SELECT date_bin(@bucket, completed_at, @since) AS at,
                   count(*) FILTER (WHERE state = 'Succeeded'), count(*) FILTER (WHERE state = 'Failed'),
                   count(*) FILTER (WHERE state = 'Cancelled'),
                   coalesce(avg(extract(epoch FROM completed_at - started_at)) FILTER (WHERE state = 'Succeeded'), 0)::float8
            FROM dashboard.tasks
            WHERE (@all OR owner_id = @owner) AND completed_at >= @since
            GROUP BY 1 ORDER BY 1
            """);
        scope.AddParameters(counts.Parameters);
        scope.AddParameters(buckets.Parameters);
        buckets.Parameters.AddWithValue("bucket", bucket);
        buckets.Parameters.AddWithValue("since", since);
        batch.BatchCommands.Add(counts);
        batch.BatchCommands.Add(buckets);

        await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
        var byState = new List<(TaskState State, TaskPriority Priority, long Count)>();
        while (await reader.ReadAsync(cancellationToken))
        {
            TaskPriorities.TryParse(reader.GetString(1), out var priority);
            byState.Add((Enum.Parse<TaskState>(reader.GetString(0)), priority, reader.GetInt64(2)));
        }

        await reader.NextResultAsync(cancellationToken);
        var series = new List<TaskBucket>();
        while (await reader.ReadAsync(cancellationToken))
        {
            series.Add(new TaskBucket(reader.GetFieldValue<DateTimeOffset>(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3), reader.GetDouble(4)));
        }

        return new TaskOverview(byState, series);
    }

    private static string EscapeLike(string text) => text.Replace("\\", "\\\\").Replace("%", "\\%").Replace("_", "\\_");

    /// <summary>
    /// Claims a dispatched task whose time has come for a new attempt under a fresh lease. Returns
    /// null when it is not there to start: running under another lease, final, cancelled, not yet
    /// due, or its dispatch was rolled back. A resumed attempt keeps its progress and checkpoint.
    /// </summary>
    public async Task<TaskItem?> TryClaimAsync(Guid id, string owner, TimeSpan leaseDuration, CancellationToken cancellationToken) =>
        (await TryClaimAsync(id, owner, leaseDuration, NoLimits, new ClaimTries(), cancellationToken)).Task;

    /// <summary>
    /// Claims the task as above, but a task of a kind in <paramref name="limits"/> only while fewer
    /// than its limit run in the whole cluster (<c>NoSlot</c> otherwise). The count and the claim
    /// happen under a transaction-scoped advisory lock per kind, so two workers cannot both take the
    /// last slot; a dead worker's slot frees itself when the reaper takes its task back.
    /// </summary>
    /// <remarks>
    /// A claim tried again with the same <paramref name="tries"/> after its connection was lost
    /// first asks whether the last try's commit went through unanswered (a database restart or a
    /// network drop between the commit and its answer): then that try's claim is the result.
    /// Claiming afresh would find the task Running under this very lease and do nothing, leaving it
    /// to the reaper when the lease lapsed, at the cost of an attempt.
    /// </remarks>
    public async Task<(TaskItem? Task, bool NoSlot)> TryClaimAsync(
        Guid id, string owner, TimeSpan leaseDuration, IReadOnlyDictionary<string, int> limits, ClaimTries tries, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        // A job can start before the dispatcher that created it has committed the job id (it holds
        // the row FOR UPDATE meanwhile), and a lone UPDATE would judge the row by its snapshot and
        // skip it without waiting: lock the row first (see RowLock), then claim. The lock also waits
        // for a last try whose session has not yet noticed that its connection is gone.
        var (kind, transactionId) = await RowLock.WaitAsync(connection, transaction, "dashboard.tasks", "kind", id, cancellationToken);
        if (tries.Unanswered is var (sent, sentClaim))
        {
            tries.Unanswered = null;
            if (await TransactionStatusAsync(connection, sent, cancellationToken) == "committed")
            {
                await transaction.RollbackAsync(cancellationToken);
                return (sentClaim, false);
            }
        }

        if (kind is not null && limits.TryGetValue(kind, out var limit))
        {
            await using var gate = new NpgsqlCommand("""
                SELECT pg_advisory_xact_lock(hashtext('taskdashboard-slots:' || @kind));
                SELECT count(*) FROM dashboard.tasks WHERE kind = @kind AND state = 'Running';
                """, connection, transaction);
            gate.Parameters.AddWithValue("kind", kind);
            await using (var reader = await gate.ExecuteReaderAsync(cancellationToken))
            {
                // The count is a statement after the lock: it sees every claim committed before the lock was granted.
                await reader.NextResultAsync(cancellationToken);
                await reader.ReadAsync(cancellationToken);
                if (reader.GetInt64(0) >= limit)
                {
                    await reader.DisposeAsync();
                    await transaction.RollbackAsync(cancellationToken);
                    return (null, true);
                }
            }
        }

        var claimed = await TryClaimAsync(id, owner, leaseDuration, (connection, transaction), cancellationToken);
        tries.Unanswered = claimed is null ? null : (transactionId, claimed);
        await transaction.CommitAsync(cancellationToken);
        return (claimed, false);
    }

    private static readonly IReadOnlyDictionary<string, int> NoLimits = new Dictionary<string, int>();

    /// <summary>Hands a task that found no free slot back to the dispatcher, which enqueues it again when one frees.</summary>
    public async Task ReturnToQueueAsync(Guid id, string message, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            UPDATE dashboard.tasks SET hangfire_job_id = NULL, message = @message, updated_at = @now
            WHERE id = @id AND state IN ('Pending', 'Scheduled') AND hangfire_job_id IS NOT NULL
            """);
        command.Parameters.AddWithValue("id", id);
        command.Parameters.AddWithValue("message", message);
        command.Parameters.AddWithValue("now", timeProvider.GetUtcNow());
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private Task<TaskItem?> TryClaimAsync(Guid id, string owner, TimeSpan leaseDuration, (NpgsqlConnection, NpgsqlTransaction) on, CancellationToken cancellationToken) =>
        TransitionAsync(
            id,
            TaskTransitions.SourcesOf(TaskState.Running),
            set: """
                state = 'Running', attempt = attempt + 1, lease_owner = @owner, lease_expires_at = @now + @lease,
                started_at = coalesce(started_at, @now), scheduled_at = NULL,
                stage = CASE WHEN checkpoint IS NULL THEN 'Starting' ELSE 'Resuming' END,
                message = CASE WHEN checkpoint IS NULL THEN NULL ELSE 'Resuming from the last checkpoint' END
                """,
            eventType: "'started'",
            extraWhere: "AND hangfire_job_id IS NOT NULL AND cancel_requested_at IS NULL AND (scheduled_at IS NULL OR scheduled_at <= @now)",
            parameters: p =>
            {
                p.AddWithValue("owner", owner);
                p.AddWithValue("lease", leaseDuration);
            },
            cancellationToken,
            on);

    /// <summary>
    /// Reads whether each lease is still held and whether a cancel was asked for its task, and
    /// extends the leases marked <c>Renew</c> to <paramref name="leaseDuration"/> from now, in one
    /// statement: one result per lease, in order (a task that is gone holds no lease).
    /// </summary>
    /// <remarks>
    /// A lease whose row another statement has locked (a progress batch writing it, say) is not
    /// renewed this time (<c>Renewed</c> false; try again): a renewal never waits for a row lock, so
    /// it cannot deadlock with the progress batches, which lock several of the same rows in their
    /// own order.
    /// </remarks>
    public async Task<IReadOnlyList<(bool Held, bool CancelRequested, bool Renewed)>> CheckLeasesAsync(
        IReadOnlyList<(TaskLease Lease, bool Renew)> leases, TimeSpan leaseDuration, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            WITH input AS (
                SELECT * FROM unnest(@ids, @owners, @attempts, @renew) WITH ORDINALITY AS i(id, owner, attempt, renew, ord)),
            renewable AS (
                SELECT t.id FROM dashboard.tasks t JOIN input i ON i.id = t.id AND i.renew
                WHERE t.state = 'Running' AND t.lease_owner = i.owner AND t.attempt = i.attempt
                FOR UPDATE OF t SKIP LOCKED),
            renewed AS (
                UPDATE dashboard.tasks t SET lease_expires_at = @now + @lease
                FROM renewable r WHERE t.id = r.id
                RETURNING t.id, t.cancel_requested_at IS NOT NULL AS cancel_requested)
            SELECT r.id IS NOT NULL OR coalesce(t.state = 'Running' AND t.lease_owner = i.owner AND t.attempt = i.attempt, false),
                coalesce(r.cancel_requested, t.cancel_requested_at IS NOT NULL, false),
                r.id IS NOT NULL
            FROM input i
            LEFT JOIN dashboard.tasks t ON t.id = i.id
            LEFT JOIN renewed r ON r.id = i.id
            ORDER BY i.ord
            """);
        command.Parameters.AddWithValue("ids", leases.Select(l => l.Lease.TaskId).ToArray());
        command.Parameters.AddWithValue("owners", leases.Select(l => l.Lease.Owner).ToArray());
        command.Parameters.AddWithValue("attempts", leases.Select(l => l.Lease.Attempt).ToArray());
        command.Parameters.AddWithValue("renew", leases.Select(l => l.Renew).ToArray());
        command.Parameters.AddWithValue("now", timeProvider.GetUtcNow());
        command.Parameters.AddWithValue("lease", leaseDuration);
        var states = new List<(bool, bool, bool)>(leases.Count);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            states.Add((reader.GetBoolean(0), reader.GetBoolean(1), reader.GetBoolean(2)));
        }

        return states;
    }

    /// <summary>Writes the attempt's progress to its row with its event; false when the lease is lost.</summary>
    public bool ReportProgress(TaskLease lease, int progress, string? stage, string? message) =>
        WriteProgressRows([new ProgressRowWrite(lease, progress, stage, message, null, timeProvider.GetUtcNow())])[0];

    /// <summary>
    /// Appends live progress events (see <see cref="Execution.ProgressEventWriter"/>) without writing
    /// the task rows (which are updated at most ~2/s), in one statement and one commit, then announces
    /// them on <see cref="EventChannel"/> in a short commit of its own (see <c>ExecuteProgressBatch</c>); one result
    /// per event, in order: false when that attempt's lease is lost. Two events of one task in a
    /// batch get consecutive numbers in the order given.
    /// </summary>
    public IReadOnlyList<bool> AppendProgressEvents(IReadOnlyList<ProgressEventWrite> events)
    {
        var sql = $"""
            WITH held AS (
                SELECT r.*, t.state FROM unnest(@ids, @owners, @attempts, @progress, @stages, @messages, @ats)
                    WITH ORDINALITY AS r(id, owner, attempt, progress, stage, message, created_at, ord)
                JOIN dashboard.tasks t ON t.id = r.id AND t.state = 'Running' AND t.lease_owner = r.owner AND t.attempt = r.attempt),
            logged AS (
                INSERT INTO dashboard.task_events (task_id, seq, type, state, progress, stage, message, created_at)
                SELECT h.id,
                    (SELECT coalesce(max(e.seq), 0) FROM dashboard.task_events e WHERE e.task_id = h.id)
                        + row_number() OVER (PARTITION BY h.id ORDER BY h.ord),
                    'progress', h.state, h.progress, h.stage, h.message, h.created_at
                FROM held h
                RETURNING task_id, seq, type, state, progress, stage, message, created_at, tx),
            {Announced("logged")},
            {Stashed("announced")}
            SELECT ord, txid_current() FROM stashed LEFT JOIN held ON true
            """;
        return ExecuteProgressBatch(() =>
        {
            var command = new NpgsqlBatchCommand(sql);
            AddProgressColumns(command.Parameters, events);
            return command;
        }, events.Count);
    }

    /// <summary>
    /// Writes attempts' progress (and checkpoints) to their task rows, each with its logged event, in
    /// one statement and one commit, then announces the events as <see cref="AppendProgressEvents"/>
    /// does (see <see cref="Execution.ProgressEventWriter"/>);
    /// one result per write, in order: false when that attempt's lease is lost. At most one write per task.
    /// </summary>
    public IReadOnlyList<bool> WriteProgressRows(IReadOnlyList<ProgressRowWrite> rows)
    {
        var sql = $"""
            WITH input AS (
                SELECT * FROM unnest(@ids, @owners, @attempts, @progress, @stages, @messages, @checkpoints, @ats)
                    WITH ORDINALITY AS r(id, owner, attempt, progress, stage, message, checkpoint, at, ord)),
            changed AS (
                UPDATE dashboard.tasks t SET progress = i.progress, stage = i.stage, message = i.message,
                    checkpoint = coalesce(i.checkpoint, t.checkpoint), updated_at = i.at,
                    last_event_seq = (SELECT coalesce(max(e.seq), 0) + 1 FROM dashboard.task_events e WHERE e.task_id = t.id)
                FROM input i
                WHERE t.id = i.id AND t.state = 'Running' AND t.lease_owner = i.owner AND t.attempt = i.attempt
                RETURNING t.id, t.last_event_seq, t.state, t.progress, t.stage, t.message, t.updated_at, i.ord),
            logged AS (
                INSERT INTO dashboard.task_events (task_id, seq, type, state, progress, stage, message, created_at)
                SELECT id, last_event_seq, 'progress', state, progress, stage, message, updated_at FROM changed
                RETURNING task_id, seq, type, state, progress, stage, message, created_at, tx),
            {Announced("logged")},
            {Stashed("announced")}
            SELECT ord, txid_current() FROM stashed LEFT JOIN changed ON true
            """;
        return ExecuteProgressBatch(() =>
        {
            var command = new NpgsqlBatchCommand(sql);
            AddProgressColumns(command.Parameters, rows);
            command.Parameters.AddWithValue("checkpoints", NpgsqlDbType.Array | NpgsqlDbType.Jsonb, rows.Select(r => r.CheckpointJson).ToArray());
            return command;
        }, rows.Count);
    }

    // The arrays both progress batches unnest, one element per write, in order.
    private static void AddProgressColumns(NpgsqlParameterCollection parameters, IReadOnlyList<IProgressWrite> writes)
    {
        parameters.AddWithValue("ids", writes.Select(w => w.Lease.TaskId).ToArray());
        parameters.AddWithValue("owners", writes.Select(w => w.Lease.Owner).ToArray());
        parameters.AddWithValue("attempts", writes.Select(w => w.Lease.Attempt).ToArray());
        parameters.AddWithValue("progress", writes.Select(w => (short)Math.Clamp(w.Progress, 0, 100)).ToArray());
        parameters.AddWithValue("stages", NpgsqlDbType.Array | NpgsqlDbType.Text, writes.Select(w => w.Stage).ToArray());
        parameters.AddWithValue("messages", NpgsqlDbType.Array | NpgsqlDbType.Text, writes.Select(w => w.Message).ToArray());
        parameters.AddWithValue("ats", writes.Select(w => w.At).ToArray());
    }

    // Runs a progress batch and announces the events it logged, in one round trip: the batch's
    // statement commits in a transaction of its own, stashing its events' payloads in a session
    // setting, and a second transaction announces them without waiting for its WAL flush.
    // PostgreSQL holds its database-wide notify lock from a notifying commit's start through its
    // flush: announced in the batches' own commits, every batch's flush queued behind the others'
    // (pgbench, 8 clients, a one-row INSERT that notifies: 3,760 commits/s at 2.1 ms; INSERT, then
    // the NOTIFY in a commit of its own: 7,310/s at 1.1 ms). The events are on disk before anyone
    // hears of them, as before: a crash can lose an announcement, never an event a watcher saw. If
    // the statement fails, PostgreSQL skips the rest of the round trip: nothing is announced. Per
    // task, a batch announces its events in seq order; a later event written on another connection
    // may be announced first, and the bus reads such gaps from the log. The statement's rows are
    // the 1-based positions of the writes that held their lease (one null row stands for none),
    // each with the transaction's id.
    private IReadOnlyList<bool> ExecuteProgressBatch(Func<NpgsqlBatchCommand> write, int count)
    {
        // While the database is unreachable (a restart, a failover) the batch is tried again on a new
        // connection every Jobs:DatabaseRetryInterval, for as long as a lease lasts: its jobs wait in
        // their progress call instead of failing their attempts. A batch whose connection was lost
        // after it read its transaction's id may have committed: that is asked before it is written
        // again, so that no event is logged twice.
        var settings = options?.Value ?? new JobsOptions();
        var since = timeProvider.GetTimestamp();
        var outcome = new BatchOutcome(count);
        for (var failures = 0; ; failures++)
        {
            try
            {
                if (outcome.Transaction is { } sent)
                {
                    string? status;
                    using (var connection = batchSource.OpenConnection())
                    {
                        status = TransactionStatus(connection, sent);
                    }

                    switch (status)
                    {
                        case "committed":
                            return outcome.Written;
                        case "in progress" when timeProvider.GetElapsedTime(since) < settings.LeaseDuration:
                            // Its session has not seen its connection go yet: ask again.
                            Thread.Sleep(settings.DatabaseRetryInterval);
                            continue;
                    }
                }

                // A new command for every try: one reused after its connection broke broke the
                // next connection too (every later try failed reading the answer).
                return ExecuteProgressBatchOnce(write(), outcome);
            }
            catch (Exception failure) when (DatabasePools.IsUnreachable(failure, databaseOnly: true) && timeProvider.GetElapsedTime(since) < settings.LeaseDuration)
            {
                // The pool's other idle connections are most likely as dead as this one.
                batchSource.Clear();
                if (failures == 0)
                {
                    logger?.LogWarning(failure, "A progress batch could not reach the database; trying again every {Interval}", settings.DatabaseRetryInterval);
                }

                Thread.Sleep(settings.DatabaseRetryInterval);
            }
        }
    }

    // What a batch's last try read: its transaction's id and its writes' results (set afresh by every try).
    private sealed class BatchOutcome(int count)
    {
        public long? Transaction { get; set; }

        public bool[] Written { get; } = new bool[count];
    }

    private IReadOnlyList<bool> ExecuteProgressBatchOnce(NpgsqlBatchCommand write, BatchOutcome outcome)
    {
        using var connection = batchSource.OpenConnection();
        using var batch = new NpgsqlBatch(connection)
        {
            BatchCommands = { new("BEGIN"), write, new("COMMIT"), new(AnnounceStashedSql) },
        };
        return WithSeqRetry(() =>
        {
            var written = outcome.Written;
            Array.Clear(written);
            outcome.Transaction = null;
            try
            {
                using var reader = batch.ExecuteReader();
                while (reader.Read())
                {
                    outcome.Transaction = reader.GetInt64(1);
                    if (!reader.IsDBNull(0))
                    {
                        written[reader.GetInt64(0) - 1] = true;
                    }
                }

                reader.NextResult();
                return written;
            }
            catch (PostgresException failure) when (connection.State == ConnectionState.Open)
            {
                // (The reader is closed by now.) A failed statement leaves its transaction open,
                // aborted; and Npgsql loses track of a batch's prepared statements when one of them
                // fails (the next batch on the session read an unexpected DataRow): they are
                // prepared afresh. (A lost connection has nothing to roll back.)
                using (var rollback = new NpgsqlCommand("ROLLBACK", connection))
                {
                    rollback.ExecuteNonQuery();
                }

                connection.UnprepareAll();
                if (outcome.Transaction is { } id && TransactionStatus(connection, id) == "committed")
                {
                    // Only the announcement failed. The events are committed: the writers must not
                    // write them again. Watchers get them with their task's next announced event or
                    // when their node's listener reconnects.
                    logger?.LogWarning(failure, "Announcing committed progress events failed");
                    return written;
                }

                outcome.Transaction = null;
                throw;
            }
        });
    }

    // committed, aborted, in progress, or null when too old to tell (txid_status).
    private static string? TransactionStatus(NpgsqlConnection connection, long transaction)
    {
        using var command = TransactionStatusCommand(connection, transaction);
        return command.ExecuteScalar() as string;
    }

    private static async Task<string?> TransactionStatusAsync(NpgsqlConnection connection, long transaction, CancellationToken cancellationToken)
    {
        await using var command = TransactionStatusCommand(connection, transaction);
        return await command.ExecuteScalarAsync(cancellationToken) as string;
    }

    private static NpgsqlCommand TransactionStatusCommand(NpgsqlConnection connection, long transaction)
    {
        var command = new NpgsqlCommand("SELECT txid_status(@id)", connection);
        command.Parameters.AddWithValue("id", transaction);
        return command;
    }

    // The session setting a progress batch stashes its events' payloads in, for its announcement.
    private const string StashSetting = "taskdashboard.announce";

    private static string Stashed(string announcedCte) => $"""
        stashed AS (
            SELECT set_config('{StashSetting}', coalesce(json_agg(payload ORDER BY seq), '[]')::text, false) FROM {announcedCte})
        """;

    private static readonly string AnnounceStashedSql = $"""
        SELECT count(pg_notify('{EventChannel}', payload))
        FROM set_config('synchronous_commit', 'off', true),
            json_array_elements_text(current_setting('{StashSetting}')::json) AS payload
        """;

    /// <summary>Stores the attempt's checkpoint together with its progress; false when the lease is lost.</summary>
    public bool Checkpoint(TaskLease lease, string checkpointJson, int progress, string? stage, string? message) =>
        WriteProgressRows([new ProgressRowWrite(lease, progress, stage, message, checkpointJson, timeProvider.GetUtcNow())])[0];

    public Task<TaskItem?> SucceedAsync(TaskLease lease, TaskResult result, CancellationToken cancellationToken) =>
        FencedAsync(
            lease,
            set: """
                state = 'Succeeded', progress = 100, stage = 'Done', message = @message, result = @result,
                completed_at = @now, lease_owner = NULL, lease_expires_at = NULL, checkpoint = NULL
                """,
            eventType: "'succeeded'",
            p =>
            {
                p.AddWithValue("message", $"Wrote {result.FileName} ({result.RowCount:N0} rows, {result.SizeBytes:N0} bytes)");
                p.AddWithValue("result", NpgsqlDbType.Jsonb, JsonSerializer.Serialize(result, Json));
            },
            cancellationToken);

    public Task<TaskItem?> FailAsync(TaskLease lease, string error, CancellationToken cancellationToken) =>
        FencedAsync(
            lease,
            set: $"""
                state = 'Failed', message = @error, failed_at = @now, completed_at = @now,
                lease_owner = NULL, lease_expires_at = NULL, {AppendError}
                """,
            eventType: "'failed'",
            p => p.AddWithValue("error", error),
            cancellationToken);

    /// <summary>Records a transient failure and schedules the next attempt; the dispatcher enqueues it when due.</summary>
    public Task<TaskItem?> ScheduleRetryAsync(TaskLease lease, string error, TimeSpan delay, CancellationToken cancellationToken) =>
        FencedAsync(
            lease,
            set: $"""
                state = 'Scheduled', scheduled_at = @now + @delay, hangfire_job_id = NULL,
                lease_owner = NULL, lease_expires_at = NULL, stage = 'Waiting to retry',
                message = @message, {AppendError}
                """,
            eventType: "'retry_scheduled'",
            p =>
            {
                p.AddWithValue("error", error);
                p.AddWithValue("delay", delay);
                p.AddWithValue("message", $"Attempt {lease.Attempt} failed: {error} Retrying in {delay.TotalSeconds:0.#} s.");
            },
            cancellationToken);

    /// <summary>Ends a running task whose cancellation was requested.</summary>
    public Task<TaskItem?> CompleteCancellationAsync(TaskLease lease, CancellationToken cancellationToken) =>
        FencedAsync(
            lease,
            set: """
                state = 'Cancelled', message = 'Cancelled while running', cancelled_at = @now, completed_at = @now,
                lease_owner = NULL, lease_expires_at = NULL, checkpoint = NULL
                """,
            eventType: "'cancelled'",
            parameters: null,
            cancellationToken);

    /// <summary>Hands a running task back (worker shutdown); its Hangfire job is re-queued and resumes it.</summary>
    public Task<TaskItem?> RequeueAsync(TaskLease lease, string reason, CancellationToken cancellationToken) =>
        FencedAsync(
            lease,
            set: "state = 'Pending', stage = 'Queued', message = @reason, lease_owner = NULL, lease_expires_at = NULL, job_checked_at = @now",
            eventType: "'requeued'",
            p => p.AddWithValue("reason", reason),
            cancellationToken);

    /// <summary>
    /// Takes back every running task whose lease expired (its worker died): back to Pending without a
    /// job so the dispatcher runs it again from its checkpoint, Cancelled when a cancel was asked
    /// for, or Failed with "worker lost" once it has used all its attempts. Reads every running task
    /// (as many as the workers): no index is keyed on the lease's expiry, so that renewals are
    /// written in place (migration 0013).
    /// </summary>
    public async Task<IReadOnlyList<TaskItem>> RecoverExpiredLeasesAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"""
            WITH expired AS (
                SELECT id FROM dashboard.tasks
                WHERE state = 'Running' AND lease_expires_at < @now
                FOR UPDATE SKIP LOCKED),
            changed AS (
                UPDATE dashboard.tasks t SET
                    state = CASE WHEN cancel_requested_at IS NOT NULL THEN 'Cancelled'
                                 WHEN attempt >= max_attempts THEN 'Failed' ELSE 'Pending' END,
                    message = CASE WHEN cancel_requested_at IS NOT NULL THEN 'Cancelled; its worker was lost'
                                   WHEN attempt >= max_attempts THEN 'Worker lost on attempt ' || attempt || ' of ' || max_attempts
                                   ELSE 'Worker lost on attempt ' || attempt || '; resuming from the last checkpoint' END,
                    stage = CASE WHEN cancel_requested_at IS NULL AND attempt < max_attempts THEN 'Queued' ELSE stage END,
                    failed_at = CASE WHEN cancel_requested_at IS NULL AND attempt >= max_attempts THEN @now END,
                    cancelled_at = CASE WHEN cancel_requested_at IS NOT NULL THEN @now END,
                    completed_at = CASE WHEN cancel_requested_at IS NOT NULL OR attempt >= max_attempts THEN @now END,
                    errors = errors || jsonb_build_array(jsonb_build_object('at', @now, 'attempt', attempt, 'message', 'worker lost')),
                    hangfire_job_id = NULL, lease_owner = NULL, lease_expires_at = NULL,
                    updated_at = @now, last_event_seq = (SELECT coalesce(max(e.seq), 0) + 1 FROM dashboard.task_events e WHERE e.task_id = t.id)
                FROM expired WHERE t.id = expired.id
                RETURNING t.*),
            logged AS (
                INSERT INTO dashboard.task_events (task_id, seq, type, state, progress, stage, message, created_at)
                SELECT id, last_event_seq, CASE state WHEN 'Pending' THEN 'requeued' ELSE lower(state) END,
                    state, progress, stage, message, updated_at FROM changed
                RETURNING task_id, seq, type, state, progress, stage, message, created_at, tx),
            {Notify("logged")}
            SELECT {Columns} FROM changed WHERE id IN (SELECT task_id FROM notified)
            """);
        command.Parameters.AddWithValue("now", timeProvider.GetUtcNow());
        return await WithSeqRetryAsync(async () =>
        {
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            var recovered = new List<TaskItem>();
            while (await reader.ReadAsync(cancellationToken))
            {
                recovered.Add(ReadTask(reader));
            }

            return recovered;
        });
    }

    /// <summary>
    /// Tasks that have waited on their Hangfire job for longer than <paramref name="olderThan"/> since
    /// they got it or since it was last seen waiting (<see cref="JobsSeenWaitingAsync"/>): candidates
    /// for a job that was lost (deleted in the dashboard, or ended without starting the task), those
    /// unchecked longest first. Read by <c>job_checked_at</c> (migration 0012), not by <c>updated_at</c>:
    /// an index on a column the progress writes change would keep them from being written in place.
    /// </summary>
    public async Task<IReadOnlyList<(Guid Id, string JobId)>> FindLongWaitingAsync(TimeSpan olderThan, int limit, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            SELECT id, hangfire_job_id FROM dashboard.tasks
            WHERE state IN ('Pending', 'Scheduled') AND hangfire_job_id IS NOT NULL AND job_checked_at < @before
            ORDER BY job_checked_at LIMIT @limit
            """);
        command.Parameters.AddWithValue("before", timeProvider.GetUtcNow() - olderThan);
        command.Parameters.AddWithValue("limit", limit);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var found = new List<(Guid, string)>();
        while (await reader.ReadAsync(cancellationToken))
        {
            found.Add((reader.GetGuid(0), reader.GetString(1)));
        }

        return found;
    }

    /// <summary>
    /// Records that these tasks' jobs were found still waiting: they are not candidates again for
    /// another wait (<see cref="FindLongWaitingAsync"/>). A task that has moved on meanwhile (started,
    /// or given another job) is left alone, and so is one whose row another transaction holds (a
    /// claim, another node's check): it is only looked at again on a later pass, and two nodes
    /// checking the same tasks never wait for each other's row locks.
    /// </summary>
    public async Task JobsSeenWaitingAsync(IReadOnlyList<(Guid Id, string JobId)> waiting, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            UPDATE dashboard.tasks t SET job_checked_at = now()
            FROM (SELECT s.id FROM dashboard.tasks s
                  JOIN unnest(@ids, @jobIds) AS w(id, job_id) ON s.id = w.id AND s.hangfire_job_id = w.job_id
                  WHERE s.state IN ('Pending', 'Scheduled')
                  FOR UPDATE OF s SKIP LOCKED) AS seen
            WHERE t.id = seen.id
            """);
        command.Parameters.AddWithValue("ids", waiting.Select(w => w.Id).ToArray());
        command.Parameters.AddWithValue("jobIds", waiting.Select(w => w.JobId).ToArray());
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Forgets a lost job so the dispatcher enqueues the task again; false when the task moved on.</summary>
    public async Task<bool> ForgetLostJobAsync(Guid id, string jobId, CancellationToken cancellationToken) =>
        await TransitionAsync(
            id,
            [TaskState.Pending, TaskState.Scheduled],
            set: "hangfire_job_id = NULL, message = 'Its queued job was lost; queued again'",
            eventType: "'redispatched'",
            extraWhere: "AND hangfire_job_id = @jobId",
            p => p.AddWithValue("jobId", jobId),
            cancellationToken) is not null;

    private const string AppendError =
        "errors = errors || jsonb_build_array(jsonb_build_object('at', @now, 'attempt', attempt, 'message', @error))";

    private Task<TaskItem?> FencedAsync(
        TaskLease lease, string set, string eventType, Action<NpgsqlParameterCollection>? parameters, CancellationToken cancellationToken) =>
        TransitionAsync(
            lease.TaskId,
            [TaskState.Running],
            set,
            eventType,
            extraWhere: "AND lease_owner = @owner AND attempt = @attempt",
            p =>
            {
                p.AddWithValue("owner", lease.Owner);
                p.AddWithValue("attempt", lease.Attempt);
                parameters?.Invoke(p);
            },
            cancellationToken);

    // One statement per transition: the conditional UPDATE bumps the task's event sequence and the
    // CTE appends the event with that number, so a task's row and its log never disagree.
    private async Task<TaskItem?> TransitionAsync(
        Guid id,
        IReadOnlyList<TaskState> sources,
        string set,
        string eventType,
        string? extraWhere,
        Action<NpgsqlParameterCollection>? parameters,
        CancellationToken cancellationToken,
        (NpgsqlConnection Connection, NpgsqlTransaction Transaction)? on = null)
    {
        await using var command = on is var (connection, transaction) ? new NpgsqlCommand { Connection = connection, Transaction = transaction } : dataSource.CreateCommand();
        command.CommandText = $"""
            WITH changed AS (
                UPDATE dashboard.tasks SET {set}, updated_at = @now,
                    last_event_seq = (SELECT coalesce(max(e.seq), 0) + 1 FROM dashboard.task_events e WHERE e.task_id = dashboard.tasks.id)
                WHERE id = @id AND state IN ({Sql(sources)}) {extraWhere}
                RETURNING {Columns}),
            logged AS (
                INSERT INTO dashboard.task_events (task_id, seq, type, state, progress, stage, message, created_at)
                SELECT id, last_event_seq, {eventType}, state, progress, stage, message, updated_at FROM changed
                RETURNING task_id, seq, type, state, progress, stage, message, created_at, tx),
            {Notify("logged")}
            SELECT {Columns} FROM changed WHERE id IN (SELECT task_id FROM notified)
            """;
        command.Parameters.AddWithValue("id", id);
        command.Parameters.AddWithValue("now", timeProvider.GetUtcNow());
        parameters?.Invoke(command.Parameters);
        // Inside a caller's transaction a failed statement aborts it: no retry there (the caller's
        // claim is for a task no one else writes to before it runs).
        return on is null ? await WithSeqRetryAsync(() => ReadSingleAsync(command, cancellationToken)) : await ReadSingleAsync(command, cancellationToken);
    }

    // Event numbers are max(seq) + 1 per task. Two writers of the same task at the same moment (a
    // worker's progress and an API cancel) can pick the same number: the loser's statement fails
    // whole on the primary key and is simply run again, seeing the winner's event.
    private static async Task<T> WithSeqRetryAsync<T>(Func<Task<T>> statement)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await statement();
            }
            catch (PostgresException exception) when (IsSeqConflict(exception, attempt))
            {
            }
        }
    }

    // The same, for the group-commit writers, which write synchronously on threads of their own.
    private static T WithSeqRetry<T>(Func<T> statement)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return statement();
            }
            catch (PostgresException exception) when (IsSeqConflict(exception, attempt))
            {
            }
        }
    }

    private static bool IsSeqConflict(PostgresException exception, int attempt) =>
        exception.SqlState == PostgresErrorCodes.UniqueViolation && exception.ConstraintName == "task_events_pkey" && attempt < 10;

    /// <summary>
    /// Announces the <c>created</c> events of tasks (<c>@ids</c>) that have not run yet; the
    /// dispatcher runs it in the transaction that gives them their Hangfire jobs.
    /// </summary>
    public static string AnnounceCreatedSql { get; } = $"""
        WITH created AS (
            SELECT e.task_id, e.seq, e.type, e.state, e.progress, e.stage, e.message, e.created_at, e.tx
            FROM dashboard.task_events e JOIN dashboard.tasks t ON t.id = e.task_id
            WHERE e.task_id = ANY(@ids) AND e.seq = 1 AND t.attempt = 0),
        {Notify("created")}
        SELECT count(*) FROM notified
        """;

    /// <summary>
    /// The channel every new task event is announced on when its transaction commits: the event as
    /// JSON (<see cref="TaskEventNotification"/>), or only its ids when it would not fit NOTIFY.
    /// </summary>
    public const string EventChannel = "task_events";

    // pg_notify is volatile, so PostgreSQL materialises this CTE and announces every logged row.
    private static string Notify(string loggedCte) => $"""
        {Announced(loggedCte)},
        notified AS (SELECT task_id, pg_notify('{EventChannel}', payload) FROM announced)
        """;

    // What NOTIFY carries for each logged row. The event itself rides along so listeners need no
    // query, and so does the task's owner: a node with watchers of whole owners needs it for every
    // task, and looking it up stalled every other notification behind the query in the start burst
    // of 100 jobs. A payload near NOTIFY's 8000-byte limit (a long error message) is cut to the ids
    // and listeners read the event from the log. (The tasks row read here is the statement's
    // snapshot, from before a sibling CTE's update: a task's owner never changes.)
    private static string Announced(string loggedCte) => $"""
        announced AS (
            SELECT task_id, seq, CASE WHEN octet_length(payload) < 7500 THEN payload
                ELSE json_build_object('taskId', task_id, 'seq', seq, 'ownerId', owner_id, 'tx', tx)::text END AS payload
            FROM (SELECT l.task_id, l.seq, o.owner_id, l.tx::text::bigint AS tx, json_build_object('taskId', l.task_id, 'seq', l.seq, 'ownerId', o.owner_id,
                    'type', l.type, 'state', l.state, 'progress', l.progress, 'stage', l.stage, 'message', l.message,
                    'createdAt', l.created_at, 'tx', l.tx::text::bigint)::text AS payload
                  FROM {loggedCte} l JOIN dashboard.tasks o ON o.id = l.task_id) AS events)
        """;

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
        Parameters = ParseJson(reader.GetString(3)),
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
        LeaseOwner = GetNullableString(reader, 25),
        LeaseExpiresAt = GetNullableTime(reader, 26),
        TimeoutSeconds = reader.IsDBNull(27) ? null : reader.GetInt32(27),
        Checkpoint = reader.IsDBNull(28) ? null : ParseJson(reader.GetString(28)),
        CallbackUrl = GetNullableString(reader, 29),
    };

    // A JsonElement that owns its memory (JsonDocument.Parse rents pooled buffers it never returns
    // unless disposed, and these elements outlive the reader).
    private static JsonElement ParseJson(string json) => JsonSerializer.Deserialize<JsonElement>(json);

    private static string? GetNullableString(NpgsqlDataReader reader, int ordinal) =>
        reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);

    private static DateTimeOffset? GetNullableTime(NpgsqlDataReader reader, int ordinal) =>
        reader.IsDBNull(ordinal) ? null : reader.GetFieldValue<DateTimeOffset>(ordinal);
}
