using TaskDashboard.Jobs.Execution;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Web.Tasks;

/// <summary>Cancels a task for the API and the dashboard alike.</summary>
public sealed class TaskCanceller(TaskStore store, ArtifactStore artifacts)
{
    /// <summary>
    /// Cancels a waiting task at once, or asks a running one to stop. Null when the caller has no such
    /// task; <c>Changed</c> is false when it had already ended or been asked to stop.
    /// </summary>
    public async Task<(TaskItem Task, bool Changed)?> CancelAsync(TaskScope scope, Guid id, CancellationToken cancellationToken)
    {
        var outcome = await store.RequestCancelAsync(scope, id, cancellationToken);
        if (outcome is ({ State: TaskState.Cancelled }, true))
        {
            // A task waiting to run again may hold partial files of an earlier attempt.
            artifacts.Delete(id);
        }

        return outcome;
    }
}
