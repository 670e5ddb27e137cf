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
    private readonly ConcurrentDictionary<string, HashSet<TaskEventSubscription>> ownerFeeds = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<Guid, string> owners = new();
    private DateTimeOffset lastCaughtUp = DateTimeOffset.UtcNow;

    // The owner-feed key of subscribers that watch every owner's tasks (the ops role's dashboard).
    private const string AllOwners = "\0all";

    /// <summary>Live events of every task of every owner from now on (for the ops role). Dispose to unsubscribe.</summary>
    public TaskEventSubscription SubscribeAll() => SubscribeOwner(AllOwners);

    /// <summary>Live events of every task of one owner from now on. Dispose to unsubscribe.</summary>
    public TaskEventSubscription SubscribeOwner(string ownerId)
    {
        var list = ownerFeeds.GetOrAdd(ownerId, _ => []);
        var subscription = NewSubscription(s =>
        {
            lock (list)
            {
                list.Remove(s);
            }
        });
        lock (list)
        {
            list.Add(subscription);
        }

        return subscription;
    }

    /// <summary>Live events of one task from now on. Dispose to unsubscribe.</summary>
    public TaskEventSubscription Subscribe(Guid taskId, long knownSeq)
    {
        while (true)
        {
            var feed = feeds.GetOrAdd(taskId, id => new TaskFeed(id));
            lock (feed)
            {
                // The last subscriber may have just removed this feed; then take the new one.
                if (!feeds.TryGetValue(taskId, out var registered) || !ReferenceEquals(registered, feed))
                {
                    continue;
                }

                // Only a new feed starts at the subscriber's position: moving a feed that others
                // read forward would skip events they have not been sent yet.
                if (feed.Subscribers.Count == 0 && feed.LastSeq == 0)
                {
                    feed.LastSeq = knownSeq;
                }

                var subscription = NewSubscription(s => Unsubscribe(feed, s));
                feed.Subscribers.Add(subscription);
                return subscription;
            }
        }
    }

    /// <summary>
    /// The listener saw a new event: deliver it straight from the notification when it is the next
    /// one of its task, else read what is missing from the log first.
    /// </summary>
    public async Task OnNotifiedAsync(TaskEventNotification notification, CancellationToken cancellationToken)
    {
        // The notification names the task's owner (older versions' do not: then it is looked up).
        var (taskId, seq, ownerId) = (notification.TaskId, notification.Seq, notification.OwnerId);
        if (!feeds.TryGetValue(taskId, out var feed))
        {
            // Nobody watches this task itself; someone may watch all tasks of its owner.
            if (ownerFeeds.IsEmpty || !(HasOwnerSubscribers(AllOwners) || HasOwnerSubscribers(ownerId ?? await OwnerOfAsync(taskId, cancellationToken))))
            {
                return;
            }

            feed = feeds.GetOrAdd(taskId, id => new TaskFeed(id) { LastSeq = seq - 1 });
        }

        if (seq > feed.LastSeq)
        {
            await DeliverNewAsync(feed, cancellationToken, notification.ToEvent(), ownerId);
        }
    }

    /// <summary>
    /// After the listener reconnects: read whatever every watched task logged meanwhile, and, for
    /// owners watched as a whole, the events of their tasks since the last catch-up.
    /// </summary>
    public async Task CatchUpAsync(CancellationToken cancellationToken)
    {
        var since = lastCaughtUp;
        lastCaughtUp = DateTimeOffset.UtcNow;
        if (!ownerFeeds.IsEmpty)
        {
            var watchedOwners = ownerFeeds.Where(o => o.Value.Count > 0).Select(o => o.Key).ToArray();
            var owners = watchedOwners.Contains(AllOwners) ? null : watchedOwners;
            foreach (var (taskId, firstSeq) in await store.GetTasksWithEventsSinceAsync(owners, since.AddSeconds(-1), cancellationToken))
            {
                feeds.GetOrAdd(taskId, id => new TaskFeed(id) { LastSeq = firstSeq - 1 });
            }
        }

        foreach (var feed in feeds.Values)
        {
            await DeliverNewAsync(feed, cancellationToken);
        }
    }

    private async Task DeliverNewAsync(TaskFeed feed, CancellationToken cancellationToken, TaskEvent? announced = null, string? ownerId = null)
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

            if (announced is not null && announced.Seq <= after)
            {
                return;
            }

            var events = announced is not null && announced.Seq == after + 1
                ? [announced]
                : await store.GetEventsAsync(feed.TaskId, after, cancellationToken);
            if (events.Count == 0)
            {
                return;
            }

            var ownerSubscribers = ownerFeeds.IsEmpty ? null : await OwnerSubscribersAsync(feed.TaskId, ownerId, cancellationToken);
            lock (feed)
            {
                foreach (var taskEvent in events)
                {
                    foreach (var subscriber in feed.Subscribers)
                    {
                        subscriber.Write(taskEvent);
                    }

                    foreach (var subscriber in ownerSubscribers ?? [])
                    {
                        subscriber.Write(taskEvent);
                    }
                }

                feed.LastSeq = events[^1].Seq;
                // A feed kept only for owner watchers is dropped once its task has ended.
                if (feed.Subscribers.Count == 0 && TaskTransitions.IsFinal(events[^1].State))
                {
                    feeds.TryRemove(new KeyValuePair<Guid, TaskFeed>(feed.TaskId, feed));
                }
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

    private TaskEventSubscription NewSubscription(Action<TaskEventSubscription> unsubscribe) =>
        new(new SubscriberBuffer(options.Value.SubscriberBuffer), unsubscribe);

    private bool HasOwnerSubscribers(string? ownerId) =>
        ownerId is not null && ownerFeeds.TryGetValue(ownerId, out var list) && list.Count > 0;

    private async Task<TaskEventSubscription[]?> OwnerSubscribersAsync(Guid taskId, string? knownOwnerId, CancellationToken cancellationToken)
    {
        var ownerId = knownOwnerId ?? await OwnerOfAsync(taskId, cancellationToken);
        var owner = ownerId is not null && ownerFeeds.TryGetValue(ownerId, out var ownerList) ? Copy(ownerList) : [];
        var all = ownerFeeds.TryGetValue(AllOwners, out var allList) ? Copy(allList) : [];
        return owner.Length + all.Length == 0 ? null : [.. owner, .. all];

        static TaskEventSubscription[] Copy(HashSet<TaskEventSubscription> list)
        {
            lock (list)
            {
                return [.. list];
            }
        }
    }

    // For notifications without the owner, and catch-ups: a task's owner never changes, so it is
    // read once per task (the cache is cleared when large).
    private async Task<string?> OwnerOfAsync(Guid taskId, CancellationToken cancellationToken)
    {
        if (owners.TryGetValue(taskId, out var owner))
        {
            return owner;
        }

        owner = (await store.GetForExecutionAsync(taskId, cancellationToken))?.OwnerId;
        if (owner is not null)
        {
            if (owners.Count > 100_000)
            {
                owners.Clear();
            }

            owners[taskId] = owner;
        }

        return owner;
    }

    private sealed class TaskFeed(Guid taskId)
    {
        public Guid TaskId { get; } = taskId;

        // A set: 20,000 streams on one task leave at once when it ends, and removal from a list is
        // linear (bench/subscribers: 4 % of the node's CPU in List.RemoveAt).
        public HashSet<TaskEventSubscription> Subscribers { get; } = [];

        public long LastSeq { get; set; }

        public SemaphoreSlim Gate { get; } = new(1, 1);
    }
}

/// <summary>A subscriber's buffered view of one task's events, or of all of an owner's.</summary>
public sealed class TaskEventSubscription : IDisposable
{
    private readonly SubscriberBuffer buffer;
    private readonly Action<TaskEventSubscription> unsubscribe;
    private int disposed;

    internal TaskEventSubscription(SubscriberBuffer buffer, Action<TaskEventSubscription> unsubscribe) =>
        (this.buffer, this.unsubscribe) = (buffer, unsubscribe);

    public ChannelReader<TaskEvent> Reader => buffer;

    internal void Write(TaskEvent taskEvent) => buffer.TryWrite(taskEvent);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref disposed, 1) == 0)
        {
            unsubscribe(this);
            buffer.Complete();
        }
    }
}
