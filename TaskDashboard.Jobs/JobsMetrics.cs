namespace TaskDashboard.Jobs;

/// <summary>
/// The instruments of the meter <c>TaskDashboard.Jobs</c>, e.g. <c>dotnet-counters monitor -p PID
/// --counters TaskDashboard.Jobs</c>.
/// </summary>
public static class JobsMetrics
{
    public const string MeterName = "TaskDashboard.Jobs";

    /// <summary>Counter, in processes that run jobs: times an idle worker started looking for a job.</summary>
    public const string QueueDequeues = "taskdashboard.jobs.queue.dequeues";

    /// <summary>
    /// Counter, in every process: dispatch passes run (each one transaction that looks for committed
    /// tasks without a Hangfire job and enqueues them; see <see cref="Execution.TaskDispatcher"/>).
    /// </summary>
    public const string DispatchPasses = "taskdashboard.dispatch.passes";

    /// <summary>
    /// Histogram (ms), in processes that run jobs: from a progress event's timestamp until the batch
    /// that wrote it is committed and announced, i.e. its wait for a writer plus the batch's round trip
    /// (see <see cref="Tasks.TaskStore.AppendProgressEvents"/>). Tag
    /// <c>write</c>: <c>event</c> (live event) or <c>row</c> (task-row write with its event).
    /// </summary>
    public const string ProgressCommitDelay = "taskdashboard.progress.commit_delay";

    /// <summary>
    /// Histogram (ms), on web nodes: from an event's timestamp to its NOTIFY reaching the node's
    /// listener (across machines this includes their clocks' difference). Not for <c>created</c>
    /// events, which are announced when the task is dispatched.
    /// </summary>
    public const string ProgressNotifyDelay = "taskdashboard.progress.notify_delay";
}
