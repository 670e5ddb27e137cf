using System.Threading.Channels;
using Microsoft.Extensions.Options;
using Npgsql;

namespace TaskDashboard.Jobs.Tasks;

/// <summary>
/// Group commit for submissions: tasks submitted while earlier ones are being written wait in a
/// queue, and each writer takes what is queued (up to <see cref="JobsOptions.SubmitBatchSize"/>) into
/// one INSERT and one commit. A lone submission is written at once; under load, concurrent
/// submissions share a round trip, a commit and a WAL flush instead of queueing for a connection
/// each. Every caller still gets its answer only after its row is committed.
/// </summary>
public sealed class TaskInsertBatcher(TaskStore store, IOptions<JobsOptions> options) : IAsyncDisposable
{
    private readonly Channel<Pending> queue = Channel.CreateUnbounded<Pending>();
    private readonly Lock startLock = new();
    private Task[]? writers;

    /// <summary>Inserts the task (see <see cref="TaskStore.InsertAsync"/>) in the next batch.</summary>
    public Task<(TaskItem Task, bool Created)> InsertAsync(NewTask task, CancellationToken cancellationToken)
    {
        EnsureStarted();
        var pending = new Pending(task, cancellationToken);
        if (!queue.Writer.TryWrite(pending))
        {
            throw new ObjectDisposedException(nameof(TaskInsertBatcher), "The application is stopping.");
        }

        // Once a writer has taken the task its outcome is final, as for a command already sent.
        return pending.Completion.Task;
    }

    public async ValueTask DisposeAsync()
    {
        queue.Writer.TryComplete();
        if (writers is { } running)
        {
            await Task.WhenAll(running);
        }
    }

    private void EnsureStarted()
    {
        if (writers is not null)
        {
            return;
        }

        lock (startLock)
        {
            writers ??= Enumerable.Range(0, options.Value.SubmitWriters).Select(_ => Task.Run(WriteLoopAsync)).ToArray();
        }
    }

    private async Task WriteLoopAsync()
    {
        var batch = new List<Pending>(options.Value.SubmitBatchSize);
        while (await queue.Reader.WaitToReadAsync())
        {
            while (batch.Count < options.Value.SubmitBatchSize && queue.Reader.TryRead(out var pending))
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
            var results = await store.InsertAsync(batch.Select(p => p.Task).ToArray(), CancellationToken.None);
            for (var i = 0; i < batch.Count; i++)
            {
                batch[i].Completion.TrySetResult(results[i]);
            }
        }
        catch (PostgresException) when (batch.Count > 1)
        {
            // The statement failed as a whole (one bad row, a deadlock): write each task alone so the
            // others commit and only a task that fails by itself reports the error.
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

    private sealed record Pending(NewTask Task, CancellationToken CancellationToken)
    {
        // Answers continue on the thread pool, not on the writer that is about to take the next batch.
        public TaskCompletionSource<(TaskItem Task, bool Created)> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
