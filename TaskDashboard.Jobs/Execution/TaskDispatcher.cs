using System.Diagnostics.Metrics;
using Hangfire;
using Hangfire.Common;
using Hangfire.States;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Jobs.Execution;

/// <summary>
/// The outbox relay. A submission commits only its task row; this service turns committed tasks
/// that have no Hangfire job yet into jobs. It is woken at once by the submitting process and polls
/// as a fallback, so a crash between the commit and the enqueue strands nothing.
/// </summary>
/// <remarks>
/// Rows are claimed with <c>FOR UPDATE SKIP LOCKED</c>, so several nodes dispatch without doubling
/// up. The job id is written in the same transaction that holds the row lock, and a job only starts
/// a task whose job id is set: the job first locks the task row, which waits for this transaction
/// to end, so a job created by a transaction that then rolled back finds no job id and does
/// nothing. Such jobs are deleted when the rollback is seen.
/// </remarks>
public sealed class TaskDispatcher(
    NpgsqlDataSource dataSource,
    IBackgroundJobClient jobClient,
    JobQueueWakeUp wakeUp,
    IOptions<JobsOptions> options,
    IMeterFactory meters,
    ILogger<TaskDispatcher> logger) : BackgroundService
{
    private readonly Counter<long> passes = meters.Create(JobsMetrics.MeterName).CreateCounter<long>(
        JobsMetrics.DispatchPasses, unit: "{pass}", description: "Dispatch passes run");

    private readonly SemaphoreSlim wake = new(0, 1);

    // When a pass last found Hangfire's queues at Jobs:DispatchAhead (Environment.TickCount64, 0 when
    // not full): the loops then skip the passes that submissions wake thousands of times a second in a
    // burst, until a worker of this process takes a job or a DispatchInterval has passed (workers of
    // other processes make room too).
    private long queueFullSince;

    private readonly Lock dueLock = new();
    private Timer? dueTimer;

    // When (Environment.TickCount64) the timer is set to fire; in the past once it has.
    private long dueAt;

    /// <summary>Asks the dispatcher to run now (after a submission commits).</summary>
    public void Wake()
    {
        try
        {
            if (wake.CurrentCount == 0)
            {
                wake.Release();
            }
        }
        catch (SemaphoreFullException)
        {
            // Already signalled.
        }
    }

    /// <summary>
    /// A worker of this process took a job: if this dispatcher last found Hangfire's capped queue full
    /// (Jobs:DispatchAhead), it has room again. (Otherwise there is nothing to wake for: a pass for
    /// every job taken cost the worker, while 100 jobs started, about as many empty passes.)
    /// </summary>
    public void JobTaken()
    {
        if (options.Value.DispatchAhead > 0 && Interlocked.Exchange(ref queueFullSince, 0) != 0)
        {
            Wake();
        }
    }

    /// <summary>
    /// Enqueues one batch of undispatched tasks; returns how many it enqueued and how long until the
    /// next delayed task falls due (null: none waits, or the queues were full and the pass stopped early).
    /// </summary>
    public async Task<(int Dispatched, TimeSpan? NextDue)> DispatchOnceAsync(CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);

        var limit = await RoomAheadAsync(connection, transaction, cancellationToken);
        Interlocked.Exchange(ref queueFullSince, limit <= 0 ? Math.Max(1, Environment.TickCount64) : 0);
        if (limit <= 0)
        {
            return (0, null);
        }

        var free = await FreeSlotsAsync(connection, transaction, cancellationToken);
        var claimed = new List<(Guid Id, string Priority)>();
        TimeSpan? nextDue;
        var select = new NpgsqlBatchCommand($"""
            SELECT id, priority, kind FROM dashboard.tasks
            WHERE hangfire_job_id IS NULL
              AND (state = 'Pending' OR (state = 'Scheduled' AND scheduled_at <= now() - @standby))
              AND NOT (kind = ANY(@full))
            ORDER BY {PriorityRank}, created_at
            LIMIT @limit
            FOR UPDATE SKIP LOCKED
            """);
        select.Parameters.AddWithValue("limit", limit);
        select.Parameters.AddWithValue("full", free.Where(f => f.Value <= 0).Select(f => f.Key).ToArray());
        select.Parameters.AddWithValue("standby", options.Value.DispatchStandby);
        // In the same round trip and transaction (the same now()): when the next delayed task falls due.
        var nextDueCommand = new NpgsqlBatchCommand(NextDueSql);
        nextDueCommand.Parameters.AddWithValue("standby", options.Value.DispatchStandby);
        await using (var batch = new NpgsqlBatch(connection, transaction) { BatchCommands = { select, nextDueCommand } })
        await using (var reader = await batch.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                // Kinds with a limit get no more jobs than they have free slots; the rest wait undispatched.
                var kind = reader.GetString(2);
                if (free.TryGetValue(kind, out var slots))
                {
                    if (slots <= 0)
                    {
                        continue;
                    }

                    free[kind] = slots - 1;
                }

                claimed.Add((reader.GetGuid(0), reader.GetString(1)));
            }

            await reader.NextResultAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            nextDue = reader.IsDBNull(0) ? null : reader.GetFieldValue<TimeSpan>(0);
        }

        if (claimed.Count == 0)
        {
            return (0, nextDue);
        }

        var jobIds = new List<string>(claimed.Count);
        try
        {
            using (JobQueueWakeUp.Defer())
            {
                foreach (var (id, priority) in claimed)
                {
                    var queue = Enum.Parse<TaskPriority>(priority, ignoreCase: true).QueueName();
                    var job = Job.FromExpression<TaskJob>(j => j.RunAsync(id, CancellationToken.None), queue);
                    jobIds.Add(jobClient.Create(job, new EnqueuedState(queue)));
                }
            }

            await using var update = new NpgsqlCommand("""
                UPDATE dashboard.tasks t SET hangfire_job_id = d.job_id, job_checked_at = now()
                FROM unnest(@ids, @jobIds) AS d(id, job_id)
                WHERE t.id = d.id
                """, connection, transaction);
            update.Parameters.AddWithValue("ids", claimed.Select(c => c.Id).ToArray());
            update.Parameters.AddWithValue("jobIds", jobIds.ToArray());
            await update.ExecuteNonQueryAsync(cancellationToken);

            await using var announce = new NpgsqlCommand(TaskStore.AnnounceCreatedSql, connection, transaction);
            announce.Parameters.AddWithValue("ids", claimed.Select(c => c.Id).ToArray());
            await announce.ExecuteNonQueryAsync(cancellationToken);
            // The jobs above did not announce themselves (JobQueueWakeUp.Defer): workers are woken
            // when this commit lets their tasks be claimed.
            await wakeUp.AnnounceAsync(connection, transaction, jobIds.Count, cancellationToken);

            await transaction.CommitAsync(cancellationToken);
        }
        catch
        {
            await transaction.RollbackAsync(CancellationToken.None);
            foreach (var jobId in jobIds)
            {
                TryDelete(jobId);
            }

            throw;
        }

        Log.Dispatched(logger, claimed.Count);
        return (claimed.Count, nextDue);
    }

    // The outbox is read highest priority first (migration 0009 indexes this expression): with a capped
    // queue ahead of the workers, a critical task must not wait behind a backlog of low ones.
    private const string PriorityRank = "CASE priority WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'default' THEN 2 ELSE 3 END";

    // How many tasks this pass may enqueue: the batch size, less what DispatchAhead leaves room for.
    // Loops and nodes count at the same time, so the cap may be passed by a batch or two; it bounds
    // Hangfire's queues (and the cost of creating jobs nobody can run yet), it is not a hard limit.
    private async Task<int> RoomAheadAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        var (batch, ahead) = (options.Value.DispatchBatchSize, options.Value.DispatchAhead);
        if (ahead == 0)
        {
            return batch;
        }

        await using var count = new NpgsqlCommand("""
            SELECT count(*)::int FROM (
                SELECT 1 FROM dashboard.tasks
                WHERE state IN ('Pending', 'Scheduled') AND hangfire_job_id IS NOT NULL
                LIMIT @ahead) AS waiting
            """, connection, transaction);
        count.Parameters.AddWithValue("ahead", ahead);
        var waiting = (int)(await count.ExecuteScalarAsync(cancellationToken))!;
        return Math.Min(batch, ahead - waiting);
    }

    // Free slots per limited kind: the limit less the tasks running and those already enqueued.
    private async Task<Dictionary<string, int>> FreeSlotsAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        var limits = options.Value.ConcurrencyLimits;
        var free = new Dictionary<string, int>(limits, StringComparer.OrdinalIgnoreCase);
        if (limits.Count == 0)
        {
            return free;
        }

        await using var count = new NpgsqlCommand("""
            SELECT kind, count(*)::int FROM dashboard.tasks
            WHERE kind = ANY(@kinds) AND (state = 'Running' OR (state IN ('Pending', 'Scheduled') AND hangfire_job_id IS NOT NULL))
            GROUP BY kind
            """, connection, transaction);
        count.Parameters.AddWithValue("kinds", limits.Keys.ToArray());
        await using var reader = await count.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            free[reader.GetString(0)] -= reader.GetInt32(1);
        }

        return free;
    }

    // Hangfire.PostgreSql creates a job in two synchronous transactions, so one loop is bound by
    // round trips and commits. A loop that finds a full batch wakes another, so up to
    // DispatchConcurrency loops drain a burst together and one loop idles when traffic is light.
    protected override Task ExecuteAsync(CancellationToken stoppingToken)
    {
        dueTimer = new Timer(_ =>
        {
            try
            {
                Wake();
            }
            catch (ObjectDisposedException)
            {
                // The host stopped while the timer fired.
            }
        });
        return Task.WhenAll(Enumerable.Range(0, options.Value.DispatchConcurrency).Select(_ => Task.Run(() => DispatchLoopAsync(stoppingToken), stoppingToken)));
    }

    // How long until the next delayed task without a job falls due (for this process: after its
    // Jobs:DispatchStandby). Read in the pass's transaction, with the same now() as its SELECT: every
    // delayed task was either due for that SELECT or is counted here, so none falls between (read
    // after the pass, one that fell due in between was counted by neither and waited for the next
    // poll). Tasks due but left waiting (their kind is full) are not counted: a freed slot wakes the
    // dispatcher, or it polls.
    private const string NextDueSql = """
        SELECT min(scheduled_at) + @standby - now() FROM dashboard.tasks
        WHERE hangfire_job_id IS NULL AND state = 'Scheduled' AND scheduled_at > now() - @standby
        """;

    private async Task DispatchLoopAsync(CancellationToken stoppingToken)
    {
        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            var dispatched = 0;
            try
            {
                TimeSpan? nextDue = null;
                if (!QueueStillFull())
                {
                    passes.Add(1);
                    (dispatched, nextDue) = await DispatchOnceAsync(stoppingToken);
                }

                WakeWhenDue(nextDue);

                failures = 0;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception exception)
            {
                failures++;
                Log.DispatchFailed(logger, exception, failures);
            }

            if (dispatched >= options.Value.DispatchBatchSize)
            {
                Wake();
                continue;
            }

            // Back off up to 30 intervals while PostgreSQL or Hangfire keeps failing.
            var wait = options.Value.DispatchInterval * Math.Min(1 << Math.Min(failures, 5), 30);
            try
            {
                await wake.WaitAsync(wait, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    // Delays and retry backoffs end on time without a short DispatchInterval (which would cost every
    // node a pass per interval): after a pass that took all that was due, one timer per process wakes
    // one loop when the earliest delayed task falls due. Passes only move it earlier (two loops'
    // passes may end in either order, the older reading last) or set it once it has fired; a wake-up
    // that comes too early (a task was cancelled, the timer counts whole milliseconds) costs one pass,
    // which sets it again.
    private void WakeWhenDue(TimeSpan? due)
    {
        if (due is not { } wait || wait >= options.Value.DispatchInterval)
        {
            return;
        }

        lock (dueLock)
        {
            var now = Environment.TickCount64;
            var at = now + (long)Math.Ceiling(wait.TotalMilliseconds) + 1;
            if (at < dueAt || dueAt <= now)
            {
                dueAt = at;
                dueTimer?.Change(TimeSpan.FromMilliseconds(at - now), Timeout.InfiniteTimeSpan);
            }
        }
    }

    private bool QueueStillFull()
    {
        var since = Interlocked.Read(ref queueFullSince);
        return since != 0 && Environment.TickCount64 - since < options.Value.DispatchInterval.TotalMilliseconds;
    }

    private void TryDelete(string jobId)
    {
        try
        {
            jobClient.Delete(jobId);
        }
        catch (Exception exception)
        {
            Log.CompensationFailed(logger, exception, jobId);
        }
    }

    public override void Dispose()
    {
        dueTimer?.Dispose();
        wake.Dispose();
        base.Dispose();
    }
}
