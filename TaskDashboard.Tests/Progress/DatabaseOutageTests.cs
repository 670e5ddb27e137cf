using System.Net;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using TaskDashboard.Jobs;
using TaskDashboard.Jobs.Execution;
using TaskDashboard.Jobs.Progress;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;
using TaskDashboard.Tests.Jobs;

namespace TaskDashboard.Tests.Progress;

/// <summary>
/// The app (workers, the scripted kind, real Kestrel) reaching its database through an
/// <see cref="OutageProxy"/>; the fixture's own <see cref="TaskDashboardApp.Database"/> goes direct.
/// A lease of 4 s, so that an outage of 1.2 s leaves a running attempt time to renew it.
/// </summary>
public sealed class OutageApp : WorkerApp
{
    public OutageApp() => UseKestrel(0);

    public OutageProxy Proxy { get; private set; } = null!;

    /// <summary>The app's log, always written (tests read what the workers said).</summary>
    public string LogPath { get; } = Path.Combine(Path.GetTempPath(), $"taskdashboard-outage-{Guid.NewGuid():N}.log");

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        Proxy = OutageProxy.InFrontOf(ConnectionString, builder);
        builder.ConfigureLogging(logging => logging.AddProvider(new FileLoggerProvider(LogPath)));
        builder.UseSetting("Jobs:LeaseDuration", "00:00:04");
    }

    protected override void ConfigureTestServices(IServiceCollection services) => services.AddTaskKind<ScriptedTaskKind>();

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        await Proxy.DisposeAsync();
        File.Delete(LogPath);
    }
}

[Collection(AppCollection.Name)]
public sealed class DatabaseOutageTests(OutageApp app) : IClassFixture<OutageApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ADatabaseOutage_CostsARunningTaskNoAttempt_ItsWatchersNoEvent_AndLaterRequestsNoError()
    {
        var client = app.CreateClient();
        // Requests at once leave several idle connections in the pool, which the outage kills.
        await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => client.GetAsync("/api/tasks", Ct)));
        var listener = app.Services.GetRequiredService<TaskEventListener>();
        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":10000,"progressEveryMs":100}}""", Ct);

        using var response = await client.GetAsync($"/api/tasks/{task.Id}/events", HttpCompletionOption.ResponseHeadersRead, Ct);
        using var sse = new SseReader(await response.Content.ReadAsStreamAsync(Ct));
        HttpStatusCode[]? afterOutage = null;
        var events = await sse.ReadAllEventsAsync(async message =>
        {
            if (afterOutage is null && message.Event == "progress" && message.Json.GetProperty("progress").GetInt32() >= 5)
            {
                // The database goes away for 1.2 s, as in a restart: every connection is reset and
                // new ones are turned away.
                var connections = listener.Connections;
                await app.Proxy.OutageAsync(TimeSpan.FromMilliseconds(1200), Ct);
                await TaskDashboardApp.WaitUntilAsync(() => Task.FromResult(listener.Connections > connections), "the listener to reconnect", Ct);
                var answers = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => client.GetAsync("/api/tasks", Ct)));
                afterOutage = [.. answers.Select(a => a.StatusCode)];
            }
        }, Ct);

        var final = await app.GetTaskAsync(client, task.Id, Ct);
        Assert.True(app.Proxy.TurnedAway > 0, "nothing tried to reach the database during the outage");
        Assert.NotNull(afterOutage);
        Assert.All(afterOutage, status => Assert.Equal(HttpStatusCode.OK, status));
        var seqs = events.Select(e => e.Seq).ToList();
        Assert.Equal(Enumerable.Range((int)seqs[0], seqs.Count).Select(i => (long)i), seqs);
        Assert.Equal("succeeded", events[^1].Event);
        Assert.Equal(TaskState.Succeeded, final.Status);
        Assert.Equal(1, final.Attempt);
        Assert.DoesNotContain(events, e => e.Json.GetProperty("type").GetString() is "retry_scheduled" or "requeued");
    }

    [Fact]
    public async Task WhenAListenerLosesItsConnection_TheProcessClosesItsIdlePooledConnections()
    {
        // Five connections of the app's pool, idle again once returned.
        var pool = app.Services.GetRequiredService<NpgsqlDataSource>();
        var connections = await Task.WhenAll(Enumerable.Range(0, 5).Select(_ => pool.OpenConnectionAsync(Ct).AsTask()));
        var pids = connections.Select(c => c.ProcessID).ToArray();
        foreach (var connection in connections)
        {
            await connection.DisposeAsync();
        }

        var listener = app.Services.GetRequiredService<TaskEventListener>();
        var before = listener.Connections;
        await listener.DropConnectionAsync();

        // Whatever ended the listener's connection most likely ended these too: they are closed
        // rather than handed out to fail on their next use.
        await TaskDashboardApp.WaitUntilAsync(() => Task.FromResult(listener.Connections > before), "the listener to reconnect", Ct);
        await TaskDashboardApp.WaitUntilAsync(async () =>
        {
            await using var alive = app.Database.CreateCommand("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(@pids)");
            alive.Parameters.AddWithValue("pids", pids);
            return (long)(await alive.ExecuteScalarAsync(Ct))! == 0;
        }, "the idle pooled connections to be closed", Ct);
    }

    [Fact]
    public async Task AnExportWhoseQueryAnOutageBreaks_GoesOnInTheSameAttempt_AndMatchesAnUninterruptedRun()
    {
        var client = app.CreateClient();
        const string body = """{"parameters":{"throttleMs":150}}""";
        var uninterrupted = await client.SubmitAsync("/api/exports", body, Ct);
        var reference = await app.WaitForStateAsync(client, uninterrupted.Id, TaskState.Succeeded, Ct);
        var task = await client.SubmitAsync("/api/exports", body, Ct);

        using var response = await client.GetAsync($"/api/tasks/{task.Id}/events", HttpCompletionOption.ResponseHeadersRead, Ct);
        using var sse = new SseReader(await response.Content.ReadAsStreamAsync(Ct));
        var cut = false;
        var events = await sse.ReadAllEventsAsync(async message =>
        {
            if (!cut && message.Json.GetProperty("stage").GetString() == "Exporting" && message.Json.GetProperty("progress").GetInt32() >= 30)
            {
                // The export's one connection, in the middle of its COPY batches, is reset with all the others.
                cut = true;
                await app.Proxy.OutageAsync(TimeSpan.FromMilliseconds(1200), Ct);
            }
        }, Ct);

        var final = await app.GetTaskAsync(client, task.Id, Ct);
        Assert.True(cut, "the export never reported a batch");
        Assert.Equal(TaskState.Succeeded, final.Status);
        Assert.Equal(1, final.Attempt);
        Assert.Equal(reference.Result!.Sha256, final.Result!.Sha256);
        Assert.Equal(reference.Result.RowCount, final.Result.RowCount);
        // The export ran again in the same attempt (a second "Counting", with the progress of its
        // last checkpoint), and went on from that checkpoint in its own file, not from the start.
        string? Stage(SseMessage e) => e.Json.GetProperty("stage").GetString();
        int Progress(SseMessage e) => e.Json.GetProperty("progress").GetInt32();
        Assert.Equal(2, events.Count(e => Stage(e) == "Counting"));
        var rerun = events.FindLastIndex(e => Stage(e) == "Counting");
        Assert.True(Progress(events.Skip(rerun + 1).First(e => Stage(e) == "Exporting")) > Progress(events[rerun]), "the export started over");
        var seqs = events.Select(e => e.Seq).ToList();
        Assert.Equal(Enumerable.Range((int)seqs[0], seqs.Count).Select(i => (long)i), seqs);
    }

    [Fact]
    public async Task AnOutageAsATaskEnds_DelaysItsSuccessButCostsNoAttempt_AndTheApiAnswers503Meanwhile()
    {
        var client = app.CreateClient();
        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":1500}}""", Ct);
        // The database goes away the moment the kind returns its result, before its success is written.
        var cut = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        ScriptedTaskKind.BeforeReturning[task.Id] = () =>
        {
            app.Proxy.Cut();
            cut.SetResult();
        };

        await cut.Task.WaitAsync(TimeSpan.FromSeconds(20), Ct);
        var during = await client.GetAsync($"/api/tasks/{task.Id}", Ct);
        await Task.Delay(1200, Ct);
        app.Proxy.Restore();
        // Read directly, not through the app.
        await TaskDashboardApp.WaitUntilAsync(async () =>
        {
            await using var state = app.Database.CreateCommand("SELECT state FROM dashboard.tasks WHERE id = @id");
            state.Parameters.AddWithValue("id", task.Id);
            return (string?)await state.ExecuteScalarAsync(Ct) == "Succeeded";
        }, "the task to succeed", Ct);
        var final = await app.GetTaskAsync(client, task.Id, Ct);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, during.StatusCode);
        Assert.Equal("application/problem+json", during.Content.Headers.ContentType?.MediaType);
        Assert.NotNull(during.Headers.RetryAfter);
        Assert.Equal(1, final.Attempt);
        Assert.Equal("scripted.txt", final.Result!.FileName);
    }

    [Fact]
    public async Task AClaimWhoseCommitAnswerIsLost_StillRunsItsAttempt_ItDoesNotWaitForTheLeaseToLapse()
    {
        var client = app.CreateClient();
        // The next claim of this process's workers commits, but the answer is lost with its connection.
        var lost = app.Proxy.LoseCommitAnswerAsync(app.Services.GetRequiredService<WorkerIdentity>().Id);
        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":300}}""", Ct);
        await lost.WaitAsync(TimeSpan.FromSeconds(20), Ct);

        var final = await app.WaitForStateAsync(client, task.Id, TaskState.Succeeded, Ct);
        await using var started = app.Database.CreateCommand("SELECT count(*) FROM dashboard.task_events WHERE task_id = @id AND type = 'started'");
        started.Parameters.AddWithValue("id", task.Id);

        // The claim that went through unanswered is the attempt: no second claim, no lapsed lease.
        Assert.Equal(1, final.Attempt);
        Assert.Equal(1L, (long)(await started.ExecuteScalarAsync(Ct))!);
    }

    [Fact]
    public async Task ASuccessWhoseAnswerIsLost_IsASuccess_NotALostLease()
    {
        var client = app.CreateClient();
        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":1000}}""", Ct);
        // The success carries the result's path, which holds the task's id: its answer is lost.
        Task? lost = null;
        ScriptedTaskKind.BeforeReturning[task.Id] = () => lost = app.Proxy.LoseAnswerAsync(task.Id.ToString("N"));

        var final = await app.WaitForStateAsync(client, task.Id, TaskState.Succeeded, Ct);
        await TaskDashboardApp.WaitUntilAsync(() => Task.FromResult(File.ReadAllText(app.LogPath).Contains($"Task {task.Id} succeeded")), "the success to be logged", Ct);

        Assert.NotNull(lost);
        Assert.True(lost.IsCompletedSuccessfully, "no answer was lost");
        Assert.Equal(1, final.Attempt);
        Assert.DoesNotContain($"Task {task.Id} attempt 1 lost its lease", File.ReadAllText(app.LogPath));
    }
}
