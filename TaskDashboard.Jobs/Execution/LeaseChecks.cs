using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Jobs.Execution;

/// <summary>
/// Watches every running attempt of this process, all in one statement every
/// <see cref="JobsOptions.CancellationCheckInterval"/>: whether a cancel was asked for and whether
/// the attempt still holds its lease, renewing the leases last renewed a
/// <see cref="JobsOptions.LeaseRenewInterval"/> ago or more. One statement a second per process
/// however many tasks it runs, instead of one per task (100 running tasks made a quarter of a busy
/// round's transactions).
/// </summary>
public sealed class LeaseChecks(TaskStore store, TimeProvider timeProvider, IOptions<JobsOptions> options, ILogger<LeaseChecks> logger) : BackgroundService
{
    private readonly Lock gate = new();
    private readonly HashSet<Watch> watched = [];

    /// <summary>How many attempts the last check covered (one query for all of them).</summary>
    public int LastCheckedCount { get; private set; }

    /// <summary>Watches <paramref name="lease"/>, just claimed or renewed, until the returned watch is disposed.</summary>
    public Watch Start(TaskLease lease)
    {
        var watch = new Watch(this, lease, timeProvider.GetTimestamp());
        lock (gate)
        {
            watched.Add(watch);
        }

        return watch;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.CancellationCheckInterval, timeProvider);
        var failing = false;
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                Watch[] watches;
                lock (gate)
                {
                    watches = [.. watched];
                }

                if (watches.Length == 0)
                {
                    continue;
                }

                try
                {
                    var settings = options.Value;
                    var asked = timeProvider.GetTimestamp();
                    var states = await store.CheckLeasesAsync(
                        [.. watches.Select(w => (w.Lease, timeProvider.GetElapsedTime(w.RenewedAt) >= settings.LeaseRenewInterval))],
                        settings.LeaseDuration,
                        stoppingToken);
                    LastCheckedCount = watches.Length;
                    failing = false;
                    for (var i = 0; i < watches.Length; i++)
                    {
                        if (states[i].Renewed)
                        {
                            watches[i].RenewedAt = asked;
                        }

                        if (!states[i].Held || states[i].CancelRequested)
                        {
                            watches[i].Stop(new LeaseState(states[i].Held, states[i].CancelRequested));
                        }
                    }
                }
                catch (Exception exception) when (exception is not OperationCanceledException)
                {
                    // The database restarting, say: tried again at the next tick (the leases last
                    // for Jobs:LeaseDuration meanwhile). If it stays away longer than that, the first
                    // check that gets through finds the leases taken.
                    if (!failing)
                    {
                        Log.LeaseChecksFailed(logger, exception, watches.Length);
                        failing = true;
                    }
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private void Forget(Watch watch)
    {
        lock (gate)
        {
            watched.Remove(watch);
        }
    }

    /// <summary>What stopped an attempt: its lease taken by another worker, or a cancel request.</summary>
    public sealed record LeaseState(bool Held, bool CancelRequested);

    /// <summary>One attempt's watch: <see cref="Stopped"/> completes when the attempt must stop.</summary>
    public sealed class Watch(LeaseChecks checks, TaskLease lease, long renewedAt) : IDisposable
    {
        private readonly TaskCompletionSource<LeaseState> stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskLease Lease => lease;

        /// <summary>When the lease was last extended (a <see cref="TimeProvider"/> timestamp; only the checks' loop writes it).</summary>
        internal long RenewedAt { get; set; } = renewedAt;

        public Task<LeaseState> Stopped => stopped.Task;

        /// <summary>Whether the attempt was stopped because another worker holds its task now.</summary>
        public bool LeaseLost => Stopped is { IsCompletedSuccessfully: true, Result.Held: false };

        /// <summary>Whether the attempt was stopped because a cancel was asked for.</summary>
        public bool CancelRequested => Stopped is { IsCompletedSuccessfully: true, Result.CancelRequested: true };

        internal void Stop(LeaseState state)
        {
            if (stopped.TrySetResult(state))
            {
                checks.Forget(this);
            }
        }

        public void Dispose() => checks.Forget(this);
    }
}
