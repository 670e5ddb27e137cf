using System.Net.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;
using TaskDashboard.Web.Tasks;

namespace TaskDashboard.Tests.Jobs;

/// <summary>
/// Real worker processes killed with SIGKILL mid-task. The test host serves the API only; the work
/// happens in worker-only processes on the same database and artifact folder.
/// </summary>
[Collection(AppCollection.Name)]
public sealed class WorkerCrashTests(TaskDashboardApp app) : IClassFixture<TaskDashboardApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("/api/exports", """{"parameters":{"format":"csv","throttleMs":250}}""")]
    [InlineData("/api/exports", """{"parameters":{"format":"ndjson","gzip":true,"region":"east","throttleMs":250}}""")]
    [InlineData("/api/reports", """{"parameters":{"from":"2025-01-01","to":"2025-12-31","groupBy":"product"}}""")]
    public async Task TaskOfKilledWorker_ResumesFromCheckpointOnAnotherWorker_AndMatchesAnUninterruptedRun(string path, string body)
    {
        var client = app.CreateClient();
        var slowReports = new Dictionary<string, string> { ["Report:PartitionDelay"] = "00:00:00.300" };
        var crashed = await client.SubmitAsync(path, body, Ct);

        TaskResponse beforeKill;
        await using (var first = WorkerProcess.Start(app, slowReports))
        {
            beforeKill = await WaitForProgressAsync(client, crashed.Id, atLeast: 30);
            first.Kill();
        }

        await using var second = WorkerProcess.Start(app, slowReports);
        var resumed = await app.WaitForStateAsync(client, crashed.Id, TaskState.Succeeded, Ct, TimeSpan.FromSeconds(60));
        var reference = await client.SubmitAsync(path, body, Ct);
        var uninterrupted = await app.WaitForStateAsync(client, reference.Id, TaskState.Succeeded, Ct, TimeSpan.FromSeconds(60));

        Assert.Equal(2, resumed.Attempt);
        Assert.Equal(1, uninterrupted.Attempt);
        Assert.Equal(uninterrupted.Result!.Sha256, resumed.Result!.Sha256);
        Assert.Equal(uninterrupted.Result.SizeBytes, resumed.Result.SizeBytes);
        Assert.Equal(uninterrupted.Result.RowCount, resumed.Result.RowCount);
        var downloaded = await client.GetByteArrayAsync(resumed.ResultUrl, Ct);
        Assert.Equal(resumed.Result.Sha256, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(downloaded)));

        // It resumed: the second attempt's first progress continued from the checkpoint, not from 0.
        var events = await app.Services.GetRequiredService<TaskStore>().GetEventsAsync(crashed.Id, 0, Ct);
        var requeued = events.Single(e => e.Type == "requeued");
        Assert.Contains("Worker lost on attempt 1", requeued.Message);
        var firstProgressAfter = events.First(e => e.Seq > requeued.Seq && e.Type == "progress" && e.Progress > 0);
        Assert.True(firstProgressAfter.Progress >= beforeKill.Progress, $"resumed at {firstProgressAfter.Progress}% after a kill at {beforeKill.Progress}%");
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(app.ArtifactsPath, crashed.Id.ToString("N")), "*.part"));
    }

    [Fact]
    public async Task TaskOfGracefullyStoppedWorker_IsHandedBackAndResumedWithoutAnotherAttemptLost()
    {
        var client = app.CreateClient();
        var task = await client.SubmitAsync("/api/exports", """{"parameters":{"format":"csv","throttleMs":250}}""", Ct);

        await using (var first = WorkerProcess.Start(app))
        {
            await WaitForProgressAsync(client, task.Id, atLeast: 20);
            await first.StopAsync(TimeSpan.FromSeconds(20));
        }

        var handedBack = await app.GetTaskAsync(client, task.Id, Ct);
        await using var second = WorkerProcess.Start(app);
        var done = await app.WaitForStateAsync(client, task.Id, TaskState.Succeeded, Ct, TimeSpan.FromSeconds(60));

        Assert.Equal(TaskState.Pending, handedBack.Status);
        Assert.Contains("shut down", handedBack.Message);
        Assert.True(handedBack.Progress >= 20);
        Assert.Equal(2, done.Attempt);
    }

    private async Task<TaskResponse> WaitForProgressAsync(HttpClient client, Guid id, int atLeast)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            var task = (await client.GetFromJsonAsync<TaskResponse>($"/api/tasks/{id}", TaskDashboardApp.Json, Ct))!;
            if (task.Status == TaskState.Running && task.Progress >= atLeast)
            {
                return task;
            }

            Assert.False(task.Status is TaskState.Succeeded or TaskState.Failed, $"task ended {task.Status} before reaching {atLeast}%");
            await Task.Delay(50, Ct);
        }

        throw new TimeoutException($"Task {id} never reached {atLeast}%.");
    }
}
