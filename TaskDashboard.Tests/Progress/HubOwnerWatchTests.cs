using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;
using TaskDashboard.Web.Progress;

namespace TaskDashboard.Tests.Progress;

/// <summary>
/// The hub's watch of all of a caller's tasks: every event with its position, and
/// <c>SubscribeToMyTasksAfter</c> resuming exactly after any of them.
/// </summary>
[Collection(AppCollection.Name)]
public sealed class HubOwnerWatchTests(SseApp app) : IClassFixture<SseApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task MyTasks_EveryEventHasAPosition_AndResumingAfterAnyOfThemSendsExactlyTheEventsAfterIt()
    {
        var (client, key) = await NewUserAsync();
        await using var watcher = await TaskHubClient.ConnectAsync(client.BaseAddress!, key, Ct);
        var subscription = await watcher.Connection.InvokeAsync<MyTasksSubscription>("SubscribeToMyTasks", Ct);
        Assert.Empty(subscription.Tasks);

        var tasks = new List<Guid>();
        for (var i = 0; i < 3; i++)
        {
            tasks.Add((await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":400}}""", Ct)).Id);
        }

        var live = await ReceiveAsync(watcher, received => received.Count(e => e.Type == "succeeded") == tasks.Count);
        await AssertEveryEventOnceAsync(live, tasks);
        Assert.All(live, e => Assert.False(string.IsNullOrEmpty(e.Position)));

        // From the subscription's position: everything, read from the log as one range, so each
        // event but the last is positioned inside that range.
        var replayed = await ResumeAsync(key, subscription.Position, live.Count);
        AssertSameEvents(live, replayed);
        Assert.All(replayed[..^1], e => Assert.Contains('~', e.Position!));

        // From every position either watch gave: exactly the events after it.
        foreach (var events in new[] { live, replayed })
        {
            for (var i = 0; i < events.Count; i++)
            {
                AssertSameEvents(events[(i + 1)..], await ResumeAsync(key, events[i].Position!, events.Count - i - 1));
            }
        }
    }

    [Fact]
    public async Task MyTasks_ResumedOnANewConnectionAfterADroppedOne_MissesNothingOfARunningTask()
    {
        var (client, key) = await NewUserAsync();
        var first = await TaskHubClient.ConnectAsync(client.BaseAddress!, key, Ct);
        await first.Connection.InvokeAsync<MyTasksSubscription>("SubscribeToMyTasks", Ct);
        var task = (await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":2000}}""", Ct)).Id;

        // The client has three events when its connection drops; whatever else reached it is lost.
        var before = await ReceiveAsync(first, received => received.Count == 3);
        await first.DisposeAsync();
        await Task.Delay(300, Ct);

        await using var second = await TaskHubClient.ConnectAsync(client.BaseAddress!, key, Ct);
        await second.Connection.InvokeAsync<MyTasksSubscription>("SubscribeToMyTasksAfter", before[^1].Position, Ct);
        var after = await ReceiveAsync(second, received => received.Any(e => e.Type == "succeeded"));

        await AssertEveryEventOnceAsync([.. before, .. after], [task]);
    }

    [Fact]
    public async Task MyTasks_SubscribingReturnsTheUnfinishedTasks_AndAnEventLoggedWithoutItsAnnouncementArrivesAfterAQuietSpell()
    {
        var (client, key) = await NewUserAsync();
        var task = (await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{},"delay":3600}""", Ct)).Id;
        await using var watcher = await TaskHubClient.ConnectAsync(client.BaseAddress!, key, Ct);
        var subscription = await watcher.Connection.InvokeAsync<MyTasksSubscription>("SubscribeToMyTasks", Ct);
        var snapshot = Assert.Single(subscription.Tasks);
        Assert.Equal((task, TaskState.Scheduled, 1L), (snapshot.TaskId, snapshot.Status, snapshot.Seq));

        // Logged without NOTIFY, as after a crash between a batch's commit and its announcement: the
        // watch reads the log after Progress:HubQuietRead (1 s here) without an announcement.
        await OwnerEventLog.LogUnannouncedAsync(app, task, seq: 2);

        var received = await ReceiveAsync(watcher, events => events.Count == 1);
        Assert.Equal((task, 2L, "logged by the test"), (received[0].TaskId, received[0].Seq, received[0].Message));
    }

    [Fact]
    public async Task MyTasks_SendsTheNextEventOfATaskInItsSnapshot_AsAnnounced()
    {
        var (client, key) = await NewUserAsync();
        var (lease, logged) = await OwnerStreamTests.RunningTaskWithLiveEventsAsync(app, client);
        await using var watcher = await TaskHubClient.ConnectAsync(client.BaseAddress!, key, Ct);
        var subscription = await watcher.Connection.InvokeAsync<MyTasksSubscription>("SubscribeToMyTasks", Ct);
        // The log's last event, not the row's (which live progress events do not touch).
        Assert.Equal((lease.TaskId, logged), (subscription.Tasks.Single().TaskId, subscription.Tasks.Single().Seq));

        // After the watch's first read of the log (at once) and before its first quiet read (1 s).
        await Task.Delay(300, Ct);
        var next = await OwnerStreamTests.LogLiveEventAsync(app, lease);
        var sent = (await ReceiveAsync(watcher, events => events.Count == 1))[0];

        Assert.Equal((lease.TaskId, next), Key(sent));
        // Placed without a read of the log: named in the position on top of the last one read.
        Assert.Contains($"_{lease.TaskId:N}.{next}", sent.Position, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MyTasks_AWatchThatCannotReadTheLog_ClosesItsConnection_AndTheClientResumesFromItsLastPosition()
    {
        var (client, key) = await NewUserAsync();
        var task = (await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{},"delay":3600}""", Ct)).Id;
        var watcher = await TaskHubClient.ConnectAsync(client.BaseAddress!, key, Ct);
        var closed = new TaskCompletionSource();
        watcher.Connection.Closed += _ =>
        {
            closed.TrySetResult();
            return Task.CompletedTask;
        };
        var connectionId = watcher.Connection.ConnectionId!;
        var subscription = await watcher.Connection.InvokeAsync<MyTasksSubscription>("SubscribeToMyTasks", Ct);

        // An event the node cannot read (a state no task has), logged without NOTIFY: the watch's
        // next quiet read fails on it, as it would with the database gone.
        await OwnerEventLog.LogUnannouncedAsync(app, task, seq: 2, state: "Unreadable");
        await closed.Task.WaitAsync(TimeSpan.FromSeconds(15), Ct);
        await watcher.DisposeAsync();
        Assert.Empty(app.Services.GetRequiredService<HubTaskForwarder>().WatchesOf(connectionId));

        // Mended, the client resumes from its last position on a new connection and gets the event.
        await OwnerEventLog.MakeReadableAsync(app, task, seq: 2);
        var resumed = await ResumeAsync(key, subscription.Position, 1);
        Assert.Equal((task, 2L, "logged by the test"), (resumed[0].TaskId, resumed[0].Seq, resumed[0].Message));
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("99999999:0:")]
    [InlineData("")]
    public async Task MyTasks_ResumingFromAPositionNotOfTheLog_IsRefused_AndStartsNoWatch(string position)
    {
        var (client, key) = await NewUserAsync();
        await using var watcher = await TaskHubClient.ConnectAsync(client.BaseAddress!, key, Ct);

        var refused = await Assert.ThrowsAsync<HubException>(() => watcher.Connection.InvokeAsync<MyTasksSubscription>("SubscribeToMyTasksAfter", position, Ct));

        Assert.Contains("position", refused.Message, StringComparison.Ordinal);
        Assert.Empty(app.Services.GetRequiredService<HubTaskForwarder>().WatchesOf(watcher.Connection.ConnectionId!));
        // The connection is still good.
        Assert.Empty((await watcher.Connection.InvokeAsync<MyTasksSubscription>("SubscribeToMyTasks", Ct)).Tasks);
    }

    // A user of this test alone, so that no other test's tasks reach its watches.
    private async Task<(HttpClient Client, string ApiKey)> NewUserAsync()
    {
        var (_, key) = await app.CreateUserAsync("watcher", ops: false, Ct);
        return (app.CreateClientWithKey(key), key);
    }

    // A new connection's watch resumed from `position`: its first `count` events, then it is closed.
    private async Task<List<TaskEventData>> ResumeAsync(string key, string position, int count)
    {
        await using var resumed = await TaskHubClient.ConnectAsync(app.CreateClient().BaseAddress!, key, Ct);
        var subscription = await resumed.Connection.InvokeAsync<MyTasksSubscription>("SubscribeToMyTasksAfter", position, Ct);
        Assert.Equal(position, subscription.Position);
        Assert.Empty(subscription.Tasks);
        return count == 0 ? [] : await ReceiveAsync(resumed, received => received.Count == count);
    }

    // Events the client receives until `done` holds; fails after 30 s.
    private static async Task<List<TaskEventData>> ReceiveAsync(TaskHubClient client, Func<List<TaskEventData>, bool> done)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        var received = new List<TaskEventData>();
        while (!done(received))
        {
            received.Add(await client.Events.ReadAsync(timeout.Token));
        }

        return received;
    }

    private static (Guid TaskId, long Seq) Key(TaskEventData e) => (e.TaskId, e.Seq);

    private static void AssertSameEvents(IEnumerable<TaskEventData> expected, IReadOnlyList<TaskEventData> actual) =>
        OwnerEventLog.AssertSameEvents(expected.Select(Key), [.. actual.Select(Key)]);

    private Task AssertEveryEventOnceAsync(IReadOnlyList<TaskEventData> events, IEnumerable<Guid> tasks) =>
        OwnerEventLog.AssertEveryEventOnceAsync(app, [.. events.Select(Key)], tasks);
}
