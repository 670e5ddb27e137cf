using System.Data;
using System.Diagnostics.Metrics;
using Hangfire.PostgreSql;
using Hangfire.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using TaskDashboard.Jobs.Database;
using TaskDashboard.Jobs.Progress;

namespace TaskDashboard.Jobs.Execution;

/// <summary>
/// Wakes this process's idle Hangfire workers when a job is enqueued anywhere in the cluster: our
/// replacement for Hangfire.PostgreSql's long polling. Its long polling LISTENs on a pooled
/// connection per waiting worker and returns that connection to the pool still listening, and
/// PostgreSQL signals every listening backend of the database on every NOTIFY-ing commit — with 100
/// workers each progress event woke ~100 idle backends (perf: a quarter of the machine's CPU in
/// bench/live, single UPDATEs 5.6 ms p50 instead of 2.1 ms). Here one connection per process listens
/// (<see cref="JobWakeListener"/>) and every enqueue NOTIFYs <see cref="Channel"/> in its own transaction,
/// except inside <see cref="Defer"/>: the dispatcher announces a whole batch in its own transaction.
/// </summary>
/// <remarks>
/// A notification carries how many jobs it announces and wakes that many waiting workers, not all
/// of them: 100 idle workers woken by each of the dispatcher's batches ran ~2,000 empty dequeues a
/// second while 100 jobs started (they slowed every other statement: bench/live). A worker that
/// took a job wakes one more, so a notification that undercounts (or jobs another process's
/// workers left) still drain at once.
/// </remarks>
public sealed class JobQueueWakeUp(IMeterFactory meters, IOptions<JobsOptions> options)
{
    /// <summary>The channel an enqueue notifies; the payload is the number of jobs (empty: wake every waiting worker).</summary>
    public const string Channel = "taskdashboard_jobs";


    private readonly LinkedList<CancellationTokenSource> waiting = new();

    private readonly Counter<long> dequeues = meters.Create(JobsMetrics.MeterName).CreateCounter<long>(
        JobsMetrics.QueueDequeues, unit: "{dequeue}", description: "Times an idle worker started looking for a job");

    // Hangfire enqueues synchronously on the creating thread, inside the caller's flow.
    private static readonly AsyncLocal<bool> Deferred = new();

    /// <summary>
    /// Enqueues until the returned scope is disposed do not notify: the caller runs
    /// <see cref="AnnounceAsync"/> in the transaction that lets the jobs' tasks run. The dispatcher's
    /// jobs cannot start before its transaction commits (their claims wait for its row locks), and a
    /// NOTIFY per job was one more commit serialised on PostgreSQL's NOTIFY lock each.
    /// </summary>
    public static IDisposable Defer()
    {
        Deferred.Value = true;
        return new DeferScope();
    }

    /// <summary>
    /// Announces <paramref name="count"/> jobs enqueued under <see cref="Defer"/>, in the caller's
    /// transaction (delivered when it commits); nothing when <see cref="JobsOptions.LongPolling"/> is off.
    /// </summary>
    public async Task AnnounceAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, int count, CancellationToken cancellationToken)
    {
        if (Announces)
        {
            await using var notify = new NpgsqlCommand($"SELECT pg_notify('{Channel}', @count::text)", connection, transaction);
            notify.Parameters.AddWithValue("count", count);
            await notify.ExecuteNonQueryAsync(cancellationToken);
        }
    }

    // Enqueues notify (and workers are woken) only with Jobs:LongPolling on.
    private bool Announces => options.Value.LongPolling;

    /// <summary>How many of this process's workers are looking for a job or waiting for one.</summary>
    public int Waiting
    {
        get
        {
            lock (waiting)
            {
                return waiting.Count;
            }
        }
    }

    /// <summary>Makes every waiting worker look at the queue now.</summary>
    public void WakeAll() => Wake(int.MaxValue);

    /// <summary>Makes up to <paramref name="count"/> waiting workers look at the queue now, those waiting longest first.</summary>
    public void Wake(int count)
    {
        var woken = new List<CancellationTokenSource>();
        lock (waiting)
        {
            while (woken.Count < count && waiting.First is { } first)
            {
                waiting.RemoveFirst();
                woken.Add(first.Value);
            }
        }

        foreach (var waiter in woken)
        {
            waiter.Cancel();
        }
    }

    /// <summary>Wakes workers for a notification's payload: a job count, anything else wakes all.</summary>
    public void OnNotified(string payload)
    {
        if (int.TryParse(payload, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var count) && count > 0)
        {
            Wake(count);
        }
        else
        {
            WakeAll();
        }
    }

    // A worker registers before it looks at the queue, so a wake-up in between is never missed: its
    // token is cancelled, which Hangfire checks before it waits (never while it takes a job).
    private LinkedListNode<CancellationTokenSource> Register()
    {
        lock (waiting)
        {
            return waiting.AddLast(new CancellationTokenSource());
        }
    }

    private void Unregister(LinkedListNode<CancellationTokenSource> node)
    {
        lock (waiting)
        {
            if (node.List is not null)
            {
                waiting.Remove(node);
            }
        }
    }

    /// <summary>Puts the wake-up around Hangfire.PostgreSql's queue for <paramref name="queues"/>.</summary>
    public void Install(PostgreSqlStorage storage, PostgreSqlStorageOptions storageOptions, IEnumerable<string> queues) =>
        storage.QueueProviders.Add(new Provider(new PostgreSqlJobQueueProvider(storage, storageOptions), this), queues);

    private sealed class DeferScope : IDisposable
    {
        public void Dispose() => Deferred.Value = false;
    }

    private sealed class Provider(PostgreSqlJobQueueProvider inner, JobQueueWakeUp wakeUp) : IPersistentJobQueueProvider
    {
        public IPersistentJobQueue GetJobQueue() => new Queue(inner.GetJobQueue(), wakeUp);

        public IPersistentJobQueueMonitoringApi GetJobQueueMonitoringApi() => new Monitoring(inner.GetJobQueueMonitoringApi());
    }

    // The dashboard lists the queues of every provider, and both this one and the default one read
    // the same table: only the default one lists them, this one answers for its queues when asked.
    private sealed class Monitoring(IPersistentJobQueueMonitoringApi inner) : IPersistentJobQueueMonitoringApi
    {
        public IEnumerable<string> GetQueues() => [];

        public IEnumerable<long> GetEnqueuedJobIds(string queue, int from, int perPage) => inner.GetEnqueuedJobIds(queue, from, perPage);

        public IEnumerable<long> GetFetchedJobIds(string queue, int from, int perPage) => inner.GetFetchedJobIds(queue, from, perPage);

        public EnqueuedAndFetchedCountDto GetEnqueuedAndFetchedCount(string queue) => inner.GetEnqueuedAndFetchedCount(queue);
    }

    private sealed class Queue(IPersistentJobQueue inner, JobQueueWakeUp wakeUp) : IPersistentJobQueue
    {
        public IFetchedJob Dequeue(string[] queues, CancellationToken cancellationToken)
        {
            while (true)
            {
                // Hangfire's dequeue looks at the queue, then waits QueuePollInterval or until its token
                // is cancelled; it checks the token only before looking, so a job it took is never dropped.
                var waiter = wakeUp.Register();
                wakeUp.dequeues.Add(1);
                var wake = waiter.Value.Token;
                IFetchedJob job;
                try
                {
                    using var either = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, wake);
                    job = inner.Dequeue(queues, either.Token);
                }
                catch (OperationCanceledException) when (wake.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
                {
                    continue;
                }
                finally
                {
                    wakeUp.Unregister(waiter);
                }

                // More may be waiting (a notification counts the jobs of one transaction; another
                // process's workers may have left some): one more worker looks.
                wakeUp.Wake(1);
                return job;
            }
        }

        public void Enqueue(IDbConnection connection, string queue, string jobId)
        {
            inner.Enqueue(connection, queue, jobId);
            if (wakeUp.Announces && !Deferred.Value)
            {
                // Inside Hangfire's transaction: delivered when the job is committed (and once per transaction).
                using var notify = connection.CreateCommand();
                notify.CommandText = $"NOTIFY {Channel}, '1'";
                notify.ExecuteNonQuery();
            }
        }
    }
}

/// <summary>The one connection of a worker process that listens for enqueued jobs (<see cref="JobQueueWakeUp"/>).</summary>
public sealed class JobWakeListener(
    [FromKeyedServices(JobWakeListener.ListenDataSourceKey)] NpgsqlDataSource listenSource,
    DatabasePools pools,
    JobQueueWakeUp wakeUp,
    IOptions<ProgressOptions> options,
    ILogger<JobWakeListener> logger) : ChannelListener(listenSource, pools, options.Value, logger)
{
    /// <summary>The listener connection's application_name in pg_stat_activity.</summary>
    public const string ApplicationName = "taskdashboard-job-wake";

    /// <summary>The key of the unpooled data source the listener opens its connection from.</summary>
    public const string ListenDataSourceKey = "job-wake";

    protected override string ChannelName => JobQueueWakeUp.Channel;

    // Jobs enqueued while the connection was down were not announced: look once.
    protected override Task OnListeningAsync(CancellationToken cancellationToken)
    {
        wakeUp.WakeAll();
        return Task.CompletedTask;
    }

    protected override void OnNotification(string payload) => wakeUp.OnNotified(payload);
}
