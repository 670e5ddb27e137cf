using Microsoft.Extensions.DependencyInjection;
using TaskDashboard.Jobs;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;
using TaskDashboard.Tests.Jobs;
using TaskDashboard.Web.Tasks;

namespace TaskDashboard.Tests.Scheduling;

/// <summary>Four workers, but at most two scripted tasks at once in the whole cluster.</summary>
public sealed class LimitedKindApp : ScriptedWorkerApp
{
    protected override IReadOnlyDictionary<string, string> Settings { get; } = new Dictionary<string, string>
    {
        ["Jobs:WorkerCount"] = "4",
        ["Jobs:ConcurrencyLimits:scripted"] = "2",
    };
}

[Collection(AppCollection.Name)]
public sealed class ConcurrencyLimitTests(LimitedKindApp app) : IClassFixture<LimitedKindApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task KindLimit_HoldsAcrossTheCluster_AndEveryTaskStillRuns()
    {
        var client = app.CreateClient();
        var tasks = new List<TaskResponse>();
        for (var i = 0; i < 8; i++)
        {
            tasks.Add(await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":500}}""", Ct));
        }

        var export = await client.SubmitAsync("/api/exports", """{"parameters":{"region":"north"}}""", Ct);
        var peak = 0L;
        var exportDoneWhileScriptedWaited = false;
        await TaskDashboardApp.WaitUntilAsync(async () =>
        {
            var (running, waiting) = await CountAsync();
            peak = Math.Max(peak, running);
            exportDoneWhileScriptedWaited |= waiting > 0 && (await app.GetTaskAsync(client, export.Id, Ct)).Status == TaskState.Succeeded;
            return running == 0 && waiting == 0;
        }, "every scripted task to finish", Ct);

        foreach (var task in tasks)
        {
            Assert.Equal(TaskState.Succeeded, (await app.GetTaskAsync(client, task.Id, Ct)).Status);
        }

        Assert.Equal(2L, peak);
        Assert.True(exportDoneWhileScriptedWaited, "A kind without a limit waited behind the limited one.");
    }

    private async Task<(long Running, long Waiting)> CountAsync()
    {
        await using var command = app.Database.CreateCommand("""
            SELECT count(*) FILTER (WHERE state = 'Running'), count(*) FILTER (WHERE state IN ('Pending', 'Scheduled'))
            FROM dashboard.tasks WHERE kind = 'scripted'
            """);
        await using var reader = await command.ExecuteReaderAsync(Ct);
        await reader.ReadAsync(Ct);
        return (reader.GetInt64(0), reader.GetInt64(1));
    }
}

/// <summary>Web node without workers, one export at a time in the cluster; workers are separate processes.</summary>
public sealed class OneExportApp : TaskDashboardApp
{
    public static readonly Dictionary<string, string> Limit = new() { ["Jobs:ConcurrencyLimits:export"] = "1" };

    protected override void ConfigureWebHost(Microsoft.AspNetCore.Hosting.IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        foreach (var (key, value) in Limit)
        {
            builder.UseSetting(key, value);
        }
    }
}

[Collection(AppCollection.Name)]
public sealed class ConcurrencyLimitCrashTests(OneExportApp app) : IClassFixture<OneExportApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task DeadWorkersSlot_IsFreedWithItsLease_AndTheLimitStillHolds()
    {
        await using var first = WorkerProcess.Start(app, OneExportApp.Limit);
        var client = app.CreateClient();
        var one = await client.SubmitAsync("/api/exports", """{"parameters":{"throttleMs":300}}""", Ct);
        var two = await client.SubmitAsync("/api/exports", """{"parameters":{"throttleMs":100}}""", Ct);
        await TaskDashboardApp.WaitUntilAsync(async () => (await app.GetTaskAsync(client, one.Id, Ct)).Progress > 0, "the first export to make progress", Ct);

        first.Kill();
        await using var second = WorkerProcess.Start(app, OneExportApp.Limit);
        var peak = 0L;
        await TaskDashboardApp.WaitUntilAsync(async () =>
        {
            await using var command = app.Database.CreateCommand("SELECT count(*) FILTER (WHERE state = 'Running'), count(*) FILTER (WHERE state = 'Succeeded') FROM dashboard.tasks WHERE kind = 'export'");
            await using var reader = await command.ExecuteReaderAsync(Ct);
            await reader.ReadAsync(Ct);
            peak = Math.Max(peak, reader.GetInt64(0));
            return reader.GetInt64(1) == 2;
        }, "both exports to finish on the second worker", Ct);

        Assert.Equal(1L, peak);
        Assert.Equal(2, (await app.GetTaskAsync(client, one.Id, Ct)).Attempt);
        Assert.Equal(1, (await app.GetTaskAsync(client, two.Id, Ct)).Attempt);
    }
}
