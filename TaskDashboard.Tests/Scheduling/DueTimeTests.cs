using Microsoft.Extensions.DependencyInjection;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;
using TaskDashboard.Tests.Jobs;

namespace TaskDashboard.Tests.Scheduling;

/// <summary>A dispatcher that polls only every five minutes; retries wait about a second.</summary>
public sealed class SlowPollApp : ScriptedWorkerApp
{
    protected override IReadOnlyDictionary<string, string> Settings { get; } = new Dictionary<string, string>
    {
        ["Jobs:DispatchInterval"] = "00:05:00",
        ["Jobs:RetryBaseDelay"] = "00:00:01",
    };
}

/// <summary>
/// Delayed tasks and retries start when they fall due, not at the dispatcher's next poll: it sleeps
/// until the earliest due time.
/// </summary>
[Collection(AppCollection.Name)]
public sealed class DueTimeTests(SlowPollApp app) : IClassFixture<SlowPollApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task DelayedTask_StartsAtItsDueTime_LongBeforeTheNextPoll()
    {
        var client = app.CreateClient();
        // Let the dispatcher settle into its five-minute wait first.
        await Task.Delay(TimeSpan.FromSeconds(1), Ct);

        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","delay":2,"parameters":{"runMs":10}}""", Ct);
        var done = await app.WaitForStateAsync(client, task.Id, TaskState.Succeeded, Ct, TimeSpan.FromSeconds(20));

        Assert.InRange(done.StartedAt!.Value, task.ScheduledAt!.Value, task.ScheduledAt.Value.AddSeconds(3));
    }

    [Fact]
    public async Task Retry_StartsWhenItsBackoffEnds_LongBeforeTheNextPoll()
    {
        var client = app.CreateClient();

        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"failTimes":1,"failAfterMs":500,"runMs":10}}""", Ct);
        var done = await app.WaitForStateAsync(client, task.Id, TaskState.Succeeded, Ct, TimeSpan.FromSeconds(30));
        var events = await app.Services.GetRequiredService<TaskStore>().GetEventsAsync(task.Id, 0, Ct);

        var retry = events.Single(e => e.Type == "retry_scheduled");
        var restarted = events.Where(e => e.Type == "started").Last();
        Assert.Equal(2, done.Attempt);
        // The backoff is 0.8–1.2 s; the poll is five minutes away.
        Assert.InRange(restarted.CreatedAt - retry.CreatedAt, TimeSpan.FromSeconds(0.7), TimeSpan.FromSeconds(4));
    }

    [Fact]
    public async Task AnEarlierDelayedTask_MovesTheWakeUpForward_AndBothStartOnTime()
    {
        var client = app.CreateClient();

        var later = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","delay":4,"parameters":{"runMs":10}}""", Ct);
        var sooner = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","delay":2,"parameters":{"runMs":10}}""", Ct);
        var soonerDone = await app.WaitForStateAsync(client, sooner.Id, TaskState.Succeeded, Ct, TimeSpan.FromSeconds(20));
        var laterDone = await app.WaitForStateAsync(client, later.Id, TaskState.Succeeded, Ct, TimeSpan.FromSeconds(20));

        Assert.InRange(soonerDone.StartedAt!.Value, sooner.ScheduledAt!.Value, sooner.ScheduledAt.Value.AddSeconds(3));
        Assert.InRange(laterDone.StartedAt!.Value, later.ScheduledAt!.Value, later.ScheduledAt.Value.AddSeconds(3));
    }
}
