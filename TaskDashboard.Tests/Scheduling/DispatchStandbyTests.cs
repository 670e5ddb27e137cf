using Microsoft.Extensions.Configuration;
using TaskDashboard.Jobs;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;
using TaskDashboard.Tests.Jobs;
using TaskDashboard.Web.Operations;

namespace TaskDashboard.Tests.Scheduling;

/// <summary>A process whose dispatcher stands by 2 s behind others for what falls due, and polls only every five minutes.</summary>
public sealed class StandbyApp : ScriptedWorkerApp
{
    public static readonly TimeSpan Standby = TimeSpan.FromSeconds(2);

    protected override IReadOnlyDictionary<string, string> Settings { get; } = new Dictionary<string, string>
    {
        ["Jobs:DispatchInterval"] = "00:05:00",
        ["Jobs:DispatchStandby"] = Standby.ToString(),
    };
}

/// <summary>
/// <c>Jobs:DispatchStandby</c>: a delayed task that falls due is left to other processes'
/// dispatchers for that long, then this one takes it without waiting for a poll; tasks to run now
/// are not held back.
/// </summary>
[Collection(AppCollection.Name)]
public sealed class DispatchStandbyTests(StandbyApp app) : IClassFixture<StandbyApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task DelayedTask_NobodyElseTakes_StartsWhenTheStandbyEnds_LongBeforeTheNextPoll()
    {
        var client = app.CreateClient();
        // Let the dispatcher settle into its five-minute wait first.
        await Task.Delay(TimeSpan.FromSeconds(1), Ct);

        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","delay":1,"parameters":{"runMs":10}}""", Ct);
        // Once it is due but still within the standby, a submission wakes the dispatcher: that pass
        // runs the new task and leaves the delayed one.
        var withinStandby = task.ScheduledAt!.Value.AddSeconds(0.5) - DateTimeOffset.UtcNow;
        await Task.Delay(withinStandby > TimeSpan.Zero ? withinStandby : TimeSpan.Zero, Ct);
        var now = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":10}}""", Ct);
        await app.WaitForStateAsync(client, now.Id, TaskState.Succeeded, Ct, TimeSpan.FromSeconds(20));
        var done = await app.WaitForStateAsync(client, task.Id, TaskState.Succeeded, Ct, TimeSpan.FromSeconds(20));

        var dueForThisProcess = task.ScheduledAt.Value + StandbyApp.Standby;
        Assert.InRange(done.StartedAt!.Value, dueForThisProcess, dueForThisProcess.AddSeconds(3));
    }

    [Fact]
    public async Task TaskToRunNow_IsNotHeldBack()
    {
        var client = app.CreateClient();

        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":10}}""", Ct);
        var done = await app.WaitForStateAsync(client, task.Id, TaskState.Succeeded, Ct, TimeSpan.FromSeconds(20));

        Assert.InRange(done.StartedAt!.Value, task.CreatedAt, task.CreatedAt + StandbyApp.Standby / 2);
    }
}

/// <summary>The worker role's defaults: what falls due is left to the web nodes for a second, unless configured.</summary>
public sealed class WorkerRoleDefaultsTests
{
    private const string Key = "Jobs:DispatchStandby";

    [Fact]
    public void Unset_StandsByOneSecond()
    {
        var configuration = new ConfigurationManager();

        WorkerRole.AddDefaults(configuration);

        Assert.Equal(TimeSpan.FromSeconds(1), configuration.GetSection(JobsOptions.SectionName).Get<JobsOptions>()!.DispatchStandby);
    }

    [Fact]
    public void Configured_KeepsItsValue()
    {
        var configuration = new ConfigurationManager();
        configuration.AddInMemoryCollection([new(Key, "00:00:00")]);

        WorkerRole.AddDefaults(configuration);

        Assert.Equal(TimeSpan.Zero, configuration.GetSection(JobsOptions.SectionName).Get<JobsOptions>()!.DispatchStandby);
    }
}
