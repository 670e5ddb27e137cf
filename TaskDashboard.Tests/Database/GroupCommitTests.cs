using TaskDashboard.Jobs.Database;

namespace TaskDashboard.Tests.Database;

public sealed class GroupCommitTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Batches_AreWritten_OnTheWritersOwnThreads_NotOnTheThreadPool()
    {
        var threads = new List<(string? Name, bool Pooled)>();
        await using var commit = new GroupCommit<int, int>("test writer", batch =>
        {
            lock (threads)
            {
                threads.Add((Thread.CurrentThread.Name, Thread.CurrentThread.IsThreadPoolThread));
            }

            return [.. batch.Select(i => i * 2)];
        }, writers: 1, batchSize: 10);

        Assert.Equal(6, await commit.WriteAsync(3, Ct));
        Assert.Equal([("test writer 1", false)], threads);
    }

    [Fact]
    public async Task ItemsQueuedWhileABatchIsWritten_ShareTheNextBatch_AndEachGetsItsOwnAnswer()
    {
        var batches = new List<int[]>();
        using var firstStarted = new ManualResetEventSlim();
        using var releaseFirst = new ManualResetEventSlim();
        await using var commit = new GroupCommit<int, string>("test writer", batch =>
        {
            lock (batches)
            {
                batches.Add([.. batch]);
            }

            firstStarted.Set();
            releaseFirst.Wait();
            return [.. batch.Select(i => $"#{i}")];
        }, writers: 1, batchSize: 3);

        var first = commit.WriteAsync(0, Ct);
        Assert.True(firstStarted.Wait(TimeSpan.FromSeconds(10), Ct));
        var queued = Enumerable.Range(1, 5).Select(i => commit.WriteAsync(i, Ct)).ToArray();
        releaseFirst.Set();

        Assert.Equal("#0", await first);
        var answers = await Task.WhenAll(queued);
        Assert.Equal(["#1", "#2", "#3", "#4", "#5"], answers);
        Assert.Equal([[0], [1, 2, 3], [4, 5]], batches);
    }

    [Fact]
    public async Task Disposing_WritesWhatIsQueued_AndRefusesNewItems()
    {
        using var release = new ManualResetEventSlim();
        var commit = new GroupCommit<int, int>("test writer", batch =>
        {
            release.Wait();
            return [.. batch];
        }, writers: 2, batchSize: 1);
        var writes = Enumerable.Range(0, 4).Select(i => commit.WriteAsync(i, Ct)).ToArray();

        var disposing = commit.DisposeAsync().AsTask();
        release.Set();
        await disposing;

        var answers = await Task.WhenAll(writes);
        Assert.Equal([0, 1, 2, 3], answers);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => commit.WriteAsync(4, Ct));
    }

    [Fact]
    public async Task AFailingWriter_FailsItsItems_AndTheWriterGoesOn()
    {
        await using var commit = new GroupCommit<int, int>("test writer", batch =>
            batch.Contains(13) ? throw new InvalidOperationException("unlucky") : [.. batch], writers: 1, batchSize: 10);

        var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => commit.WriteAsync(13, Ct));
        Assert.Equal("unlucky", failure.Message);
        Assert.Equal(14, await commit.WriteAsync(14, Ct));
    }
}
