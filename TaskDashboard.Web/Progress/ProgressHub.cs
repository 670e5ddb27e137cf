using Microsoft.AspNetCore.SignalR;
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

        await Groups.AddToGroupAsync(Context.ConnectionId, Group(taskId), Context.ConnectionAborted);
        forwarder.Join(Context.ConnectionId, Group(taskId), bus => bus.Subscribe(taskId, task.LastEventSeq));
        foreach (var taskEvent in await store.GetEventsAsync(taskId, afterSeq ?? task.LastEventSeq, Context.ConnectionAborted))
        {
            await HubTaskForwarder.SendAsync(Clients.Caller, taskEvent);
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
public sealed class HubTaskForwarder(TaskEventBus bus, IHubContext<ProgressHub, IProgressClient> hub, ILogger<HubTaskForwarder> logger) : IDisposable
{
    private readonly Lock gate = new();
    private readonly Dictionary<string, Forward> forwards = new(StringComparer.Ordinal);
    private readonly Dictionary<string, HashSet<string>> byConnection = new(StringComparer.Ordinal);

    public void Join(string connectionId, string group, Func<TaskEventBus, TaskEventSubscription> subscribe)
    {
        lock (gate)
        {
            if (!byConnection.TryGetValue(connectionId, out var groups))
            {
                byConnection[connectionId] = groups = new(StringComparer.Ordinal);
            }

            if (!groups.Add(group))
            {
                return;
            }

            if (!forwards.TryGetValue(group, out var forward))
            {
                forwards[group] = forward = new Forward(subscribe(bus));
                _ = PumpAsync(group, forward);
            }

            forward.Connections++;
        }
    }

    public void Leave(string connectionId, string group)
    {
        lock (gate)
        {
            if (byConnection.TryGetValue(connectionId, out var groups) && groups.Remove(group))
            {
                Release(group);
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
                    Release(group);
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

    private void Release(string group)
    {
        if (forwards.TryGetValue(group, out var forward) && --forward.Connections == 0)
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
                await SendAsync(hub.Clients.Group(group), taskEvent);
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
    }
}
