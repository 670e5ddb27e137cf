using System.Net.Http.Json;
using Hangfire;
using Hangfire.Common;
using Hangfire.States;
using Microsoft.Extensions.DependencyInjection;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;
using TaskDashboard.Web.Tasks;

namespace TaskDashboard.Tests.Jobs;

/// <summary>
/// A Hangfire client that fails on purpose: before creating a job (storage down) or right after
/// creating it (the process dies before the task row records the job).
/// </summary>
public sealed class FlakyJobClient(IBackgroundJobClient inner) : IBackgroundJobClient
{
    public int FailBeforeCreate;
    public int FailAfterCreate;
    public readonly List<string> CreatedThenFailed = [];

    public string Create(Job job, IState state)
    {
        if (Interlocked.Decrement(ref FailBeforeCreate) >= 0)
        {
            throw new InvalidOperationException("Injected: Hangfire storage unavailable.");
        }

        var id = inner.Create(job, state);
        if (Interlocked.Decrement(ref FailAfterCreate) >= 0)
        {
            lock (CreatedThenFailed)
            {
                CreatedThenFailed.Add(id);
            }

            throw new InvalidOperationException("Injected: crash after the job was created.");
        }

        return id;
    }

    public bool ChangeState(string jobId, IState state, string expectedState) => inner.ChangeState(jobId, state, expectedState);
}

public sealed class FlakyDispatchApp : WorkerApp
{
    public FlakyJobClient Client { get; private set; } = null!;

    protected override void ConfigureTestServices(IServiceCollection services)
    {
        services.AddSingleton(sp => Client = new FlakyJobClient(new BackgroundJobClient(sp.GetRequiredService<JobStorage>())));
        services.AddSingleton<IBackgroundJobClient>(sp => sp.GetRequiredService<FlakyJobClient>());
    }
}

[Collection(AppCollection.Name)]
public sealed class DispatchFailureTests(FlakyDispatchApp app) : IClassFixture<FlakyDispatchApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task CommittedTask_IsDispatchedAndRunOnce_WhenEnqueueFailsBetweenCommitAndJob()
    {
        var client = app.CreateClient();
        _ = app.Services.GetRequiredService<FlakyJobClient>();
        Interlocked.Exchange(ref app.Client.FailBeforeCreate, 3);

        var created = await client.SubmitAsync("/api/exports", """{"parameters":{"from":"2025-01-01","to":"2025-01-20"}}""", Ct);
        var done = await app.WaitForStateAsync(client, created.Id, TaskState.Succeeded, Ct);

        Assert.Equal(TaskState.Pending, created.Status);
        Assert.Equal(1, done.Attempt);
        await AssertRanOnceAndNoJobIsOrphanedAsync(created.Id);
    }

    [Fact]
    public async Task CommittedTask_RunsExactlyOnce_WhenAJobWasCreatedButItsDispatchRolledBack()
    {
        var client = app.CreateClient();
        _ = app.Services.GetRequiredService<FlakyJobClient>();
        Interlocked.Exchange(ref app.Client.FailAfterCreate, 1);

        var created = await client.SubmitAsync("/api/exports", """{"parameters":{"from":"2025-01-01","to":"2025-01-20"}}""", Ct);
        var done = await app.WaitForStateAsync(client, created.Id, TaskState.Succeeded, Ct);

        Assert.Equal(1, done.Attempt);
        string stray;
        lock (app.Client.CreatedThenFailed)
        {
            stray = Assert.Single(app.Client.CreatedThenFailed);
        }

        await AssertRanOnceAndNoJobIsOrphanedAsync(created.Id);
        var storedJobId = (await app.Services.GetRequiredService<TaskStore>().GetForExecutionAsync(created.Id, Ct))!.HangfireJobId;
        Assert.NotEqual(stray, storedJobId);
    }

    private async Task AssertRanOnceAndNoJobIsOrphanedAsync(Guid taskId)
    {
        var store = app.Services.GetRequiredService<TaskStore>();
        var events = await store.GetEventsAsync(taskId, 0, Ct);
        Assert.Single(events, e => e.Type == "started");

        // The task row turns Succeeded inside the job; Hangfire records its own Succeeded state a
        // moment later, when the job method has returned. Wait for that before listing its jobs.
        var jobId = (await store.GetForExecutionAsync(taskId, Ct))!.HangfireJobId!;
        await TaskDashboardApp.WaitUntilAsync(() =>
        {
            using var connection = app.JobStorage.GetConnection();
            return Task.FromResult(connection.GetJobData(jobId)?.State == SucceededState.StateName);
        }, $"Hangfire job {jobId} to be recorded as succeeded", Ct);

        // Every job in Hangfire's storage belongs to a task that exists.
        var monitoring = app.JobStorage.GetMonitoringApi();
        var jobTaskIds = monitoring.SucceededJobs(0, 1000).Select(j => j.Value.Job)
            .Concat(monitoring.DeletedJobs(0, 1000).Select(j => j.Value.Job))
            .Concat(monitoring.ProcessingJobs(0, 1000).Select(j => j.Value.Job))
            .Concat(monitoring.FailedJobs(0, 1000).Select(j => j.Value.Job))
            .Where(job => job is not null)
            .Select(job => (Guid)job.Args[0])
            .Distinct()
            .ToList();
        Assert.Contains(taskId, jobTaskIds);
        foreach (var id in jobTaskIds)
        {
            Assert.NotNull(await store.GetForExecutionAsync(id, Ct));
        }
    }
}
