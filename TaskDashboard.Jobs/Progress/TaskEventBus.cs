using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.Extensions.Options;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Jobs.Progress;

/// <summary>
/// The in-process broadcaster: one per node. The listener hands it the ids of new events; it reads
/// the events from the log in order (filling any gap) and fans them out to subscribers, each with a
/// bounded buffer so a slow one cannot stall the rest.
/// </summary>
public sealed class TaskEventBus(TaskStore store, IOptions<ProgressOptions> options)
{
    private readonly ConcurrentDictionary<Guid, TaskFeed> feeds = new();

    /// <summary>Live events of one task from now on. Dispose to unsubscribe.</summary>
    public TaskEventSubscription Subscribe(Guid taskId, long knownSeq)
    {
        var feed = feeds.GetOrAdd(taskId, id => new TaskFeed(id));
        var subscription = new TaskEventSubscription(
            Channel.CreateBounded<TaskEvent>(new BoundedChannelOptions(options.Value.SubscriberBuffer)
            {
                FullMode = BoundedChannelFullMode.DropOldest,
                SingleReader = true,
            }),
            s => Unsubscribe(feed, s));
        lock (feed)
        {
            feed.Subscribers.Add(subscription);
            feed.LastSeq = Math.Max(feed.LastSeq, knownSeq);
        }

        return subscription;
    }

    /// <summary>The listener saw <c>taskId:seq</c>; deliver that event and any before it not yet delivered.</summary>
    public async Task OnNotifiedAsync(Guid taskId, long seq, CancellationToken cancellationToken)
    {
        if (feeds.TryGetValue(taskId, out var feed) && seq > feed.LastSeq)
        {
            await DeliverNewAsync(feed, cancellationToken);
        }
    }

    /// <summary>After the listener reconnects: read whatever every watched task logged meanwhile.</summary>
    public async Task CatchUpAsync(CancellationToken cancellationToken)
    {
        foreach (var feed in feeds.Values)
        {
            await DeliverNewAsync(feed, cancellationToken);
        }
    }

    public int WatchedTasks => feeds.Count;

    private async Task DeliverNewAsync(TaskFeed feed, CancellationToken cancellationToken)
    {
        // One reader per task at a time keeps delivery in order.
        await feed.Gate.WaitAsync(cancellationToken);
        try
        {
            long after;
            lock (feed)
            {
                after = feed.LastSeq;
            }

            var events = await store.GetEventsAsync(feed.TaskId, after, cancellationToken);
            if (events.Count == 0)
            {
                return;
            }

            lock (feed)
            {
                foreach (var taskEvent in events)
                {
                    foreach (var subscriber in feed.Subscribers)
                    {
                        subscriber.Writer.TryWrite(taskEvent);
                    }
                }

                feed.LastSeq = events[^1].Seq;
            }
        }
        finally
        {
            feed.Gate.Release();
        }
    }

    private void Unsubscribe(TaskFeed feed, TaskEventSubscription subscription)
    {
        lock (feed)
        {
            feed.Subscribers.Remove(subscription);
            if (feed.Subscribers.Count == 0)
            {
                feeds.TryRemove(new KeyValuePair<Guid, TaskFeed>(feed.TaskId, feed));
            }
        }
    }

    private sealed class TaskFeed(Guid taskId)
    {
        public Guid TaskId { get; } = taskId;

        public List<TaskEventSubscription> Subscribers { get; } = [];

        public long LastSeq { get; set; }

        public SemaphoreSlim Gate { get; } = new(1, 1);
    }
}

/// <summary>A subscriber's buffered view of one task's events.</summary>
public sealed class TaskEventSubscription(Channel<TaskEvent> channel, Action<TaskEventSubscription> unsubscribe) : IDisposable
{
    private int disposed;

    public ChannelReader<TaskEvent> Reader => channel.Reader;

    internal ChannelWriter<TaskEvent> Writer => channel.Writer;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref disposed, 1) == 0)
        {
            unsubscribe(this);
            channel.Writer.TryComplete();
        }
    }
}
