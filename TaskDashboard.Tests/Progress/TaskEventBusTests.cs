using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using TaskDashboard.Jobs.Progress;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;

namespace TaskDashboard.Tests.Progress;

/// <summary>
/// The broadcaster on its own (no listener feeding it), over the real event log: the test decides
/// which notifications arrive and when.
/// </summary>
[Collection(AppCollection.Name)]
public sealed class TaskEventBusTests(TaskDashboardApp app) : IClassFixture<TaskDashboardApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task LateSubscriberWithAFresherSnapshot_DoesNotMakeEarlierSubscribersMissEvents()
    {
        var store = app.Services.GetRequiredService<TaskStore>();
        var bus = new TaskEventBus(store, Options.Create(new ProgressOptions()));
        var task = await app.CreateClient().SubmitAsync("/api/exports", """{"parameters":{}}""", Ct);
        using var early = bus.Subscribe(task.Id, knownSeq: 1);

        // Two events are logged whose notifications have not reached this bus yet.
        await app.WaitForJobIdAsync(task.Id, Ct);
        var claimed = (await store.TryClaimAsync(task.Id, "bus-test", TimeSpan.FromMinutes(1), Ct))!;
        store.ReportProgress(new TaskLease(task.Id, "bus-test", claimed.Attempt), 10, "Exporting", null);
        using var late = bus.Subscribe(task.Id, knownSeq: 3);
        var third = (await store.GetEventsAsync(task.Id, 2, Ct)).Single();
        await bus.OnNotifiedAsync(new TaskEventNotification(task.Id, third.Seq, third.Type, third.State, third.Progress, third.Stage, third.Message, third.CreatedAt), Ct);

        Assert.Equal([2L, 3L], Drain(early).Select(e => e.Seq));
        Assert.Equal([2L, 3L], Drain(late).Select(e => e.Seq));
    }

    [Fact]
    public async Task Notification_OfTheNextEvent_IsDeliveredWithoutReadingTheLog_AndDuplicatesAreIgnored()
    {
        var store = app.Services.GetRequiredService<TaskStore>();
        var bus = new TaskEventBus(store, Options.Create(new ProgressOptions()));
        var taskId = Guid.NewGuid(); // not in the log: only the notification can deliver it
        using var subscription = bus.Subscribe(taskId, knownSeq: 4);
        var announced = new TaskEventNotification(taskId, 5, "progress", TaskState.Running, 50, "Exporting", "half", DateTimeOffset.UtcNow);

        await bus.OnNotifiedAsync(announced, Ct);
        await bus.OnNotifiedAsync(announced, Ct);

        var delivered = Assert.Single(Drain(subscription));
        Assert.Equal((5L, 50, "half"), (delivered.Seq, delivered.Progress, delivered.Message));
    }

    [Fact]
    public async Task SubscriberThatNeverReads_DoesNotHoldBackAnother_AndKeepsOnlyTheLatestEvents()
    {
        var bus = SmallBufferBus();
        var taskId = Guid.NewGuid();
        using var reading = bus.Subscribe(taskId, knownSeq: 0);
        using var stalled = bus.Subscribe(taskId, knownSeq: 0);
        var received = new List<long>();

        for (var seq = 1; seq <= 20; seq++)
        {
            await bus.OnNotifiedAsync(Progress(taskId, seq), Ct);
            received.AddRange(Drain(reading).Select(e => e.Seq));
        }

        await bus.OnNotifiedAsync(Final(taskId, 21), Ct);
        received.AddRange(Drain(reading).Select(e => e.Seq));

        Assert.Equal(Enumerable.Range(1, 21).Select(i => (long)i), received);
        Assert.Equal([18L, 19L, 20L, 21L], Drain(stalled).Select(e => e.Seq));
    }

    [Fact]
    public async Task OwnerSubscriberThatFallsBehind_KeepsEveryFinalEvent_AndEachTasksLatestEvent()
    {
        var bus = SmallBufferBus();
        using var everything = bus.SubscribeAll();
        var (quiet, ended, busy) = (Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid());

        await bus.OnNotifiedAsync(new TaskEventNotification(quiet, 1, "stage", TaskState.Running, 0, "Querying", null, DateTimeOffset.UtcNow), Ct);
        await bus.OnNotifiedAsync(Final(ended, 1), Ct);
        for (var seq = 1; seq <= 10; seq++)
        {
            await bus.OnNotifiedAsync(Progress(busy, seq), Ct);
        }

        // The busy task's progress makes room by dropping its own older events, not the others'.
        Assert.Equal([(quiet, 1L), (ended, 1L), (busy, 9L), (busy, 10L)], Drain(everything).Select(e => (e.TaskId, e.Seq)));
    }

    [Fact]
    public async Task OwnerSubscriberHoldingOnlyFinalEvents_KeepsThemAll_PastItsSize()
    {
        var bus = SmallBufferBus();
        using var everything = bus.SubscribeAll();
        var ended = Enumerable.Range(0, 6).Select(_ => Guid.NewGuid()).ToArray();
        var running = Guid.NewGuid();

        foreach (var taskId in ended)
        {
            await bus.OnNotifiedAsync(Final(taskId, 1), Ct);
        }

        await bus.OnNotifiedAsync(Progress(running, 1), Ct);

        Assert.Equal([.. ended, running], Drain(everything).Select(e => e.TaskId));
    }

    [Fact]
    public async Task OwnerSubscriber_GetsANotificationThatNamesItsOwner_WithoutLookingTheTaskUp()
    {
        var bus = SmallBufferBus();
        using var mine = bus.SubscribeOwner("owner-a");
        using var theirs = bus.SubscribeOwner("owner-b");
        var taskId = Guid.NewGuid(); // not in the database: only the notification says whose task it is

        await bus.OnNotifiedAsync(Progress(taskId, 1) with { OwnerId = "owner-a" }, Ct);
        await bus.OnNotifiedAsync(Progress(taskId, 2) with { OwnerId = "owner-a" }, Ct);

        Assert.Equal([1L, 2L], Drain(mine).Select(e => e.Seq));
        Assert.Empty(Drain(theirs));
    }

    private TaskEventBus SmallBufferBus() =>
        new(app.Services.GetRequiredService<TaskStore>(), Options.Create(new ProgressOptions { SubscriberBuffer = 4 }));

    private static TaskEventNotification Progress(Guid taskId, long seq) =>
        new(taskId, seq, "progress", TaskState.Running, (int)seq, "Exporting", null, DateTimeOffset.UtcNow);

    private static TaskEventNotification Final(Guid taskId, long seq) =>
        new(taskId, seq, "succeeded", TaskState.Succeeded, 100, null, null, DateTimeOffset.UtcNow);

    private static List<TaskEvent> Drain(TaskEventSubscription subscription)
    {
        var events = new List<TaskEvent>();
        while (subscription.Reader.TryRead(out var taskEvent))
        {
            events.Add(taskEvent);
        }

        return events;
    }
}
