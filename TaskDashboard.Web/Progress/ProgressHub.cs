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
/// <c>/hubs/tasks</c>: a client subscribes to a task it may see, or to all of its own tasks, and then
/// receives their events. Methods only check access and start or stop a watch; the events come from
/// the node's broadcaster through <see cref="HubTaskForwarder"/>.
/// </summary>
public sealed class ProgressHub(TaskStore store, HubTaskForwarder forwarder) : Hub<IProgressClient>
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

    /// <summary>From now on, events of every task of the caller's.</summary>
    public Task SubscribeToMyTasks()
    {
        var owner = Context.User!.Id();
        Watch(OwnerWatch(owner), bus => bus.SubscribeOwner(owner));
        return Task.CompletedTask;
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

        // SignalR aborts a connection before it calls OnDisconnectedAsync, which may already have run
        // while this method was still on its way here: then nothing else would end the watch.
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

    internal static Task SendAsync(IProgressClient client, TaskEvent taskEvent)
    {
        var data = TaskEventStream.ToData(taskEvent);
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

    private sealed class Watch(TaskEventSubscription subscription)
    {
        public TaskEventSubscription Subscription { get; } = subscription;

        /// <summary>While the connection is sent its replay: the events held back meanwhile.</summary>
        public List<TaskEvent>? Held { get; set; }

        /// <summary>The held events outgrew the limit: the rest of the replay comes from the log.</summary>
        public bool Overflowed { get; set; }

        /// <summary>The task's final event came while events were held: the watch ends once they are sent.</summary>
        public bool Ended { get; set; }
    }
}
