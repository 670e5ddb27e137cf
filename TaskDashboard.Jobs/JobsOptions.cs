using System.ComponentModel.DataAnnotations;

namespace TaskDashboard.Jobs;

/// <summary>How this process runs jobs. Bound from the <c>Jobs</c> configuration section.</summary>
public sealed class JobsOptions
{
    public const string SectionName = "Jobs";

    /// <summary>Run a Hangfire server (workers) in this process.</summary>
    public bool RunServer { get; set; } = true;

    /// <summary>Hangfire workers in this process.</summary>
    [Range(1, 100)]
    public int WorkerCount { get; set; } = 4;

    /// <summary>How often idle workers poll PostgreSQL for queued jobs (a floor under long polling).</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:05:00")]
    public TimeSpan QueuePollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Wake idle workers through LISTEN/NOTIFY when a job is enqueued in another process (one listening
    /// connection per worker process, <see cref="Execution.JobQueueWakeUp"/>); off, they find it at their next poll.
    /// </summary>
    public bool LongPolling { get; set; } = true;

    /// <summary>Most submissions written in one INSERT and commit; concurrent submissions share one (group commit).</summary>
    [Range(1, 1_000)]
    public int SubmitBatchSize { get; set; } = 100;

    /// <summary>Submission batches this process may be writing at once.</summary>
    [Range(1, 64)]
    public int SubmitWriters { get; set; } = 2;

    /// <summary>How often the dispatcher looks for committed tasks that have no Hangfire job yet.</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:05:00")]
    public TimeSpan DispatchInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Tasks the dispatcher enqueues per transaction.</summary>
    [Range(1, 10_000)]
    public int DispatchBatchSize { get; set; } = 50;

    /// <summary>
    /// At most about this many tasks wait in Hangfire's queues at once, cluster-wide; a longer backlog
    /// waits in the outbox (Pending, no job yet) and is enqueued, highest priority first, as workers
    /// take jobs. 0 enqueues every task at once.
    /// </summary>
    [Range(0, 1_000_000)]
    public int DispatchAhead { get; set; } = 1000;

    /// <summary>Dispatch loops that may run at once in this process while a backlog lasts.</summary>
    [Range(1, 64)]
    public int DispatchConcurrency { get; set; } = 2;

    /// <summary>
    /// How long a delayed task or retry may be due before this process's dispatcher creates its job:
    /// a standby behind the other processes' dispatchers, which all wake when it falls due. 0 takes it
    /// at once; worker-only processes default to 1 s (<c>--role worker</c>), so that the web nodes
    /// create the jobs of what falls due and the workers, busy running jobs, take it only when none did.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:05:00")]
    public TimeSpan DispatchStandby { get; set; } = TimeSpan.Zero;

    /// <summary>How often each process checks its running tasks for cancel requests and lost leases, and renews their due leases (one statement for all of them: <see cref="Execution.LeaseChecks"/>).</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:01:00")]
    public TimeSpan CancellationCheckInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Least time between two live progress events of a task (~10/s); reports in between are coalesced to the latest.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:01:00")]
    public TimeSpan ProgressEventInterval { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Least time between two writes of a task's row for progress and checkpoints (~2/s); stage changes are written at once.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00")]
    public TimeSpan ProgressRowInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Most live progress events (or task-row progress writes) written in one statement and commit; those reported at the same time in one process share one.</summary>
    [Range(1, 1_000)]
    public int ProgressBatchSize { get; set; } = 100;

    /// <summary>Batches of live progress events, and batches of task-row progress writes, one process may be writing at once (each).</summary>
    [Range(1, 64)]
    public int ProgressWriters { get; set; } = 2;

    /// <summary>Attempts a task gets before it ends Failed.</summary>
    [Range(1, 100)]
    public int MaxAttempts { get; set; } = 3;

    /// <summary>Delay before the first retry of a transient failure; it doubles per attempt (with ±20 % jitter).</summary>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00")]
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Longest delay between retries.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "1.00:00:00")]
    public TimeSpan RetryMaxDelay { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How long a running task's lease lasts without renewal; a dead worker's task is taken back after it.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How often a running task whose progress write or own query failed because the database was
    /// unreachable (restarting, failing over) tries again, until it gets through or
    /// <see cref="LeaseDuration"/> has passed; the task waits meanwhile instead of losing its attempt.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:01:00")]
    public TimeSpan DatabaseRetryInterval { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>How often a running task's lease is renewed, at the process's first check after it (well under <see cref="LeaseDuration"/>).</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:10:00")]
    public TimeSpan LeaseRenewInterval { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>How often each process looks for expired leases of dead workers, and for tasks whose job may be lost.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:10:00")]
    public TimeSpan LeaseCheckInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// How long a task may wait with a Hangfire job before that job's state is checked, and again
    /// between checks while the job is still queued; a job that is gone or ended without running the
    /// task is replaced.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan LostJobAfter { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>How long running jobs get to checkpoint and stop when the process shuts down.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00")]
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Most tasks of a kind that may run at once in the whole cluster, by kind (e.g.
    /// <c>Jobs:ConcurrencyLimits:export = 2</c>); kinds not listed are limited only by worker count.
    /// Tasks over a limit wait undispatched, holding no worker, and start as slots free.
    /// </summary>
    public Dictionary<string, int> ConcurrencyLimits { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Tasks one owner may have waiting (Pending or Scheduled); more submissions get 429 until some start.</summary>
    [Range(1, 10_000_000)]
    public int MaxWaitingPerOwner { get; set; } = 1_000;

    /// <summary>Tasks all owners together may have waiting; more submissions get 429.</summary>
    [Range(1, 100_000_000)]
    public int MaxWaitingTotal { get; set; } = 100_000;

    /// <summary>How long a node reuses its counts of waiting tasks (an owner's and everyone's), adding the tasks it created since.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:01:00")]
    public TimeSpan WaitingCountRefresh { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Folder for task artifacts, shared by all nodes (relative paths are from the working directory).</summary>
    [Required]
    public string ArtifactsPath { get; set; } = ".data/artifacts";
}
