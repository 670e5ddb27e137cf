using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using TaskDashboard.Jobs;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;

namespace TaskDashboard.Tests.Scheduling;

/// <summary>
/// What wakes the dispatcher: a worker taking a job does not while Hangfire's queue has room (a
/// pass for every job taken cost a worker as many empty passes as jobs started).
/// </summary>
[Collection(AppCollection.Name)]
public sealed class DispatchPassTests(SlowPollApp app) : IClassFixture<SlowPollApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ATaskSubmittedAndRun_CostsOnePass_TheSubmissions()
    {
        var client = app.CreateClient();
        // Let the start-up passes end; the next poll is five minutes away.
        await Task.Delay(TimeSpan.FromSeconds(1), Ct);
        using var recorded = new InstrumentRecorder(app.Services.GetRequiredService<IMeterFactory>(), JobsMetrics.DispatchPasses);

        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":10}}""", Ct);
        await app.WaitForStateAsync(client, task.Id, TaskState.Succeeded, Ct, TimeSpan.FromSeconds(20));
        // Time for a pass that the job's start might have woken.
        await Task.Delay(TimeSpan.FromMilliseconds(500), Ct);

        Assert.Equal(1, recorded.Sum(JobsMetrics.DispatchPasses));
    }
}
