using Microsoft.Extensions.DependencyInjection;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;

namespace TaskDashboard.Tests.Jobs;

[Collection(AppCollection.Name)]
public sealed class EngineTests(EngineApp app) : IClassFixture<EngineApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task TransientFailures_AreRetriedWithBackoff_UntilTheTaskSucceeds()
    {
        var client = app.CreateClient();

        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"failTimes":2}}""", Ct);
        var done = await app.WaitForStateAsync(client, task.Id, TaskState.Succeeded, Ct);

        Assert.Equal(3, done.Attempt);
        var stored = await app.Services.GetRequiredService<TaskStore>().GetForExecutionAsync(task.Id, Ct);
        Assert.Equal(["scripted transient failure on attempt 1", "scripted transient failure on attempt 2"], stored!.Errors.Select(e => e.Message));
        Assert.Equal([1, 2], stored.Errors.Select(e => e.Attempt));
        var events = await app.Services.GetRequiredService<TaskStore>().GetEventsAsync(task.Id, 0, Ct);
        Assert.Equal(2, events.Count(e => e.Type == "retry_scheduled"));
        Assert.Equal(3, events.Count(e => e.Type == "started"));
        Assert.Contains(events, e => e.Type == "retry_scheduled" && e.State == TaskState.Scheduled && e.Message!.Contains("Retrying in"));
    }

    [Fact]
    public async Task TransientFailures_EndFailedWithTheLastError_WhenAttemptsRunOut()
    {
        var client = app.CreateClient();

        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"failTimes":9}}""", Ct);
        var failed = await app.WaitForStateAsync(client, task.Id, TaskState.Failed, Ct);

        Assert.Equal(3, failed.Attempt);
        Assert.Equal(3, failed.MaxAttempts);
        Assert.Equal("scripted transient failure on attempt 3", failed.Error);
    }

    [Fact]
    public async Task FrequentProgressReports_AreCoalescedToAboutTenEventsPerSecond()
    {
        var client = app.CreateClient();

        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":1500,"progressEveryMs":10}}""", Ct);
        await app.WaitForStateAsync(client, task.Id, TaskState.Succeeded, Ct);

        var events = await app.Services.GetRequiredService<TaskStore>().GetEventsAsync(task.Id, 0, Ct);
        var progress = events.Where(e => e.Type == "progress").ToList();
        // ~150 reports in 1.5 s; at most one event per 100 ms gets through (plus the first).
        Assert.InRange(progress.Count, 5, 17);
        Assert.Equal(Enumerable.Range(1, events.Count).Select(i => (long)i), events.Select(e => e.Seq));
        Assert.True(progress.Zip(progress.Skip(1)).All(p => p.First.Progress <= p.Second.Progress), "progress went backwards");
    }

    [Fact]
    public async Task TaskWaitingForItsRetry_IsCancelledAtOnce_AndItsEarlierFilesAreRemoved()
    {
        var client = app.CreateClient();
        // The first attempt leaves a work file and fails; the retry waits (backoff) as Scheduled.
        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"failTimes":1,"runMs":100}}""", Ct);
        var store = app.Services.GetRequiredService<TaskStore>();
        var workFile = Path.Combine(app.ArtifactsPath, task.Id.ToString("N"), "attempt-1.txt.part");
        Directory.CreateDirectory(Path.GetDirectoryName(workFile)!);
        await File.WriteAllTextAsync(workFile, "partial", Ct);
        await app.WaitForStateAsync(client, task.Id, TaskState.Scheduled, Ct);

        var cancel = await client.PostAsync($"/api/tasks/{task.Id}/cancel", null, Ct);

        var cancelled = await app.WaitForStateAsync(client, task.Id, TaskState.Cancelled, Ct);
        Assert.True(cancel.StatusCode is System.Net.HttpStatusCode.OK, $"cancel answered {cancel.StatusCode}");
        Assert.Equal("Cancelled while waiting to run again", cancelled.Message);
        Assert.False(File.Exists(workFile));
        Assert.Equal(1, (await store.GetForExecutionAsync(task.Id, Ct))!.Attempt);
    }

    [Fact]
    public async Task PermanentFailure_FailsAtOnceWithoutRetry()
    {
        var client = app.CreateClient();

        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"failTimes":1,"permanent":true}}""", Ct);
        var failed = await app.WaitForStateAsync(client, task.Id, TaskState.Failed, Ct);

        Assert.Equal(1, failed.Attempt);
        Assert.Equal("scripted permanent failure on attempt 1", failed.Error);
        Assert.False(Directory.Exists(Path.Combine(app.ArtifactsPath, task.Id.ToString("N"))));
    }

    [Fact]
    public async Task Timeout_EndsTheTaskFailed_WithAClearReason()
    {
        var client = app.CreateClient();

        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":30000},"timeout":1}""", Ct);
        var failed = await app.WaitForStateAsync(client, task.Id, TaskState.Failed, Ct);

        Assert.Equal(1, task.Timeout);
        Assert.Equal("The task timed out after 1 s.", failed.Error);
        Assert.Equal(1, failed.Attempt);
        Assert.False(Directory.Exists(Path.Combine(app.ArtifactsPath, task.Id.ToString("N"))));
    }

    [Fact]
    public async Task RunningTask_StopsWithinTwoSecondsOfTheCancelRequest_AndRemovesItsPartialArtifact()
    {
        var client = app.CreateClient();
        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":60000}}""", Ct);
        await app.WaitForStateAsync(client, task.Id, TaskState.Running, Ct);

        var cancel = await client.PostAsync($"/api/tasks/{task.Id}/cancel", null, Ct);
        await app.WaitForStateAsync(client, task.Id, TaskState.Cancelled, Ct, TimeSpan.FromSeconds(10));

        Assert.Equal(System.Net.HttpStatusCode.Accepted, cancel.StatusCode);
        var stored = (await app.Services.GetRequiredService<TaskStore>().GetForExecutionAsync(task.Id, Ct))!;
        var stopTime = stored.CancelledAt!.Value - stored.CancelRequestedAt!.Value;
        Assert.True(stopTime < TimeSpan.FromSeconds(2), $"stopped {stopTime.TotalMilliseconds:F0} ms after the request");
        Assert.False(Directory.Exists(Path.Combine(app.ArtifactsPath, task.Id.ToString("N"))));
    }
}
