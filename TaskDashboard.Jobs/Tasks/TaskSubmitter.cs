using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TaskDashboard.Jobs.Execution;
using TaskDashboard.Jobs.Kinds;

namespace TaskDashboard.Jobs.Tasks;

/// <summary>A request to run a task, as the API and the dashboard forms receive it.</summary>
/// <param name="Timeout">Seconds one attempt may run; the kind's default when null.</param>
/// <param name="CallbackUrl">Where to POST a signed webhook when the task ends; checked against <see cref="Webhooks.CallbackUrlPolicy"/>.</param>
/// <param name="RunAt">When to start (the task is Scheduled until then); now when null.</param>
public sealed record SubmitTask(string OwnerId, string? Kind, JsonElement? Parameters, string? Priority, int? Timeout, string? IdempotencyKey, string? CallbackUrl = null, DateTimeOffset? RunAt = null);

public enum SubmitStatus
{
    /// <summary>A new task was committed.</summary>
    Created,

    /// <summary>The idempotency key was used before with the same request: the original task.</summary>
    Replayed,

    /// <summary>The request is invalid; nothing was written.</summary>
    Invalid,

    /// <summary>The idempotency key was used before with a different request; nothing was written.</summary>
    IdempotencyKeyReused,

    /// <summary>Too many tasks are waiting (the owner's or everyone's); nothing was written. See <see cref="SubmitResult.Reason"/>.</summary>
    TooManyWaiting,
}

public sealed record SubmitResult(SubmitStatus Status, TaskItem? Task, IReadOnlyDictionary<string, string[]> Errors, string? Reason = null);

/// <summary>Validates a submission and commits it as a pending task; the dispatcher enqueues it.</summary>
public sealed partial class TaskSubmitter(
    TaskStore store,
    TaskInsertBatcher inserts,
    TaskKindRegistry kinds,
    TaskDispatcher dispatcher,
    Webhooks.CallbackUrlPolicy callbacks,
    IOptions<JobsOptions> options,
    TimeProvider time,
    ILogger<TaskSubmitter> logger)
{
    /// <summary>Longest accepted per-request <c>timeout</c>, in seconds (a day).</summary>
    public const int MaxTimeoutSeconds = 86_400;

    /// <summary>How far ahead a task may be scheduled.</summary>
    public static readonly TimeSpan MaxScheduleAhead = TimeSpan.FromDays(365);

    /// <summary>Longest accepted <c>Idempotency-Key</c>.</summary>
    public const int MaxIdempotencyKeyLength = 200;

    private static readonly IReadOnlyDictionary<string, string[]> NoErrors = new Dictionary<string, string[]>();

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, WaitingCount> waitingByOwner = new(StringComparer.Ordinal);
    private long totalWaiting;
    private long totalCountedAtTicks = DateTimeOffset.MinValue.UtcTicks;

    /// <summary>
    /// The checks every request to run a kind gets (submissions and schedules): a known kind, its
    /// parameters, the priority and the timeout. Errors are keyed by field as the API reports them.
    /// </summary>
    public (ParameterCheck? Parameters, TaskPriority Priority, Dictionary<string, string[]> Errors) CheckRun(string? kindName, JsonElement? rawParameters, string? priorityName, int? timeout)
    {
        var errors = new Dictionary<string, string[]>();
        ParameterCheck? parameters = null;
        if (string.IsNullOrWhiteSpace(kindName))
        {
            errors["kind"] = [$"'kind' is required: one of {string.Join(", ", kinds.Names.Order())}."];
        }
        else if (!kinds.TryGet(kindName, out var kind))
        {
            errors["kind"] = [$"Unknown kind '{kindName}': use one of {string.Join(", ", kinds.Names.Order())}."];
        }
        else
        {
            parameters = kind.CheckParameters(rawParameters);
            foreach (var (field, messages) in parameters.Errors)
            {
                errors[field] = messages;
            }
        }

        var priority = TaskPriority.Default;
        if (priorityName is not null && !TaskPriorities.TryParse(priorityName, out priority))
        {
            errors["priority"] = [$"Unknown priority '{priorityName}': use one of {string.Join(", ", TaskPriorities.All.Select(p => p.ToApiName()))}."];
        }

        if (timeout is < 1 or > MaxTimeoutSeconds)
        {
            errors["timeout"] = [$"'timeout' is in seconds, from 1 to {MaxTimeoutSeconds}."];
        }

        return (parameters, priority, errors);
    }

    public async Task<SubmitResult> SubmitAsync(SubmitTask request, CancellationToken cancellationToken)
    {
        var (parameters, priority, errors) = CheckRun(request.Kind, request.Parameters, request.Priority, request.Timeout);

        if (request.RunAt is { } runAt && (runAt < time.GetUtcNow().AddMinutes(-5) || runAt > time.GetUtcNow() + MaxScheduleAhead))
        {
            errors["runAt"] = [$"'runAt' must be a time from now to {MaxScheduleAhead.TotalDays:0} days ahead."];
        }

        if (request.IdempotencyKey is { } key && (key.Length is 0 or > MaxIdempotencyKeyLength || key.Any(c => c is < '!' or > '~')))
        {
            errors["Idempotency-Key"] = [$"The Idempotency-Key header must be 1 to {MaxIdempotencyKeyLength} printable ASCII characters without spaces."];
        }

        if (request.CallbackUrl is { } callbackUrl && await callbacks.CheckAsync(callbackUrl, cancellationToken) is { } refused)
        {
            errors["callbackUrl"] = [refused];
        }

        if (errors.Count > 0)
        {
            return new SubmitResult(SubmitStatus.Invalid, null, errors);
        }

        if (await CheckBackpressureAsync(request.OwnerId, cancellationToken) is { } reason)
        {
            return new SubmitResult(SubmitStatus.TooManyWaiting, null, NoErrors, reason);
        }

        var normalized = parameters!.NormalizedJson!;
        var hash = RequestHash(request.Kind!, priority, request.Timeout, normalized, request.CallbackUrl, request.RunAt);
        var (task, created) = await inserts.InsertAsync(
            new NewTask(Guid.CreateVersion7(), request.OwnerId, request.Kind!, normalized, priority, options.Value.MaxAttempts, request.Timeout, request.IdempotencyKey, hash, request.CallbackUrl, request.RunAt),
            cancellationToken);

        if (created)
        {
            CountCreated(request.OwnerId);
            dispatcher.Wake();
            return new SubmitResult(SubmitStatus.Created, task, NoErrors);
        }

        return task.RequestHash == hash
            ? new SubmitResult(SubmitStatus.Replayed, task, NoErrors)
            : new SubmitResult(SubmitStatus.IdempotencyKeyReused, task, NoErrors);
    }

    // Backpressure. Counting waiting tasks costs as much as there are waiting tasks (measured: a count
    // per submission cut a flood's accepted rate 8x; a count by every request that found the cache
    // stale stalled all 32 clients for 60-240 ms once a second). So each node counts an owner's and
    // everyone's waiting tasks at most once per WaitingCountRefresh, one count at a time and in the
    // background, and meanwhile answers from the last count plus the tasks it created since; only an
    // owner's first submission on a node waits for a count. Other nodes' submissions in that window
    // can overshoot a cap by what the rate limit lets through.
    private async Task<string?> CheckBackpressureAsync(string ownerId, CancellationToken cancellationToken)
    {
        var settings = options.Value;
        if (!waitingByOwner.TryGetValue(ownerId, out var owner))
        {
            owner = await CountWaitingAsync(ownerId, cancellationToken);
        }
        else if ((IsStale(owner.CountedAtTicks) || IsStale(Volatile.Read(ref totalCountedAtTicks)))
            && Interlocked.CompareExchange(ref owner.Recounting, 1, 0) == 0)
        {
            _ = RecountInBackgroundAsync(ownerId, owner);
        }

        if (Interlocked.Read(ref owner.Count) >= settings.MaxWaitingPerOwner)
        {
            return $"You have {settings.MaxWaitingPerOwner:N0} tasks waiting to run, the most allowed; submit more once some have started.";
        }

        return Interlocked.Read(ref totalWaiting) >= settings.MaxWaitingTotal
            ? $"The system has {settings.MaxWaitingTotal:N0} tasks waiting to run, the most it takes; try again shortly."
            : null;
    }

    private bool IsStale(long countedAtTicks) => time.GetUtcNow().UtcTicks - countedAtTicks >= options.Value.WaitingCountRefresh.Ticks;

    private async Task<WaitingCount> CountWaitingAsync(string ownerId, CancellationToken cancellationToken)
    {
        var settings = options.Value;
        var now = time.GetUtcNow().UtcTicks;
        var countTotal = IsStale(Volatile.Read(ref totalCountedAtTicks));
        var (ownerCount, total) = await store.CountWaitingAsync(ownerId, settings.MaxWaitingPerOwner, countTotal ? settings.MaxWaitingTotal : null, cancellationToken);
        if (waitingByOwner.Count > 10_000)
        {
            waitingByOwner.Clear();
        }

        var counted = waitingByOwner[ownerId] = new WaitingCount(ownerCount, now);
        if (countTotal)
        {
            Interlocked.Exchange(ref totalWaiting, total);
            Volatile.Write(ref totalCountedAtTicks, now);
        }

        return counted;
    }

    private async Task RecountInBackgroundAsync(string ownerId, WaitingCount stale)
    {
        try
        {
            await CountWaitingAsync(ownerId, CancellationToken.None);
        }
        catch (Exception exception)
        {
            // Keep answering from the last count; the next submission tries again.
            Log.RecountFailed(logger, exception, ownerId);
            Interlocked.Exchange(ref stale.Recounting, 0);
        }
    }

    // A task this node just created counts until the next recount.
    private void CountCreated(string ownerId)
    {
        if (waitingByOwner.TryGetValue(ownerId, out var owner))
        {
            Interlocked.Increment(ref owner.Count);
        }

        Interlocked.Increment(ref totalWaiting);
    }

    private sealed class WaitingCount(long count, long countedAtTicks)
    {
        public long Count = count;

        public int Recounting;

        public long CountedAtTicks { get; } = countedAtTicks;
    }

    // Fields added later hash only when present, so earlier requests keep their hash.
    private static string RequestHash(string kind, TaskPriority priority, int? timeout, string normalizedParameters, string? callbackUrl, DateTimeOffset? runAt) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(
            $"{kind}\n{priority.ToApiName()}\n{timeout}\n{normalizedParameters}"
            + (callbackUrl is null ? "" : $"\n{callbackUrl}")
            + (runAt is null ? "" : $"\nrunAt={runAt.Value.ToUnixTimeMilliseconds()}"))));

    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Warning, Message = "Counting the waiting tasks of {OwnerId} failed; the last count stays in use")]
        public static partial void RecountFailed(ILogger logger, Exception exception, string ownerId);
    }
}
