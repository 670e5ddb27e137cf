using Hangfire;
using Hangfire.States;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Jobs.Execution;

/// <summary>
/// Takes back the tasks of dead workers. Hangfire.PostgreSql would re-run an orphaned job only after
/// its invisibility timeout (30 minutes by default); a lease that is not renewed expires in
/// <see cref="JobsOptions.LeaseDuration"/>, and every process checks for that. It also re-queues
/// tasks whose Hangfire job is gone or ended without running them (a job deleted in the Hangfire
/// dashboard, say), so no task waits forever.
/// </summary>
public sealed class LeaseReaper(
    TaskStore store,
    TaskDispatcher dispatcher,
    ArtifactStore artifacts,
    JobStorage jobStorage,
    IOptions<JobsOptions> options,
    ILogger<LeaseReaper> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.LeaseCheckInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                await RecoverOnceAsync(stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    public async Task RecoverOnceAsync(CancellationToken cancellationToken)
    {
        try
        {
            var recovered = await store.RecoverExpiredLeasesAsync(cancellationToken);
            foreach (var task in recovered)
            {
                Log.Recovered(logger, task.Id, task.State);
                if (task.IsFinal)
                {
                    artifacts.Delete(task.Id);
                }
            }

            var requeued = recovered.Count(t => t.State == TaskState.Pending) + await RequeueLostJobsAsync(cancellationToken);
            if (requeued > 0)
            {
                dispatcher.Wake();
            }
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            Log.RecoveryFailed(logger, exception);
        }
    }

    private static readonly HashSet<string> StillWaiting =
        [EnqueuedState.StateName, ProcessingState.StateName, ScheduledState.StateName, AwaitingState.StateName];

    // A job still queued or running is only slow; any other state (or none) means it will never
    // start its task. Read through Hangfire's storage API, not its tables.
    private async Task<int> RequeueLostJobsAsync(CancellationToken cancellationToken)
    {
        var waiting = await store.FindLongWaitingAsync(options.Value.LostJobAfter, 100, cancellationToken);
        if (waiting.Count == 0)
        {
            return 0;
        }

        var requeued = 0;
        var stillWaiting = new List<(Guid, string)>();
        using var connection = jobStorage.GetConnection();
        foreach (var (id, jobId) in waiting)
        {
            var state = connection.GetJobData(jobId)?.State;
            if (state is not null && StillWaiting.Contains(state))
            {
                stillWaiting.Add((id, jobId));
                continue;
            }

            if (await store.ForgetLostJobAsync(id, jobId, cancellationToken))
            {
                Log.LostJobRequeued(logger, id, jobId, state ?? "missing");
                requeued++;
            }
        }

        // Checked again after another Jobs:LostJobAfter, not on every pass: behind a long queue the
        // same oldest tasks would otherwise be looked up on every pass of every node.
        if (stillWaiting.Count > 0)
        {
            await store.JobsSeenWaitingAsync(stillWaiting, cancellationToken);
        }

        return requeued;
    }
}
