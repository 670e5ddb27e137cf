using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using TaskDashboard.Jobs;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;
using TaskDashboard.Tests.Jobs;
using TaskDashboard.Web.Tasks;

namespace TaskDashboard.Tests.Scheduling;

/// <summary>One Hangfire worker and the scripted kind, so the order in which tasks start can be seen.</summary>
public sealed class OneWorkerApp : ScriptedWorkerApp
{
    protected override IReadOnlyDictionary<string, string> Settings { get; } = new Dictionary<string, string> { ["Jobs:WorkerCount"] = "1" };
}

[Collection(AppCollection.Name)]
public sealed class SchedulingTests(OneWorkerApp app) : IClassFixture<OneWorkerApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task CriticalTask_StartsNext_WhenLowIsFlooded()
    {
        var client = app.CreateClient();
        var low = new List<TaskResponse>();
        for (var i = 0; i < 10; i++)
        {
            low.Add(await client.SubmitAsync("/api/tasks", """{"kind":"scripted","priority":"low","parameters":{"runMs":400}}""", Ct));
        }

        await app.WaitForStateAsync(client, low[0].Id, TaskState.Running, Ct);
        var critical = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","priority":"critical","parameters":{"runMs":10}}""", Ct);
        var done = await app.WaitForStateAsync(client, critical.Id, TaskState.Succeeded, Ct);
        var lows = new List<TaskResponse>();
        foreach (var task in low)
        {
            lows.Add(await app.GetTaskAsync(client, task.Id, Ct));
        }

        // At most the low task that was already running (or just being picked up) went first.
        var startedBetween = lows.Count(t => t.StartedAt > critical.CreatedAt && t.StartedAt < done.StartedAt);
        Assert.InRange(startedBetween, 0, 1);
        Assert.True(lows.Count(t => t.StartedAt is null || t.StartedAt > done.StartedAt) >= 5, "The critical task waited behind the flood of low ones.");
    }

    [Fact]
    public async Task DelayedTask_IsScheduled_AndStartsAtItsTime()
    {
        var client = app.CreateClient();

        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","delay":2,"parameters":{"runMs":10}}""", Ct);
        var waiting = await app.GetTaskAsync(client, task.Id, Ct);
        var done = await app.WaitForStateAsync(client, task.Id, TaskState.Succeeded, Ct);

        Assert.Equal(TaskState.Scheduled, task.Status);
        Assert.Equal(TaskState.Scheduled, waiting.Status);
        Assert.InRange(task.ScheduledAt!.Value, task.CreatedAt.AddSeconds(1.9), task.CreatedAt.AddSeconds(2.1));
        Assert.True(done.StartedAt >= task.ScheduledAt, $"Started at {done.StartedAt}, before {task.ScheduledAt}.");
    }

    [Fact]
    public async Task ScheduledTask_CanBeCancelledBeforeItStarts_AndNeverRuns()
    {
        var client = app.CreateClient();
        var runAt = DateTimeOffset.UtcNow.AddHours(1).ToString("O");

        var task = await client.SubmitAsync("/api/tasks", $$$"""{"kind":"scripted","runAt":"{{{runAt}}}","parameters":{"runMs":10}}""", Ct);
        var cancel = await client.PostAsync($"/api/tasks/{task.Id}/cancel", null, Ct);
        var events = await app.Services.GetRequiredService<TaskStore>().GetEventsAsync(task.Id, 0, Ct);

        Assert.Equal(TaskState.Scheduled, task.Status);
        Assert.Equal(HttpStatusCode.OK, cancel.StatusCode);
        Assert.Equal(TaskState.Cancelled, (await app.GetTaskAsync(client, task.Id, Ct)).Status);
        Assert.DoesNotContain(events, e => e.Type == "started");
    }

    [Theory]
    [InlineData("""{"kind":"scripted","runAt":"2020-01-01T00:00:00Z"}""", "runAt")]
    [InlineData("""{"kind":"scripted","runAt":"2999-01-01T00:00:00Z"}""", "runAt")]
    [InlineData("""{"kind":"scripted","delay":-1}""", "delay")]
    [InlineData("""{"kind":"scripted","delay":5,"runAt":"2030-01-01T00:00:00Z"}""", "delay")]
    public async Task BadStartTimes_Get400_AndNothingIsWritten(string body, string field)
    {
        var before = await app.CountTasksAsync(Ct);

        var response = await app.CreateClient().PostAsync("/api/tasks", ApiClientExtensions.Json(body), Ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.True((await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("errors").TryGetProperty(field, out _));
        Assert.Equal(before, await app.CountTasksAsync(Ct));
    }
}
