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
