using Hangfire;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TaskDashboard.Jobs.Kinds;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Jobs.Execution;

/// <summary>
/// The one Hangfire job: runs an attempt of any task kind. Its argument is the task id; it reloads
/// the task, and a run whose task is not pending (already running elsewhere, final, cancelled, or
/// never dispatched) does nothing, so duplicate or late runs are harmless.
/// </summary>
public sealed class TaskJob(
    TaskStore store,
    TaskKindRegistry kinds,
    ArtifactStore artifacts,
    IOptions<JobsOptions> options,
    ILogger<TaskJob> logger)
{
    // Attempts are counted on the task, not by Hangfire.
    [AutomaticRetry(Attempts = 0)]
    public async Task RunAsync(Guid taskId, CancellationToken cancellationToken)
    {
        var task = await store.TryStartAsync(taskId, cancellationToken);
        if (task is null)
        {
            logger.LogInformation("Task {TaskId} is not pending; nothing to run", taskId);
            return;
        }

        if (!kinds.TryGet(task.Kind, out var kind))
        {
            await store.FailAsync(taskId, $"No task kind '{task.Kind}' is registered on this worker.", CancellationToken.None);
            return;
        }

        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var watcher = WatchForCancellationAsync(taskId, cancel);
        try
        {
            var result = await kind.ExecuteAsync(new TaskExecutionContext(task, artifacts, store), cancel.Token);
            await store.SucceedAsync(taskId, result, CancellationToken.None);
            logger.LogInformation("Task {TaskId} succeeded on attempt {Attempt}", taskId, task.Attempt);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The worker is shutting down: hand the task back; Hangfire re-queues the job.
            artifacts.Delete(taskId);
            await store.RequeueAsync(taskId, "The worker shut down; the task will run again.", CancellationToken.None);
            throw;
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            artifacts.Delete(taskId);
            await store.CompleteCancellationAsync(taskId, CancellationToken.None);
            logger.LogInformation("Task {TaskId} cancelled while running", taskId);
        }
        catch (Exception exception)
        {
            artifacts.Delete(taskId);
            await store.FailAsync(taskId, exception.Message, CancellationToken.None);
            logger.LogWarning(exception, "Task {TaskId} failed on attempt {Attempt}", taskId, task.Attempt);
        }
        finally
        {
            await cancel.CancelAsync();
            await watcher;
        }
    }

    // TODO(#4): react to the cancel NOTIFY at once; polling is the fallback.
    private async Task WatchForCancellationAsync(Guid taskId, CancellationTokenSource cancel)
    {
        try
        {
            while (!cancel.IsCancellationRequested)
            {
                await Task.Delay(options.Value.CancellationCheckInterval, cancel.Token);
                if (await store.IsCancelRequestedAsync(taskId, cancel.Token))
                {
                    await cancel.CancelAsync();
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (Exception exception)
        {
            logger.LogWarning(exception, "Cancellation watch of task {TaskId} stopped", taskId);
        }
    }
}
