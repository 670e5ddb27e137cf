using Microsoft.Extensions.Logging;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Jobs.Execution;

/// <summary>The engine's log messages: dispatcher, job and lease reaper.</summary>
internal static partial class Log
{
    [LoggerMessage(Level = LogLevel.Debug, Message = "Task {TaskId} is not there to run (running elsewhere, final, cancelled or not due)")]
    public static partial void NothingToRun(ILogger logger, Guid taskId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Task {TaskId} attempt {Attempt} started on {Worker}")]
    public static partial void Started(ILogger logger, Guid taskId, int attempt, string worker);

    [LoggerMessage(Level = LogLevel.Information, Message = "Task {TaskId} succeeded on attempt {Attempt}")]
    public static partial void Succeeded(ILogger logger, Guid taskId, int attempt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Task {TaskId} attempt {Attempt} lost its lease to another worker and stopped")]
    public static partial void LeaseLost(ILogger logger, Guid taskId, int attempt);

    [LoggerMessage(Level = LogLevel.Information, Message = "Task {TaskId} cancelled while running")]
    public static partial void Cancelled(ILogger logger, Guid taskId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Task {TaskId} timed out after {Timeout}")]
    public static partial void TimedOut(ILogger logger, Guid taskId, TimeSpan timeout);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Task {TaskId} failed on attempt {Attempt}")]
    public static partial void FailedPermanently(ILogger logger, Exception exception, Guid taskId, int attempt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Task {TaskId} attempt {Attempt} failed; retrying in {Delay}")]
    public static partial void RetryScheduled(ILogger logger, Exception exception, Guid taskId, int attempt, TimeSpan delay);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Checking the leases and cancel requests of {Count} running tasks failed; trying again at every interval")]
    public static partial void LeaseChecksFailed(ILogger logger, Exception exception, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Task {TaskId} attempt {Attempt} lost the database; it goes on from its checkpoint once the database answers")]
    public static partial void WaitingForDatabase(ILogger logger, Exception exception, Guid taskId, int attempt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Took back task {TaskId} from a lost worker: now {State}")]
    public static partial void Recovered(ILogger logger, Guid taskId, TaskState state);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Task {TaskId} waited on Hangfire job {JobId}, which is {JobState}; queued again")]
    public static partial void LostJobRequeued(ILogger logger, Guid taskId, string jobId, string jobState);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Looking for expired leases failed")]
    public static partial void RecoveryFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Dispatched {Count} tasks to Hangfire")]
    public static partial void Dispatched(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Dispatching tasks failed ({Failures} in a row); will retry")]
    public static partial void DispatchFailed(ILogger logger, Exception exception, int failures);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not delete Hangfire job {JobId} of a rolled-back dispatch; it will find no task to run")]
    public static partial void CompensationFailed(ILogger logger, Exception exception, string jobId);
}
