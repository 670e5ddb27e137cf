using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Jobs.Execution;

/// <summary>
/// Takes back the tasks of dead workers. Hangfire.PostgreSql would re-run an orphaned job only after
/// its invisibility timeout (30 minutes by default); a lease that is not renewed expires in
/// <see cref="JobsOptions.LeaseDuration"/>, and every process checks for that.
/// </summary>
public sealed class LeaseReaper(
    TaskStore store,
    TaskDispatcher dispatcher,
    ArtifactStore artifacts,
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

            if (recovered.Any(t => t.State == TaskState.Pending))
            {
                dispatcher.Wake();
            }
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            Log.RecoveryFailed(logger, exception);
        }
    }
}
