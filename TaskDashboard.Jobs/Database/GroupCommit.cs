using System.Collections.Concurrent;
using Npgsql;

namespace TaskDashboard.Jobs.Database;

/// <summary>
/// Group commit: items handed in while earlier ones are being written wait in a queue, and each of
/// <c>writers</c> threads takes what is queued (up to <c>batchSize</c>) into one statement and one
/// commit. A lone item is written at once; under load, concurrent writes share a round trip, a
/// commit and a WAL flush instead of each queueing for a connection.
/// Every caller gets its answer only after its item is committed.
/// </summary>
/// <remarks>
/// The writers are threads of their own that write synchronously: a writer blocked on its socket is
/// woken by the kernel when PostgreSQL answers, while an asynchronous one waits for a thread-pool
/// thread to run its continuation, behind whatever the jobs of the process queued there (bench/live,
/// 100 exports hashing and writing their files in the worker: a batch took 5–9 ms from send to answer
/// for 1 ms in PostgreSQL, and live events reached clients after 15–22 ms, p50; with writer threads
/// 4–6 ms).
/// </remarks>
/// <param name="name">Names the writer threads (<c>name</c> 1, 2, …), as seen in dumps and traces.</param>
/// <param name="writeBatch">Writes the items in one statement; returns one result per item, in order.</param>
public sealed class GroupCommit<TItem, TResult>(
    string name, Func<IReadOnlyList<TItem>, IReadOnlyList<TResult>> writeBatch, int writers, int batchSize) : IAsyncDisposable
{
    private readonly BlockingCollection<Pending> queue = new(new ConcurrentQueue<Pending>());
    private readonly Lock startLock = new();
    private Task[]? running;

    public Task<TResult> WriteAsync(TItem item, CancellationToken cancellationToken)
    {
        EnsureStarted();
        var pending = new Pending(item, cancellationToken);
        try
        {
            queue.Add(pending, CancellationToken.None);
        }
        catch (InvalidOperationException)
        {
            throw new ObjectDisposedException(GetType().Name, "The application is stopping.");
        }

        // Once a writer has taken the item its outcome is final, as for a command already sent.
        return pending.Completion.Task;
    }

    public async ValueTask DisposeAsync()
    {
        queue.CompleteAdding();
        if (running is { } loops)
        {
            await Task.WhenAll(loops);
        }
    }

    private void EnsureStarted()
    {
        if (running is not null)
        {
            return;
        }

        lock (startLock)
        {
            running ??= Enumerable.Range(1, writers).Select(StartWriter).ToArray();
        }
    }

    private Task StartWriter(int number)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        new Thread(() =>
        {
            WriteLoop();
            done.SetResult();
        })
        {
            IsBackground = true,
            Name = $"{name} {number}",
        }.Start();
        return done.Task;
    }

    private void WriteLoop()
    {
        var batch = new List<Pending>(batchSize);
        while (queue.TryTake(out var pending, Timeout.Infinite))
        {
            do
            {
                if (pending.CancellationToken.IsCancellationRequested)
                {
                    pending.Completion.TrySetCanceled(pending.CancellationToken);
                }
                else
                {
                    batch.Add(pending);
                }
            }
            while (batch.Count < batchSize && queue.TryTake(out pending));

            if (batch.Count > 0)
            {
                Write(batch);
                batch.Clear();
            }
        }
    }

    private void Write(IReadOnlyList<Pending> batch)
    {
        try
        {
            var results = writeBatch(batch.Select(p => p.Item).ToArray());
            for (var i = 0; i < batch.Count; i++)
            {
                batch[i].Completion.TrySetResult(results[i]);
            }
        }
        catch (PostgresException) when (batch.Count > 1)
        {
            // The statement failed as a whole (one bad row, a deadlock): write each item alone so the
            // others commit and only an item that fails by itself reports the error.
            foreach (var pending in batch)
            {
                Write([pending]);
            }
        }
        catch (Exception exception)
        {
            foreach (var pending in batch)
            {
                pending.Completion.TrySetException(exception);
            }
        }
    }

    private sealed record Pending(TItem Item, CancellationToken CancellationToken)
    {
        // Answers continue on the thread pool, not on the writer that is about to take the next batch.
        public TaskCompletionSource<TResult> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
