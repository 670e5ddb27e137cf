using Microsoft.Extensions.Options;
using TaskDashboard.Jobs.Database;

namespace TaskDashboard.Jobs.Tasks;

/// <summary>
/// Group commit for submissions (<see cref="GroupCommit{TItem, TResult}"/>): concurrent submissions
/// share one INSERT and one commit, up to <see cref="JobsOptions.SubmitBatchSize"/> at a time.
/// </summary>
public sealed class TaskInsertBatcher(TaskStore store, IOptions<JobsOptions> options) : IAsyncDisposable
{
    private readonly GroupCommit<NewTask, (TaskItem Task, bool Created)> inserts =
        new("task inserts", store.Insert, options.Value.SubmitWriters, options.Value.SubmitBatchSize);

    /// <summary>Inserts the task (see <see cref="TaskStore.Insert"/>) in the next batch.</summary>
    public Task<(TaskItem Task, bool Created)> InsertAsync(NewTask task, CancellationToken cancellationToken) =>
        inserts.WriteAsync(task, cancellationToken);

    public ValueTask DisposeAsync() => inserts.DisposeAsync();
}
