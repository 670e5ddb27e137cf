using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using TaskDashboard.Jobs;
using TaskDashboard.Jobs.Execution;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;

namespace TaskDashboard.Tests.Jobs;

/// <summary>Forty idle workers that poll Hangfire's queue only every five minutes.</summary>
public sealed class ManyIdleWorkersApp : ScriptedWorkerApp
{
    public const int Workers = 40;

    protected override IReadOnlyDictionary<string, string> Settings { get; } = new Dictionary<string, string>
    {
        ["Jobs:WorkerCount"] = Workers.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Jobs:QueuePollInterval"] = "00:05:00",
    };
}

/// <summary>
/// A job's notification wakes as many idle workers as it announces jobs, not all of them: woken all
/// at once, 100 workers looked at the queue for every batch the dispatcher enqueued.
/// </summary>
[Collection(AppCollection.Name)]
public sealed class JobWakeUpFanOutTests(ManyIdleWorkersApp app) : IClassFixture<ManyIdleWorkersApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task EachJob_WakesOneIdleWorker_NotEveryOne()
    {
        var client = app.CreateClient();
        var wakeUp = app.Services.GetRequiredService<JobQueueWakeUp>();
        // Every worker looks at the empty queue once when it starts (one dequeue each), then waits;
        // on a busy machine some start after the test does, so count only once all of them wait.
        await TaskDashboardApp.WaitUntilAsync(() => Task.FromResult(wakeUp.Waiting == ManyIdleWorkersApp.Workers), "every worker to wait", Ct);
        using var recorded = new InstrumentRecorder(app.Services.GetRequiredService<IMeterFactory>(), JobsMetrics.QueueDequeues);
        await Task.Delay(TimeSpan.FromSeconds(1), Ct);
        var idle = recorded.Sum(JobsMetrics.QueueDequeues);

        var tasks = new List<Guid>();
        for (var i = 0; i < 3; i++)
        {
            var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":10}}""", Ct);
            var done = await app.WaitForStateAsync(client, task.Id, TaskState.Succeeded, Ct, TimeSpan.FromSeconds(20));
            Assert.Equal(TaskState.Succeeded, done.Status);
            tasks.Add(task.Id);
        }

        await TaskDashboardApp.WaitUntilAsync(() => Task.FromResult(wakeUp.Waiting == ManyIdleWorkersApp.Workers), "every worker to wait again", Ct);
        var perJob = (recorded.Sum(JobsMetrics.QueueDequeues) - idle) / (double)tasks.Count;

        // Per job: the woken worker takes it and wakes one more (which finds nothing), and the
        // worker that ran it looks again when it is done: 3. All woken at once: 40 or more.
        Assert.Equal(0, idle);
        Assert.InRange(perJob, 1, 5);
    }
}
