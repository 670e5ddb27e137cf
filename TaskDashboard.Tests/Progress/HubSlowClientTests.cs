using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;
using TaskDashboard.Web.Progress;

namespace TaskDashboard.Tests.Progress;

/// <summary>As <see cref="KestrelApp"/>, closing a SignalR connection that has not taken a message for 12 s (SignalR's own default is 10 s).</summary>
public sealed class SendTimeoutKestrelApp() : KestrelApp(("Progress:HubSendTimeout", "00:00:12"));

[Collection(AppCollection.Name)]
public sealed class HubSlowClientTests(SendTimeoutKestrelApp app) : IClassFixture<SendTimeoutKestrelApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    // ~12 MB of events, logged in 0.5–1 s: far more than a stalled connection's socket and pipe
    // buffers take (~4 MB on loopback, where the kernel grows the send buffer).
    private const int Logged = 2_000;
    private static readonly string Padding = new('x', 6_000);

    [Fact]
    public async Task AConnectionThatStopsReading_HoldsBackNoOtherWatcher_AndIsClosedAfterTheSendTimeout()
    {
        var store = app.Services.GetRequiredService<TaskStore>();
        var forwarder = app.Services.GetRequiredService<HubTaskForwarder>();
        var client = app.CreateClient();
        var lease = await app.ClaimNewExportAsync("hub-test", Ct);
        var taskId = lease.TaskId;
        var watchesBefore = forwarder.Watches;

        // One connection watches the task and all of its owner's tasks, and then stops reading; one
        // watcher for each kind of subscription keeps reading.
        await using var stalled = await StalledHubClient.ConnectAsync(client.BaseAddress!, app.ApiKey, Ct);
        await stalled.InvokeAsync("SubscribeToTask", $"""["{taskId}",null]""", Ct);
        await stalled.InvokeAsync("SubscribeToMyTasks", "[]", Ct);
        await using var taskWatcher = await TaskHubClient.ConnectAsync(client.BaseAddress!, app.ApiKey, Ct);
        await taskWatcher.Connection.InvokeAsync<TaskEventData>("SubscribeToTask", taskId, null, Ct);
        await using var ownerWatcher = await TaskHubClient.ConnectAsync(client.BaseAddress!, app.ApiKey, Ct);
        await ownerWatcher.Connection.InvokeAsync("SubscribeToMyTasks", Ct);
        Assert.Equal(watchesBefore + 4, forwarder.Watches);

        var logging = System.Diagnostics.Stopwatch.StartNew();
        for (var batch = 0; batch < Logged / 20; batch++)
        {
            var first = batch * 20;
            await Task.Run(() => store.AppendProgressEvents(
                [.. Enumerable.Range(first, 20).Select(i => new ProgressEventWrite(lease, i % 100, "Exporting", $"row {i} {Padding}", DateTimeOffset.UtcNow))]), Ct);
        }

        var last = (await store.GetEventsAsync(taskId, 0, Ct))[^1].Seq;
        await ReceiveUpToAsync(taskWatcher, taskId, last);
        await ReceiveUpToAsync(ownerWatcher, taskId, last);

        // Both watchers had everything while the stalled connection was still open: they did not
        // wait for it to be closed.
        Assert.Equal(watchesBefore + 4, forwarder.Watches);

        // The node closes the stalled connection once a write to it has waited Progress:HubSendTimeout
        // (12 s here; it stalled after the logging began), which ends its watches (their pumps were
        // stuck in a write to it); the watchers stay.
        using var closed = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        closed.CancelAfter(TimeSpan.FromSeconds(40));
        while (forwarder.Watches > watchesBefore + 2)
        {
            await Task.Delay(100, closed.Token);
        }

        Assert.Equal(watchesBefore + 2, forwarder.Watches);
        Assert.True(logging.Elapsed > TimeSpan.FromSeconds(11.9), $"The stalled connection was closed {logging.Elapsed} after the logging began, before Progress:HubSendTimeout");
    }

    /// <summary>Reads the watcher's events of the task until seq <paramref name="last"/>; progress on the way may have been dropped (down to the latest).</summary>
    private static async Task ReceiveUpToAsync(TaskHubClient watcher, Guid taskId, long last)
    {
        long seen = 0;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        try
        {
            await foreach (var data in watcher.Events.ReadAllAsync(timeout.Token))
            {
                if (data.TaskId == taskId && data.Seq > seen)
                {
                    seen = data.Seq;
                    if (seen == last)
                    {
                        return;
                    }
                }
            }
        }
        catch (OperationCanceledException) when (!Ct.IsCancellationRequested)
        {
            Assert.Fail($"A watcher got events up to seq {seen} of {last} in 30 s.");
        }
    }
}
