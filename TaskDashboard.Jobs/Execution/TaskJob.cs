using System.ComponentModel.DataAnnotations;
using System.Text.Json;
using Hangfire;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TaskDashboard.Jobs.Database;
using TaskDashboard.Jobs.Kinds;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Jobs.Execution;

/// <summary>This process's name in leases: host, process id and a random suffix.</summary>
public sealed class WorkerIdentity
{
    public string Id { get; } = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid().ToString("N")[..8]}";
}

/// <summary>
/// The one Hangfire job: runs an attempt of any task kind. Its argument is the task id; it reloads
/// the task and claims it under a lease, so duplicate, late or stale runs do nothing. Every write of
/// the attempt is fenced by that lease.
/// </summary>
public sealed class TaskJob(
    TaskStore store,
    ProgressEventWriter progressEvents,
    TaskKindRegistry kinds,
    ArtifactStore artifacts,
    WorkerIdentity worker,
    TimeProvider timeProvider,
    TaskDispatcher dispatcher,
    LeaseChecks leaseChecks,
    IOptions<JobsOptions> options,
    ILogger<TaskJob> logger)
{
    // Attempts, retries and their delays are the task's, not Hangfire's.
    [AutomaticRetry(Attempts = 0)]
    public async Task RunAsync(Guid taskId, CancellationToken cancellationToken)
    {
        var settings = options.Value;
        var claimTries = new ClaimTries();
        var (task, noSlot) = await WhenReachableAsync(() => store.TryClaimAsync(taskId, worker.Id, settings.LeaseDuration, settings.ConcurrencyLimits, claimTries, cancellationToken), cancellationToken);
        if (noSlot)
        {
            // Over its kind's limit: give the worker back; the dispatcher enqueues it again when a slot frees.
            await WhenReachableAsync(() => store.ReturnToQueueAsync(taskId, "Waiting for a free slot", cancellationToken), cancellationToken);
            return;
        }

        if (task is null)
        {
            Log.NothingToRun(logger, taskId);
            return;
        }

        dispatcher.JobTaken();
        var lease = new TaskLease(task.Id, worker.Id, task.Attempt);
        if (!kinds.TryGet(task.Kind, out var kind))
        {
            await WhenReachableAsync(() => store.FailAsync(lease, $"No task kind '{task.Kind}' is registered on this worker.", CancellationToken.None));
            return;
        }

        var timeout = task.TimeoutSeconds is { } seconds ? TimeSpan.FromSeconds(seconds) : kind.DefaultTimeout;
        using var run = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        run.CancelAfter(timeout);
        using var watch = leaseChecks.Start(lease);
        var watcher = StopWhenToldAsync(watch, run);
        Log.Started(logger, taskId, task.Attempt, worker.Id);
        try
        {
            var result = await ExecuteAsync(kind, task, lease, run.Token);
            if (await WhenReachableAsync(() => store.SucceedAsync(lease, result, CancellationToken.None)) is null && !await SucceededUnansweredAsync(lease))
            {
                throw new LeaseLostException(taskId);
            }

            Log.Succeeded(logger, taskId, task.Attempt);
        }
        catch (Exception exception) when (exception is LeaseLostException || (exception is OperationCanceledException && watch.LeaseLost))
        {
            // Another worker owns the task now: leave everything to it, remove only our own file.
            artifacts.DeleteAttemptFiles(taskId, lease.Attempt);
            Log.LeaseLost(logger, taskId, task.Attempt);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The worker is shutting down: keep the work file and checkpoint, hand the task back;
            // Hangfire re-queues this job and an attempt elsewhere resumes it.
            await WhenReachableAsync(() => store.RequeueAsync(lease, "The worker shut down; the task will resume from its last checkpoint.", CancellationToken.None));
            throw;
        }
        catch (OperationCanceledException) when (watch.CancelRequested)
        {
            artifacts.Delete(taskId);
            await WhenReachableAsync(() => store.CompleteCancellationAsync(lease, CancellationToken.None));
            Log.Cancelled(logger, taskId);
        }
        catch (OperationCanceledException) when (run.IsCancellationRequested)
        {
            artifacts.Delete(taskId);
            await WhenReachableAsync(() => store.FailAsync(lease, $"The task timed out after {Describe(timeout)}.", CancellationToken.None));
            Log.TimedOut(logger, taskId, timeout);
        }
        catch (Exception exception) when (IsPermanent(exception))
        {
            artifacts.Delete(taskId);
            await WhenReachableAsync(() => store.FailAsync(lease, exception.Message, CancellationToken.None));
            Log.FailedPermanently(logger, exception, taskId, task.Attempt);
        }
        catch (Exception exception)
        {
            if (task.Attempt < task.MaxAttempts)
            {
                var delay = RetryDelay(task.Attempt);
                await WhenReachableAsync(() => store.ScheduleRetryAsync(lease, exception.Message, delay, CancellationToken.None));
                Log.RetryScheduled(logger, exception, taskId, task.Attempt, delay);
                // The dispatcher sets its next wake-up by the earliest due time: this one may be earlier.
                dispatcher.Wake();
            }
            else
            {
                artifacts.Delete(taskId);
                await WhenReachableAsync(() => store.FailAsync(lease, exception.Message, CancellationToken.None));
                Log.FailedPermanently(logger, exception, taskId, task.Attempt);
            }
        }
        finally
        {
            await run.CancelAsync();
            await watcher;
            if (settings.ConcurrencyLimits.ContainsKey(task.Kind))
            {
                // A slot of this kind just freed: let a waiting task have it without waiting for the poll.
                dispatcher.Wake();
            }
        }
    }

    // A kind's own query that fails because the database went away (a restart, a failover: an
    // export's COPY holds one connection throughout) does not cost the attempt. Once the database
    // answers again, and the lease is still this attempt's, the kind runs again in the same attempt
    // from its last checkpoint. If it stays away for a lease's length, the original failure ends
    // the attempt as any failure does.
    private async Task<TaskResult> ExecuteAsync(ITaskKind kind, TaskItem task, TaskLease lease, CancellationToken cancellationToken)
    {
        while (true)
        {
            try
            {
                return await kind.ExecuteAsync(new TaskExecutionContext(task, lease, artifacts, progressEvents, timeProvider, options.Value), cancellationToken);
            }
            catch (Exception exception) when (DatabasePools.IsUnreachable(exception) && !cancellationToken.IsCancellationRequested)
            {
                Log.WaitingForDatabase(logger, exception, task.Id, lease.Attempt);
                task = await ReloadWhenReachableAsync(lease, cancellationToken);
            }
        }
    }

    private async Task<TaskItem> ReloadWhenReachableAsync(TaskLease lease, CancellationToken cancellationToken)
    {
        await Task.Delay(options.Value.DatabaseRetryInterval, timeProvider, cancellationToken);
        var current = await WhenReachableAsync(() => store.GetForExecutionAsync(lease.TaskId, cancellationToken), cancellationToken);
        if (current is not { State: TaskState.Running } || current.LeaseOwner != lease.Owner || current.Attempt != lease.Attempt)
        {
            throw new LeaseLostException(lease.TaskId);
        }

        return current;
    }

    // A success that found no task Running under the lease: lost to another worker, or a commit of
    // this very success whose answer was lost with its connection, and which the retry then found
    // done. Only this attempt can have ended the task Succeeded on its number.
    private async Task<bool> SucceededUnansweredAsync(TaskLease lease)
    {
        var current = await WhenReachableAsync(() => store.GetForExecutionAsync(lease.TaskId, CancellationToken.None));
        return current is { State: TaskState.Succeeded } && current.Attempt == lease.Attempt;
    }

    // A statement of the attempt that cannot reach the database (the claim, a final state change, a
    // reload) is tried again every Jobs:DatabaseRetryInterval for up to Jobs:LeaseDuration: a restart
    // at the end of a task used to leave it Running until its lease lapsed, and then cost an attempt.
    private Task WhenReachableAsync(Func<Task> statement, CancellationToken cancellationToken) =>
        WhenReachableAsync(async () =>
        {
            await statement();
            return true;
        }, cancellationToken);

    private async Task<T> WhenReachableAsync<T>(Func<Task<T>> statement, CancellationToken cancellationToken = default)
    {
        var settings = options.Value;
        var since = timeProvider.GetTimestamp();
        while (true)
        {
            try
            {
                return await statement();
            }
            catch (Exception exception) when (DatabasePools.IsUnreachable(exception, databaseOnly: true) && timeProvider.GetElapsedTime(since) < settings.LeaseDuration)
            {
                await Task.Delay(settings.DatabaseRetryInterval, timeProvider, cancellationToken);
            }
        }
    }

    /// <summary>Exponential backoff with ±20 % jitter, capped.</summary>
    public TimeSpan RetryDelay(int attempt)
    {
        var settings = options.Value;
        var exponential = settings.RetryBaseDelay.TotalMilliseconds * Math.Pow(2, Math.Max(0, attempt - 1));
        var jitter = 0.8 + (Random.Shared.NextDouble() * 0.4);
        return TimeSpan.FromMilliseconds(Math.Min(settings.RetryMaxDelay.TotalMilliseconds, exponential * jitter));
    }

    private static bool IsPermanent(Exception exception) =>
        exception is PermanentTaskException or ArgumentException or ValidationException or JsonException or NotSupportedException;

    private static string Describe(TimeSpan timeout) =>
        timeout.TotalSeconds < 120 ? $"{timeout.TotalSeconds:0.#} s" : $"{timeout.TotalMinutes:0.#} min";

    // Stops the attempt when its lease is taken or a cancel is asked for. The process's LeaseChecks
    // look for both every CancellationCheckInterval, for all its attempts in one statement, and
    // renew the leases as they go. A check that fails (the database restarting, say) is tried again
    // at the next interval; if the database stays away longer than the lease, the first check that
    // gets through finds the lease taken and stops the attempt.
    private static async Task StopWhenToldAsync(LeaseChecks.Watch watch, CancellationTokenSource run)
    {
        try
        {
            await watch.Stopped.WaitAsync(run.Token);
            await run.CancelAsync();
        }
        catch (OperationCanceledException)
        {
        }
    }
}

