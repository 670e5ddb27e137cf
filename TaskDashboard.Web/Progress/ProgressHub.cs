using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;
using TaskDashboard.Jobs.Progress;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Web.Security;

namespace TaskDashboard.Web.Progress;

/// <summary>What the hub sends: progress events, and every other event (stage, retry, final).</summary>
public interface IProgressClient
{
    Task TaskProgressChanged(TaskEventData data);

    Task TaskStateChanged(TaskEventData data);
}

/// <summary>
/// What <c>SubscribeToMyTasks</c> returns: the position the watch starts after, and (for a new
/// subscription, not a resumed one) the caller's unfinished tasks then, as snapshots.
/// </summary>
public sealed record MyTasksSubscription(string Position, IReadOnlyList<TaskEventData> Tasks);

/// <summary>
/// <c>/hubs/tasks</c>: a client subscribes to a task it may see, or to all of its own tasks, and then
/// receives their events. Methods only check access and start or stop a watch; the events come from
/// the node's broadcaster through <see cref="HubTaskForwarder"/>.
/// </summary>
public sealed class ProgressHub(TaskStore store, TaskEventBus bus, HubTaskForwarder forwarder, IOptions<ProgressOptions> options) : Hub<IProgressClient>
{
    /// <summary>The forwarder's key of a connection's watch of one task.</summary>
    public static string TaskWatch(Guid taskId) => $"{HubTaskForwarder.TaskWatchPrefix}{taskId}";

    /// <summary>The forwarder's key of a connection's watch of all tasks of an owner.</summary>
    public static string OwnerWatch(string ownerId) => $"owner:{ownerId}";

    /// <summary>
    /// Watches the task and returns its snapshot. Events after <paramref name="afterSeq"/> (or
    /// after the snapshot) already logged are sent to the caller at once; a client ignores any event
    /// whose seq it has seen. The watch ends with the task's final event; a task that has already
    /// ended is not watched at all.
    /// </summary>
    public async Task<TaskEventData> SubscribeToTask(Guid taskId, long? afterSeq = null)
    {
        var task = await store.GetAsync(Context.User!.TaskScope(), taskId, Context.ConnectionAborted)
            ?? throw new HubException($"There is no task {taskId} that you can see.");
        if (afterSeq is < 0)
        {
            throw new HubException("afterSeq must not be negative.");
        }

        if (afterSeq is { } seen && await TaskEventStream.PastTheLastEventAsync(task, seen, store, Context.ConnectionAborted) is { } last)
        {
            throw new HubException($"afterSeq {seen} is past the task's last event ({last}).");
        }

        if (task.IsFinal)
        {
            // Nothing will follow: the events the caller missed, and no watch.
            foreach (var taskEvent in afterSeq is { } after ? await store.GetEventsAsync(taskId, after, Context.ConnectionAborted) : [])
            {
                await HubTaskForwarder.SendAsync(Clients.Caller, taskEvent);
            }

            return TaskEventStream.Snapshot(task);
        }

        // The task's live events are held back for this caller until the replay of the log is sent,
        // so that it gets every event once and in order (a live event must not overtake the replay).
        Watch(TaskWatch(taskId), bus => bus.Subscribe(taskId, task.LastEventSeq), holdLive: true);
        var sent = afterSeq ?? task.LastEventSeq;
        var ended = false;
        try
        {
            foreach (var taskEvent in await store.GetEventsAsync(taskId, sent, Context.ConnectionAborted))
            {
                await HubTaskForwarder.SendAsync(Clients.Caller, taskEvent);
                sent = taskEvent.Seq;
                ended |= TaskTransitions.IsFinal(taskEvent.State);
            }
        }
        finally
        {
            await forwarder.ReleaseHeldAsync(Context.ConnectionId, TaskWatch(taskId), Clients.Caller, sent,
                after => store.GetEventsAsync(taskId, after, Context.ConnectionAborted));
        }

        if (ended)
        {
            // The task ended after it was read, before the watch began: its final event came from
            // the log, and the watch will see no more.
            forwarder.Leave(Context.ConnectionId, TaskWatch(taskId));
        }

        return TaskEventStream.Snapshot(task);
    }

    public Task UnsubscribeFromTask(Guid taskId)
    {
        forwarder.Leave(Context.ConnectionId, TaskWatch(taskId));
        return Task.CompletedTask;
    }

    /// <summary>
    /// From now on, every event of every task of the caller's, each with its
    /// <see cref="TaskEventData.Position"/>; returns the position now and a snapshot of the caller's
    /// unfinished tasks. Subscribing again starts the watch over from the new position.
    /// </summary>
    public Task<MyTasksSubscription> SubscribeToMyTasks() => WatchMyTasksAsync(null);

    /// <summary>
    /// Every event of the caller's tasks after <paramref name="position"/> (the
    /// <see cref="TaskEventData.Position"/> of the last event received, or the position a subscription
    /// returned), then on, as <see cref="SubscribeToMyTasks"/>: after a dropped connection, exactly
    /// the events missed.
    /// </summary>
    public async Task<MyTasksSubscription> SubscribeToMyTasksAfter(string position)
    {
        if (!OwnerStreamPosition.TryParse(position ?? "", out var after))
        {
            throw new HubException("position must be the Position of an event of a watch of your tasks, or one a subscription returned.");
        }

        if (await ProgressApi.PastTheLogAsync(after, store, Context.ConnectionAborted) is { } now)
        {
            throw new HubException($"position {position} is past the event log's position ({now.ToCompact()}); call SubscribeToMyTasks for a snapshot.");
        }

        return await WatchMyTasksAsync(after);
    }

    public Task UnsubscribeFromMyTasks()
    {
        forwarder.Leave(Context.ConnectionId, OwnerWatch(Context.User!.Id()));
        return Task.CompletedTask;
    }

    public override Task OnDisconnectedAsync(Exception? exception)
    {
        forwarder.LeaveAll(Context.ConnectionId);
        return base.OnDisconnectedAsync(exception);
    }

    private void Watch(string watchKey, Func<TaskEventBus, TaskEventSubscription> subscribe, bool holdLive = false)
    {
        forwarder.Join(Context.ConnectionId, watchKey, subscribe, holdLive);
        LeaveIfAborted();
    }

    private async Task<MyTasksSubscription> WatchMyTasksAsync(OwnerStreamPosition? after)
    {
        var owner = Context.User!.Id();

        // Subscribed before the position is read, so that whatever commits after it is announced.
        var announced = bus.SubscribeOwner(owner);
        try
        {
            var (feed, unfinished) = await OwnerEventFeed.StartAsync(owner, after, store, options.Value.OwnerStreamIdTasks, Context.ConnectionAborted);
            forwarder.WatchOwner(Context.ConnectionId, OwnerWatch(owner), announced, feed, Context.Abort);
            announced = null;
            LeaveIfAborted();
            return new MyTasksSubscription(feed.Start.ToString(), [.. unfinished.Select(TaskEventStream.Snapshot)]);
        }
        finally
        {
            announced?.Dispose();
        }
    }

    // SignalR aborts a connection before it calls OnDisconnectedAsync, which may already have run
    // while a method was still on its way to a watch: then nothing else would end the watch.
    private void LeaveIfAborted()
    {
        if (Context.ConnectionAborted.IsCancellationRequested)
        {
            forwarder.LeaveAll(Context.ConnectionId);
        }
    }
}

/// <summary>
/// Feeds SignalR connections from the broadcaster: each watch of a connection (a task, or all tasks
/// of an owner) has its own bus subscription and pump, which sends to that connection alone. A
/// connection that stops reading stalls only its own pumps, while its buffers drop progress down to
/// the latest; a SignalR group send would wait for the slowest member (it completes once every
/// member's connection has taken the message).
/// </summary>
public sealed class HubTaskForwarder(
    TaskEventBus bus, IHubContext<ProgressHub, IProgressClient> hub, IOptions<ProgressOptions> options, ILogger<HubTaskForwarder> logger) : IDisposable
{
    internal const string TaskWatchPrefix = "task:";

    private readonly int heldLimit = options.Value.ReplayHoldLimit;
    private readonly TimeSpan quietRead = options.Value.HubQuietRead;
    private readonly Lock gate = new();
    private long heldOverflows;
    private int watches;
    private readonly Dictionary<string, Dictionary<string, Watch>> byConnection = new(StringComparer.Ordinal);

    /// <summary>
    /// Starts the connection's watch (unless it has it already). With <paramref name="holdLive"/> its
    /// events are held back, not sent, until <see cref="ReleaseHeldAsync"/>.
    /// </summary>
    public void Join(string connectionId, string watchKey, Func<TaskEventBus, TaskEventSubscription> subscribe, bool holdLive = false)
    {
        lock (gate)
        {
            if (!byConnection.TryGetValue(connectionId, out var watched))
            {
                byConnection[connectionId] = watched = new(StringComparer.Ordinal);
            }

            if (!watched.TryGetValue(watchKey, out var watch))
            {
                // Held before the pump starts: it may read an event at once, on this thread.
                watched[watchKey] = watch = new Watch(subscribe(bus)) { Held = holdLive ? [] : null };
                watches++;
                _ = PumpAsync(connectionId, watchKey, watch);
            }
            else if (holdLive)
            {
                watch.Held = [];
                watch.Overflowed = false;
            }
        }
    }

    /// <summary>
    /// Starts the connection's watch of all of an owner's tasks, fed from <paramref name="feed"/>
    /// (which places every event of <paramref name="announced"/>, now owned by the watch, and reads
    /// the log for the rest); one the connection already has ends first. When the feed fails (the
    /// database), the connection is closed with <paramref name="abort"/>, so that the client
    /// reconnects and resumes from its last position.
    /// </summary>
    public void WatchOwner(string connectionId, string watchKey, TaskEventSubscription announced, OwnerEventFeed feed, Action abort)
    {
        lock (gate)
        {
            Remove(connectionId, watchKey, Find(connectionId, watchKey));
            if (!byConnection.TryGetValue(connectionId, out var watched))
            {
                byConnection[connectionId] = watched = new(StringComparer.Ordinal);
            }

            var watch = watched[watchKey] = new Watch(announced) { Stopping = new CancellationTokenSource() };
            watches++;
            _ = FeedAsync(connectionId, watchKey, watch, feed, abort);
        }
    }

    /// <summary>Times a connection's held events outgrew <c>Progress:ReplayHoldLimit</c> and were read from the log instead.</summary>
    public long HeldOverflows => Interlocked.Read(ref heldOverflows);

    /// <summary>Watches (a connection's task, or its owner's tasks) this node forwards events to.</summary>
    public int Watches
    {
        get
        {
            lock (gate)
            {
                return watches;
            }
        }
    }

    /// <summary>The keys of the watches this node keeps for one connection.</summary>
    public IReadOnlyList<string> WatchesOf(string connectionId)
    {
        lock (gate)
        {
            return byConnection.TryGetValue(connectionId, out var watched) ? [.. watched.Keys] : [];
        }
    }

    /// <summary>
    /// Sends the connection the events held back for it that come after <paramref name="sentUpTo"/>,
    /// in order, then lets the watch's events reach it again. The last events are sent while still
    /// holding, so none sent by the watch afterwards can overtake them. At most
    /// <c>Progress:ReplayHoldLimit</c> events are held per watch: when more arrive during a long
    /// replay, they are dropped and read again from the log (<paramref name="readLogAfter"/>).
    /// </summary>
    public async Task ReleaseHeldAsync(
        string connectionId, string watchKey, IProgressClient caller, long sentUpTo, Func<long, Task<IReadOnlyList<TaskEvent>>> readLogAfter)
    {
        try
        {
            while (true)
            {
                List<TaskEvent> held;
                var overflowed = false;
                lock (gate)
                {
                    var watch = Find(connectionId, watchKey);
                    if (watch?.Held is not { } pending || (pending.Count == 0 && !watch.Overflowed))
                    {
                        watch?.Held = null;
                        if (watch is { Ended: true })
                        {
                            // The task's final event was held, and has now been sent.
                            Remove(connectionId, watchKey, watch);
                        }

                        return;
                    }

                    held = [.. pending];
                    pending.Clear();
                    overflowed = watch.Overflowed;
                    watch.Overflowed = false;
                }

                if (overflowed)
                {
                    // Everything held was logged before it was announced; the log has it and more.
                    held = [.. await readLogAfter(sentUpTo)];
                }

                foreach (var taskEvent in held.Where(e => e.Seq > sentUpTo))
                {
                    await SendAsync(caller, taskEvent);
                    sentUpTo = taskEvent.Seq;
                }
            }
        }
        catch
        {
            lock (gate)
            {
                if (Find(connectionId, watchKey) is { } watch)
                {
                    watch.Held = null;
                    watch.Overflowed = false;
                }
            }

            throw;
        }
    }

    public void Leave(string connectionId, string watchKey)
    {
        lock (gate)
        {
            Remove(connectionId, watchKey, Find(connectionId, watchKey));
        }
    }

    public void LeaveAll(string connectionId)
    {
        lock (gate)
        {
            if (byConnection.Remove(connectionId, out var watched))
            {
                foreach (var watch in watched.Values)
                {
                    Stop(watch);
                }
            }
        }
    }

    internal static Task SendAsync(IProgressClient client, TaskEvent taskEvent, OwnerStreamPosition? position = null)
    {
        var data = TaskEventStream.ToData(taskEvent, position?.ToString());
        return taskEvent.Type == "progress" ? client.TaskProgressChanged(data) : client.TaskStateChanged(data);
    }

    public void Dispose()
    {
        lock (gate)
        {
            foreach (var watch in byConnection.Values.SelectMany(watched => watched.Values))
            {
                Stop(watch);
            }

            byConnection.Clear();
        }
    }

    private Watch? Find(string connectionId, string watchKey) =>
        byConnection.TryGetValue(connectionId, out var watched) && watched.TryGetValue(watchKey, out var watch) ? watch : null;

    private void Stop(Watch watch)
    {
        watches--;
        // Its callbacks (a query's cancellation) run on the thread pool, not under the gate.
        _ = watch.Stopping?.CancelAsync();
        watch.Subscription.Dispose();
    }

    // Ends this watch, unless it has been replaced meanwhile (a Leave and a new Join). Under the gate.
    private void Remove(string connectionId, string watchKey, Watch? watch)
    {
        if (watch is not null && byConnection.TryGetValue(connectionId, out var watched) && watched.TryGetValue(watchKey, out var current) && ReferenceEquals(current, watch))
        {
            watched.Remove(watchKey);
            Stop(watch);
            if (watched.Count == 0)
            {
                byConnection.Remove(connectionId);
            }
        }
    }

    private async Task PumpAsync(string connectionId, string watchKey, Watch watch)
    {
        var client = hub.Clients.Client(connectionId);
        try
        {
            // A task's watch ends with its final event (an owner's watch goes on).
            var endsWithFinal = watchKey.StartsWith(TaskWatchPrefix, StringComparison.Ordinal);
            await foreach (var taskEvent in watch.Subscription.Reader.ReadAllAsync())
            {
                var final = endsWithFinal && TaskTransitions.IsFinal(taskEvent.State);
                lock (gate)
                {
                    if (watch.Held is { } held)
                    {
                        // Sent with the held events: the release ends the watch.
                        watch.Ended |= final;
                        if (watch.Overflowed)
                        {
                            continue;
                        }

                        if (held.Count < heldLimit)
                        {
                            held.Add(taskEvent);
                        }
                        else
                        {
                            watch.Overflowed = true;
                            held.Clear();
                            Interlocked.Increment(ref heldOverflows);
                        }

                        continue;
                    }
                }

                await SendAsync(client, taskEvent);
                if (final)
                {
                    lock (gate)
                    {
                        Remove(connectionId, watchKey, watch);
                    }

                    return;
                }
            }
        }
        catch (Exception exception)
        {
            logger.LogWarning(exception, "Forwarding events to SignalR connection {ConnectionId} ({Watch}) stopped", connectionId, watchKey);
        }
    }

    private async Task FeedAsync(string connectionId, string watchKey, Watch watch, OwnerEventFeed feed, Action abort)
    {
        var client = hub.Clients.Client(connectionId);
        var stopping = watch.Stopping!.Token;
        try
        {
            await feed.RunAsync(
                watch.Subscription,
                quietRead,
                async (events, _) =>
                {
                    foreach (var (position, taskEvent) in events)
                    {
                        await SendAsync(client, taskEvent, position);
                    }
                },
                _ => Task.CompletedTask,
                stopping);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // The watch ended.
        }
        catch (Exception exception)
        {
            logger.LogWarning(exception, "Feeding events to SignalR connection {ConnectionId} ({Watch}) failed; closing it", connectionId, watchKey);
            abort();
        }
        finally
        {
            lock (gate)
            {
                Remove(connectionId, watchKey, watch);
            }
        }
    }

    private sealed class Watch(TaskEventSubscription subscription)
    {
        public TaskEventSubscription Subscription { get; } = subscription;

        /// <summary>Of a watch fed by an <see cref="OwnerEventFeed"/>: cancelled when the watch ends.</summary>
        public CancellationTokenSource? Stopping { get; init; }

        /// <summary>While the connection is sent its replay: the events held back meanwhile.</summary>
        public List<TaskEvent>? Held { get; set; }

        /// <summary>The held events outgrew the limit: the rest of the replay comes from the log.</summary>
        public bool Overflowed { get; set; }

        /// <summary>The task's final event came while events were held: the watch ends once they are sent.</summary>
        public bool Ended { get; set; }
    }
}
