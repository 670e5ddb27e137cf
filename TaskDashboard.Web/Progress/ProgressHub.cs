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
/// <c>/hubs/tasks</c>: a client subscribes to a task it may see and then receives its events. Methods
/// only check access and join or leave group <c>task:{id}</c>; the events come from the node's
/// broadcaster through <see cref="HubTaskForwarder"/>.
/// </summary>
public sealed class ProgressHub(TaskStore store, HubTaskForwarder forwarder) : Hub<IProgressClient>
{
    public static string Group(Guid taskId) => $"task:{taskId}";

    /// <summary>
    /// Joins the task's group and returns its snapshot. Events after <paramref name="afterSeq"/> (or
    /// after the snapshot) already logged are sent to the caller at once; a client ignores any event
    /// whose seq it has seen.
    /// </summary>
    public async Task<TaskEventData> SubscribeToTask(Guid taskId, long? afterSeq = null)
    {
        var task = await store.GetAsync(Context.User!.TaskScope(), taskId, Context.ConnectionAborted)
            ?? throw new HubException($"There is no task {taskId} that you can see.");
        if (afterSeq is < 0)
        {
            throw new HubException("afterSeq must not be negative.");
        }

        // The group's live events are held back for this caller until the replay of the log is sent,
        // so that it gets every event once and in order (a live event must not overtake the replay).
        await Groups.AddToGroupAsync(Context.ConnectionId, Group(taskId), Context.ConnectionAborted);
        forwarder.Join(Context.ConnectionId, Group(taskId), bus => bus.Subscribe(taskId, task.LastEventSeq), holdLive: true);
        var sent = afterSeq ?? task.LastEventSeq;
        try
        {
            foreach (var taskEvent in await store.GetEventsAsync(taskId, sent, Context.ConnectionAborted))
            {
                await HubTaskForwarder.SendAsync(Clients.Caller, taskEvent);
                sent = taskEvent.Seq;
            }
        }
        finally
        {
            await forwarder.ReleaseHeldAsync(Context.ConnectionId, Group(taskId), Clients.Caller, sent,
                after => store.GetEventsAsync(taskId, after, Context.ConnectionAborted));
        }

        return TaskEventStream.Snapshot(task);
    }

    public async Task UnsubscribeFromTask(Guid taskId)
    {
        await Groups.RemoveFromGroupAsync(Context.ConnectionId, Group(taskId), Context.ConnectionAborted);
        forwarder.Leave(Context.ConnectionId, Group(taskId));
    }

    /// <summary>Joins the caller's own group: from now on, events of every task of theirs.</summary>
    public async Task SubscribeToMyTasks()
    {
        var owner = Context.User!.Id();
        await Groups.AddToGroupAsync(Context.ConnectionId, OwnerGroup(owner), Context.ConnectionAborted);
        forwarder.Join(Context.ConnectionId, OwnerGroup(owner), bus => bus.SubscribeOwner(owner));
    }

    public async Task UnsubscribeFromMyTasks()
    {
        var owner = Context.User!.Id();
        await Groups.RemoveFromGroupAsync(Context.ConnectionId, OwnerGroup(owner), Context.ConnectionAborted);
        forwarder.Leave(Context.ConnectionId, OwnerGroup(owner));
    }

    public static string OwnerGroup(string ownerId) => $"owner:{ownerId}";

    public override Task OnDisconnectedAsync(Exception? exception)
    {
        forwarder.LeaveAll(Context.ConnectionId);
        return base.OnDisconnectedAsync(exception);
    }
}

/// <summary>
/// Feeds SignalR groups from the broadcaster: one bus subscription per group watched on this node
/// (a task, or all tasks of an owner), however many connections are in it, released when the last
/// one leaves.
/// </summary>
public sealed class HubTaskForwarder(
    TaskEventBus bus, IHubContext<ProgressHub, IProgressClient> hub, IOptions<ProgressOptions> options, ILogger<HubTaskForwarder> logger) : IDisposable
{
    private readonly int heldLimit = options.Value.ReplayHoldLimit;
    private readonly Lock gate = new();
    private long heldOverflows;
    private readonly Dictionary<string, Forward> forwards = new(StringComparer.Ordinal);
    private readonly Dictionary<string, HashSet<string>> byConnection = new(StringComparer.Ordinal);

    /// <summary>
    /// Adds the connection to the group's forward (subscribing the group when it is the first). With
    /// <paramref name="holdLive"/> the group's events are held back for this connection, not sent
    /// to it, until <see cref="ReleaseHeldAsync"/>.
    /// </summary>
    public void Join(string connectionId, string group, Func<TaskEventBus, TaskEventSubscription> subscribe, bool holdLive = false)
    {
        lock (gate)
        {
            if (!byConnection.TryGetValue(connectionId, out var groups))
            {
                byConnection[connectionId] = groups = new(StringComparer.Ordinal);
            }

            if (!forwards.TryGetValue(group, out var forward))
            {
                forwards[group] = forward = new Forward(subscribe(bus));
                _ = PumpAsync(group, forward);
            }

            if (groups.Add(group))
            {
                forward.Connections++;
            }

            if (holdLive)
            {
                forward.Held[connectionId] = [];
                forward.Overflowed.Remove(connectionId);
            }
        }
    }

    /// <summary>Times a connection's held events outgrew <c>Progress:ReplayHoldLimit</c> and were read from the log instead.</summary>
    public long HeldOverflows => Interlocked.Read(ref heldOverflows);

    /// <summary>
    /// Sends the connection the events held back for it that come after <paramref name="sentUpTo"/>,
    /// in order, then lets the group's events reach it again. The last events are sent while still
    /// holding, so none sent to the group afterwards can overtake them. At most
    /// <c>Progress:ReplayHoldLimit</c> events are held per connection: when more arrive during a long
    /// replay, they are dropped and read again from the log (<paramref name="readLogAfter"/>).
    /// </summary>
    public async Task ReleaseHeldAsync(
        string connectionId, string group, IProgressClient caller, long sentUpTo, Func<long, Task<IReadOnlyList<TaskEvent>>> readLogAfter)
    {
        try
        {
            while (true)
            {
                List<TaskEvent> held;
                var overflowed = false;
                lock (gate)
                {
                    if (!forwards.TryGetValue(group, out var forward) || !forward.Held.TryGetValue(connectionId, out var pending)
                        || (pending.Count == 0 && !forward.Overflowed.Contains(connectionId)))
                    {
                        forward?.Held.Remove(connectionId);
                        return;
                    }

                    held = [.. pending];
                    pending.Clear();
                    overflowed = forward.Overflowed.Remove(connectionId);
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
                if (forwards.TryGetValue(group, out var forward))
                {
                    forward.Held.Remove(connectionId);
                    forward.Overflowed.Remove(connectionId);
                }
            }

            throw;
        }
    }

    public void Leave(string connectionId, string group)
    {
        lock (gate)
        {
            if (byConnection.TryGetValue(connectionId, out var groups) && groups.Remove(group))
            {
                Release(group, connectionId);
            }
        }
    }

    public void LeaveAll(string connectionId)
    {
        lock (gate)
        {
            if (byConnection.Remove(connectionId, out var groups))
            {
                foreach (var group in groups)
                {
                    Release(group, connectionId);
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
            foreach (var forward in forwards.Values)
            {
                forward.Subscription.Dispose();
            }

            forwards.Clear();
        }
    }

    private void Release(string group, string connectionId)
    {
        if (!forwards.TryGetValue(group, out var forward))
        {
            return;
        }

        forward.Held.Remove(connectionId);
        forward.Overflowed.Remove(connectionId);
        if (--forward.Connections == 0)
        {
            forwards.Remove(group);
            forward.Subscription.Dispose();
        }
    }

    private async Task PumpAsync(string group, Forward forward)
    {
        try
        {
            await foreach (var taskEvent in forward.Subscription.Reader.ReadAllAsync())
            {
                string[]? holding = null;
                lock (gate)
                {
                    if (forward.Held.Count > 0)
                    {
                        holding = [.. forward.Held.Keys];
                        foreach (var (connectionId, pending) in forward.Held)
                        {
                            if (pending.Count < heldLimit && !forward.Overflowed.Contains(connectionId))
                            {
                                pending.Add(taskEvent);
                            }
                            else if (forward.Overflowed.Add(connectionId))
                            {
                                pending.Clear();
                                Interlocked.Increment(ref heldOverflows);
                            }
                        }
                    }
                }

                await SendAsync(holding is null ? hub.Clients.Group(group) : hub.Clients.GroupExcept(group, holding), taskEvent);
            }
        }
        catch (Exception exception)
        {
            logger.LogWarning(exception, "Forwarding events to SignalR group {Group} stopped", group);
        }
    }

    private sealed class Forward(TaskEventSubscription subscription)
    {
        public TaskEventSubscription Subscription { get; } = subscription;

        public int Connections { get; set; }

        /// <summary>Connections still being sent their replay, and the group's events held back for each.</summary>
        public Dictionary<string, List<TaskEvent>> Held { get; } = new(StringComparer.Ordinal);

        /// <summary>Connections whose held events outgrew the limit: the rest of their replay comes from the log.</summary>
        public HashSet<string> Overflowed { get; } = new(StringComparer.Ordinal);
    }
}
