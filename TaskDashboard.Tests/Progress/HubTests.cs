using System.Threading.Channels;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;
using TaskDashboard.Web.Progress;

namespace TaskDashboard.Tests.Progress;

[Collection(AppCollection.Name)]
public sealed class HubTests(SseApp app) : IClassFixture<SseApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Hub_DeliversEveryEventOfASubscribedTask_InOrder_UpToTheFinalOne()
    {
        var client = app.CreateClient();
        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":1500}}""", Ct);
        await using var watcher = await TaskHubClient.ConnectAsync(client.BaseAddress!, app.ApiKey, Ct);
        var hub = watcher.Connection;

        var snapshot = await hub.InvokeAsync<TaskEventData>("SubscribeToTask", task.Id, null, Ct);
        var events = new List<TaskEventData>();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        await foreach (var data in watcher.Events.ReadAllAsync(timeout.Token))
        {
            if (data.Seq > (events.Count == 0 ? snapshot.Seq : events[^1].Seq))
            {
                events.Add(data);
            }

            if (TaskTransitions.IsFinal(data.Status))
            {
                break;
            }
        }

        Assert.Equal(task.Id, snapshot.TaskId);
        Assert.Equal(Enumerable.Range((int)snapshot.Seq + 1, events.Count).Select(i => (long)i), events.Select(e => e.Seq));
        Assert.Equal("succeeded", events[^1].Type);
        Assert.Equal($"/api/tasks/{task.Id}/result", events[^1].ResultUrl);
        Assert.Contains(events, e => e.Type == "progress");
    }

    [Fact]
    public async Task Hub_SubscribedToMyTasks_ReceivesEventsOfTasksSubmittedLater()
    {
        var client = app.CreateClient();
        await using var watcher = await TaskHubClient.ConnectAsync(client.BaseAddress!, app.ApiKey, Ct);
        var hub = watcher.Connection;
        await hub.InvokeAsync("SubscribeToMyTasks", Ct);

        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":300}}""", Ct);
        var events = new List<TaskEventData>();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        await foreach (var data in watcher.Events.ReadAllAsync(timeout.Token))
        {
            if (data.TaskId == task.Id)
            {
                events.Add(data);
                if (data.Type == "succeeded")
                {
                    break;
                }
            }
        }

        Assert.Equal("created", events[0].Type);
        Assert.Equal(Enumerable.Range(1, events.Count).Select(i => (long)i), events.Select(e => e.Seq));
    }

    [Fact]
    public async Task Hub_RefusesToSubscribe_ToATaskTheCallerCannotSee()
    {
        var client = app.CreateClient();
        await using var watcher = await TaskHubClient.ConnectAsync(client.BaseAddress!, app.ApiKey, Ct);
        var hub = watcher.Connection;

        var refused = await Assert.ThrowsAsync<HubException>(() => hub.InvokeAsync<TaskEventData>("SubscribeToTask", Guid.NewGuid(), null, Ct));

        Assert.Contains("no task", refused.Message);
    }

    [Fact]
    public async Task Hub_EndsATasksWatchWithItsFinalEvent_AndDoesNotWatchATaskThatHasEnded()
    {
        var client = app.CreateClient();
        var forwarder = app.Services.GetRequiredService<HubTaskForwarder>();
        await using var watcher = await TaskHubClient.ConnectAsync(client.BaseAddress!, app.ApiKey, Ct);
        var hub = watcher.Connection;
        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":1500}}""", Ct);

        var snapshot = await hub.InvokeAsync<TaskEventData>("SubscribeToTask", task.Id, null, Ct);
        Assert.False(TaskTransitions.IsFinal(snapshot.Status));
        Assert.Equal([ProgressHub.TaskWatch(task.Id)], forwarder.WatchesOf(hub.ConnectionId!));
        var final = await ReadUntilAsync(watcher, e => TaskTransitions.IsFinal(e.Status));
        // The watch ends once the final event is sent (just after the client has it).
        using (var ended = CancellationTokenSource.CreateLinkedTokenSource(Ct))
        {
            ended.CancelAfter(TimeSpan.FromSeconds(5));
            while (forwarder.WatchesOf(hub.ConnectionId!).Count > 0 && !ended.IsCancellationRequested)
            {
                await Task.Delay(20, CancellationToken.None);
            }
        }

        Assert.Empty(forwarder.WatchesOf(hub.ConnectionId!));

        // Subscribing to the ended task sends the events after afterSeq and its final snapshot, and watches nothing.
        var again = await hub.InvokeAsync<TaskEventData>("SubscribeToTask", task.Id, final.Seq - 2, Ct);
        var missed = new[] { await ReadUntilAsync(watcher, _ => true), await ReadUntilAsync(watcher, _ => true) };
        Assert.Equal([final.Seq - 1, final.Seq], missed.Select(e => e.Seq));
        Assert.Equal(TaskState.Succeeded, again.Status);
        Assert.Equal(final.Seq, again.Seq);
        Assert.Empty(forwarder.WatchesOf(hub.ConnectionId!));

        // No client can have received an event past a task's last one.
        var past = await Assert.ThrowsAsync<HubException>(() => hub.InvokeAsync<TaskEventData>("SubscribeToTask", task.Id, final.Seq + 1, Ct));
        Assert.Contains($"past the task's last event ({final.Seq})", past.Message);
    }

    private static async Task<TaskEventData> ReadUntilAsync(TaskHubClient watcher, Func<TaskEventData, bool> found)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        await foreach (var data in watcher.Events.ReadAllAsync(timeout.Token))
        {
            if (found(data))
            {
                return data;
            }
        }

        throw new InvalidOperationException("The hub connection closed.");
    }
}
