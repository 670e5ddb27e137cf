using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;
using TaskDashboard.Web.Progress;

namespace TaskDashboard.Tests.Progress;

/// <summary>The app on a real Kestrel port without workers: the test writes a task's events itself.</summary>
public class KestrelApp : TaskDashboardApp
{
    private readonly (string Key, string Value)[] settings;

    public KestrelApp()
        : this([])
    {
    }

    /// <summary>With these configuration settings as well.</summary>
    protected KestrelApp(params (string Key, string Value)[] settings)
    {
        this.settings = settings;
        UseKestrel(0);
    }

    protected override void ConfigureWebHost(Microsoft.AspNetCore.Hosting.IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        foreach (var (key, value) in settings)
        {
            builder.UseSetting(key, value);
        }
    }
}

/// <summary>As <see cref="KestrelApp"/>, holding at most 4 live events per connection during a replay.</summary>
public sealed class SmallBufferKestrelApp() : KestrelApp(("Progress:ReplayHoldLimit", "4"));

[Collection(AppCollection.Name)]
public sealed class HubReplayTests(KestrelApp app) : IClassFixture<KestrelApp>
{
    [Fact]
    public async Task Subscribing_WhileEventsKeepComing_DeliversTheReplayAndTheLiveEventsOnceAndInOrder()
    {
        var (last, seen) = await HubReplay.SubscribeWhileEventsKeepComingAsync(app, logged: 2_000);

        Assert.True(last > 2_001, "no event was logged during the replay");
        Assert.Equal(Enumerable.Range(1, (int)last).Select(i => (long)i), seen);
    }
}

[Collection(AppCollection.Name)]
public sealed class HubReplayOverflowTests(SmallBufferKestrelApp app) : IClassFixture<SmallBufferKestrelApp>
{
    [Fact]
    public async Task LiveEventsBeyondTheBuffer_DuringAReplay_AreReadFromTheLog_NothingIsMissed()
    {
        var forwarder = app.Services.GetRequiredService<HubTaskForwarder>();
        var overflowsBefore = forwarder.HeldOverflows;

        // Live events come in bursts of 5, so one burst during the replay outgrows the hold limit; on a
        // busy machine the replay may end before the first one: try a few tasks.
        for (var attempt = 0; attempt < 10 && forwarder.HeldOverflows == overflowsBefore; attempt++)
        {
            var (last, seen) = await HubReplay.SubscribeWhileEventsKeepComingAsync(app, logged: 5_000, liveBurst: 5);
            Assert.Equal(Enumerable.Range(1, (int)last).Select(i => (long)i), seen);
        }

        Assert.True(forwarder.HeldOverflows > overflowsBefore, "the live events held during the replay never outgrew the limit of 4");
    }
}

internal static class HubReplay
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>
    /// Logs <paramref name="logged"/> events of a running task, then subscribes a SignalR client from
    /// seq 0 while <paramref name="liveBurst"/> more events are logged every few milliseconds; returns the last seq logged and the
    /// seqs the client accepted (those above the last one it had seen), in arrival order.
    /// </summary>
    public static async Task<(long Last, List<long> Seen)> SubscribeWhileEventsKeepComingAsync(TaskDashboardApp app, int logged, int liveBurst = 1)
    {
        var store = app.Services.GetRequiredService<TaskStore>();
        var client = app.CreateClient();
        // The apps here run no workers: the test logs the task's events itself, under its lease.
        var lease = await app.ClaimNewExportAsync("hub-test", Ct);
        var progress = 0;
        Task<IReadOnlyList<bool>> AppendAsync(int count) => Task.Run(() => store.AppendProgressEvents(
            [.. Enumerable.Range(0, count).Select(_ => new ProgressEventWrite(lease, ++progress % 100, "Exporting", $"report {progress}", DateTimeOffset.UtcNow))]), Ct);

        // A long log to replay, and new events logged (and announced) while the replay is being sent.
        for (var i = 0; i < logged / 100; i++)
        {
            await AppendAsync(100);
        }

        await using var watcher = await TaskHubClient.ConnectAsync(client.BaseAddress!, app.ApiKey, Ct);
        using var stopLive = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var live = Task.Run(async () =>
        {
            while (!stopLive.IsCancellationRequested)
            {
                await AppendAsync(liveBurst);
                await Task.Delay(2, Ct);
            }
        }, Ct);
        await watcher.Connection.InvokeAsync<TaskEventData>("SubscribeToTask", lease.TaskId, 0L, Ct);
        await Task.Delay(300, Ct);
        await stopLive.CancelAsync();
        await live;
        var last = (await store.GetEventsAsync(lease.TaskId, 0, Ct))[^1].Seq;

        // A client that keeps the last seq it has seen drops anything at or below it: arrival order matters.
        var seen = new List<long>();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        await foreach (var data in watcher.Events.ReadAllAsync(timeout.Token))
        {
            if (data.Seq > (seen.Count == 0 ? 0 : seen[^1]))
            {
                seen.Add(data.Seq);
            }

            if (data.Seq == last)
            {
                break;
            }
        }

        return (last, seen);
    }
}
