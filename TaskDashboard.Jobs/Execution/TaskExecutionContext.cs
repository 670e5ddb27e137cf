using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Jobs.Execution;

/// <summary>What a task kind gets for one attempt: the task, somewhere to write, a way to report.</summary>
public sealed class TaskExecutionContext(TaskItem task, ArtifactStore artifacts, TaskStore store)
{
    public TaskItem Task { get; } = task;

    public ArtifactStore Artifacts { get; } = artifacts;

    /// <summary>Records progress (0-100) with a stage and a human message.</summary>
    public async Task ReportProgressAsync(int progress, string stage, string? message, CancellationToken cancellationToken)
    {
        // TODO(#4): coalesce (live feed ~10/s, row ~2/s) and publish through NOTIFY.
        await store.ReportProgressAsync(Task.Id, progress, stage, message, cancellationToken);
    }
}
