using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using TaskDashboard.Jobs;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;

namespace TaskDashboard.Tests.Progress;

[Collection(AppCollection.Name)]
public sealed class ProgressMetricsTests(SseApp app) : IClassFixture<SseApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ARunningTask_RecordsHowLongItsEventsTookToCommit_AndToReachTheListener()
    {
        using var recorded = new InstrumentRecorder(app.Services.GetRequiredService<IMeterFactory>(),
            JobsMetrics.ProgressCommitDelay, JobsMetrics.ProgressNotifyDelay);
        var client = app.CreateClient();
        var before = DateTimeOffset.UtcNow;

        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":600}}""", Ct);
        await app.WaitForStateAsync(client, task.Id, TaskState.Succeeded, Ct);
        var ceiling = (DateTimeOffset.UtcNow - before).TotalMilliseconds;

        // Stage changes (task-row writes) and, over 600 ms, live events; every value is an age within the run.
        var commits = recorded.Values(JobsMetrics.ProgressCommitDelay);
        Assert.Contains(commits, c => (string?)c.Tag == "row");
        Assert.All(commits, c => Assert.InRange(c.Value, 0, ceiling));
        // The listener hands notifications on after their commit: give the last ones a moment.
        await TaskDashboardApp.WaitUntilAsync(
            () => Task.FromResult(recorded.Values(JobsMetrics.ProgressNotifyDelay).Count >= commits.Count), "a notification for every committed write", Ct);

        var notifies = recorded.Values(JobsMetrics.ProgressNotifyDelay);
        Assert.True(notifies.Count >= commits.Count, $"{notifies.Count} notifications for {commits.Count} committed writes");
        Assert.All(notifies, n => Assert.InRange(n.Value, 0, ceiling));
    }
}
