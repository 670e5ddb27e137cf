using System.Threading.Channels;
using Npgsql;

namespace TaskDashboard.Jobs.Database;

/// <summary>
/// Group commit: items handed in while earlier ones are being written wait in a queue, and each of
/// <c>writers</c> loops takes what is queued (up to <c>batchSize</c>) into one statement and one
/// commit. A lone item is written at once; under load, concurrent writes share a round trip, a
/// commit and a WAL flush instead of each queueing for a connection (and, for statements that
/// NOTIFY, for PostgreSQL's database-wide notify lock, which a commit holds through its flush).
/// Every caller gets its answer only after its item is committed.
/// </summary>
/// <param name="writeBatch">Writes the items in one statement; returns one result per item, in order.</param>
public sealed class GroupCommit<TItem, TResult>(
    Func<IReadOnlyList<TItem>, Task<IReadOnlyList<TResult>>> writeBatch, int writers, int batchSize) : IAsyncDisposable
{
    private readonly Channel<Pending> queue = Channel.CreateUnbounded<Pending>();
    private readonly Lock startLock = new();
    private Task[]? running;

    public Task<TResult> WriteAsync(TItem item, CancellationToken cancellationToken)
    {
        EnsureStarted();
        var pending = new Pending(item, cancellationToken);
        if (!queue.Writer.TryWrite(pending))
        {
            throw new ObjectDisposedException(GetType().Name, "The application is stopping.");
        }

        // Once a writer has taken the item its outcome is final, as for a command already sent.
        return pending.Completion.Task;
    }

    public async ValueTask DisposeAsync()
    {
        queue.Writer.TryComplete();
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
            running ??= Enumerable.Range(0, writers).Select(_ => Task.Run(WriteLoopAsync)).ToArray();
        }
    }

    private async Task WriteLoopAsync()
    {
        var batch = new List<Pending>(batchSize);
        while (await queue.Reader.WaitToReadAsync())
        {
            while (batch.Count < batchSize && queue.Reader.TryRead(out var pending))
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

            if (batch.Count > 0)
            {
                await WriteAsync(batch);
                batch.Clear();
            }
        }
    }

    private async Task WriteAsync(IReadOnlyList<Pending> batch)
    {
        try
        {
            var results = await writeBatch(batch.Select(p => p.Item).ToArray());
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
                await WriteAsync([pending]);
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
