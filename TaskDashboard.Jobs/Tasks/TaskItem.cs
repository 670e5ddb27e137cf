using System.Text.Json;

namespace TaskDashboard.Jobs.Tasks;

/// <summary>A snapshot of one task row: what was asked, where it stands, what it produced.</summary>
public sealed record TaskItem
{
    public required Guid Id { get; init; }
    public required string OwnerId { get; init; }
    public required string Kind { get; init; }
    public required JsonElement Parameters { get; init; }
    public required TaskPriority Priority { get; init; }
    public required TaskState State { get; init; }
    public int Progress { get; init; }
    public string? Stage { get; init; }
    public string? Message { get; init; }
    public int Attempt { get; init; }
    public int MaxAttempts { get; init; }
    public IReadOnlyList<TaskError> Errors { get; init; } = [];
    public TaskResult? Result { get; init; }
    public string? IdempotencyKey { get; init; }
    public string? RequestHash { get; init; }
    public string? HangfireJobId { get; init; }
    public DateTimeOffset? CancelRequestedAt { get; init; }
    public string? LeaseOwner { get; init; }
    public DateTimeOffset? LeaseExpiresAt { get; init; }
    public int? TimeoutSeconds { get; init; }
    public JsonElement? Checkpoint { get; init; }
    public string? CallbackUrl { get; init; }
    public long LastEventSeq { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }
    public required DateTimeOffset UpdatedAt { get; init; }
    public DateTimeOffset? ScheduledAt { get; init; }
    public DateTimeOffset? StartedAt { get; init; }
    public DateTimeOffset? CompletedAt { get; init; }
    public DateTimeOffset? FailedAt { get; init; }
    public DateTimeOffset? CancelledAt { get; init; }

    public bool IsFinal => TaskTransitions.IsFinal(State);

    /// <summary>The message of the most recent error, if any.</summary>
    public string? LastError => Errors.Count == 0 ? null : Errors[^1].Message;
}

/// <summary>
/// The right to write for one attempt of one task: every write of a running task is conditional on
/// the row still naming this owner and attempt, so a worker whose lease was taken over writes nothing.
/// </summary>
public sealed record TaskLease(Guid TaskId, string Owner, int Attempt);

/// <summary>
/// One job's tries at claiming its task (<see cref="TaskStore.TryClaimAsync(Guid, string, TimeSpan, IReadOnlyDictionary{string, int}, ClaimTries, CancellationToken)"/>):
/// the last try's transaction and claim while its commit is unanswered.
/// </summary>
public sealed class ClaimTries
{
    internal (long Transaction, TaskItem Claimed)? Unanswered { get; set; }
}

/// <summary>One failure of one attempt.</summary>
public sealed record TaskError(DateTimeOffset At, int Attempt, string Message);

/// <summary>The artifact a succeeded task produced; <see cref="RelativePath"/> is under the artifact root.</summary>
public sealed record TaskResult(string FileName, string ContentType, long SizeBytes, long RowCount, string Sha256, string RelativePath);

/// <summary>
/// One entry of a task's append-only event log; <see cref="Tx"/> is the transaction that logged it
/// (its position across tasks, see <see cref="LogSnapshot"/>), null from older versions' notifications.
/// </summary>
public sealed record TaskEvent(Guid TaskId, long Seq, string Type, TaskState State, int Progress, string? Stage, string? Message, DateTimeOffset CreatedAt, ulong? Tx = null);

/// <summary>
/// What NOTIFY carries for a new event: the whole event and its task's owner, or only
/// <see cref="TaskId"/>, <see cref="Seq"/> and <see cref="OwnerId"/> when it was too large (then
/// <see cref="Type"/> is null). <see cref="OwnerId"/> and <see cref="Tx"/> (the transaction that
/// logged the event) are null in notifications of older versions.
/// </summary>
public sealed record TaskEventNotification(
    Guid TaskId, long Seq, string? Type, TaskState? State, int Progress, string? Stage, string? Message, DateTimeOffset? CreatedAt, string? OwnerId = null, ulong? Tx = null)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() },
    };

    /// <summary>Reads a NOTIFY payload of <see cref="TaskStore.EventChannel"/>; throws <see cref="JsonException"/> when it is not one.</summary>
    public static TaskEventNotification? Parse(string payload) => JsonSerializer.Deserialize<TaskEventNotification>(payload, Json);

    public TaskEvent? ToEvent() => Type is null || State is null || CreatedAt is null
        ? null
        : new TaskEvent(TaskId, Seq, Type, State.Value, Progress, Stage, Message, CreatedAt.Value, Tx);
}
