using System.Net.Http.Json;
using System.Threading.Channels;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using TaskDashboard.Jobs.Progress;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;
using TaskDashboard.Web.Progress;
using TaskDashboard.Web.Tasks;

namespace TaskDashboard.Tests.Progress;

/// <summary>
/// Two web processes and one worker-only process on one PostgreSQL: events of a job run by the worker
/// reach an SSE client on one web node and a SignalR client on the other, in order and complete,
/// even when every node's LISTEN connection is killed in the middle.
/// </summary>
[Collection(AppCollection.Name)]
public sealed class MultiNodeTests(TaskDashboardApp app) : IClassFixture<TaskDashboardApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task SignInOnOneWebNode_IsHonouredByAnother_ThroughSharedDataProtectionKeys()
    {
        await using var web1 = WorkerProcess.StartWeb(app);
        await using var web2 = WorkerProcess.StartWeb(app, asRunStartsIt: true);
        await web1.WaitHealthyAsync(Ct);
        await web2.WaitHealthyAsync(Ct);
        // Cookies are per host, not per port: one client carries web1's cookie to web2.
        using var browser = SignInClient.Create(web1.BaseAddress!);

        var signedIn = await browser.SignInAsync(app.User.UserName, TaskDashboardApp.UserPassword, Ct);
        var onOtherNode = await browser.GetAsync(new Uri(web2.BaseAddress!, "/api/tasks"), Ct);
        var token = await browser.FormTokenAsync("/account/keys", Ct);
        var formOnOtherNode = await browser.PostAsync(new Uri(web2.BaseAddress!, "/account/logout"), SignInClient.Form(("__RequestVerificationToken", token)), Ct);

        // A node started like ./run starts it (a build, not Development) serves the dashboard's assets.
        foreach (var asset in new[] { "/_framework/blazor.web.js", "/_content/MudBlazor/MudBlazor.min.css", "/_content/MudBlazor/MudBlazor.min.js", "/app.css" })
        {
            Assert.Equal(System.Net.HttpStatusCode.OK, (await browser.GetAsync(new Uri(web2.BaseAddress!, asset), Ct)).StatusCode);
        }

        Assert.Equal(System.Net.HttpStatusCode.Redirect, signedIn.StatusCode);
        Assert.Equal(System.Net.HttpStatusCode.OK, onOtherNode.StatusCode);
        Assert.Equal(System.Net.HttpStatusCode.Redirect, formOnOtherNode.StatusCode);
        Assert.Equal("/account/login", formOnOtherNode.Headers.Location!.ToString());
    }

    [Fact]
    public async Task EventsOfAJobOnAWorker_ReachSseOnOneNodeAndSignalROnAnother_WithoutGaps()
    {
        await using var web1 = WorkerProcess.StartWeb(app);
        await using var web2 = WorkerProcess.StartWeb(app);
        await using var worker = WorkerProcess.Start(app);
        await web1.WaitHealthyAsync(Ct);
        await web2.WaitHealthyAsync(Ct);
        using var client1 = new HttpClient { BaseAddress = web1.BaseAddress };
        client1.DefaultRequestHeaders.Authorization = new("Bearer", app.ApiKey);
        using var client2 = new HttpClient { BaseAddress = web2.BaseAddress };
        client2.DefaultRequestHeaders.Authorization = new("Bearer", app.ApiKey);

        // All of the owner's events on node 2, read until halfway; resumed on node 1 at the end.
        using var ownerStream = await client2.GetAsync("/api/events", HttpCompletionOption.ResponseHeadersRead, Ct);
        using var ownerSse = new SseReader(await ownerStream.Content.ReadAsStreamAsync(Ct));
        var ownerFirstHalf = ReadSseUntilAsync(ownerSse, e => e.Event is "succeeded" || (e.Event == "progress" && e.Json.GetProperty("progress").GetInt32() >= 50));
        // And over SignalR on node 1, until halfway; resumed on node 2 at the end.
        var ownerHub = await TaskHubClient.ConnectAsync(web1.BaseAddress!, app.ApiKey, Ct);
        await ownerHub.Connection.InvokeAsync<MyTasksSubscription>("SubscribeToMyTasks", Ct);
        var ownerHubFirstHalf = ReadHubUntilAsync(ownerHub.Events, e => e.Type == "succeeded" || (e.Type == "progress" && e.Progress >= 50));
        // Submitted through node 1; it waits for the worker (which polls or is woken by NOTIFY).
        var response = await client1.PostAsync("/api/exports", ApiClientExtensions.Json("""{"parameters":{"throttleMs":200}}"""), Ct);
        var task = (await response.Content.ReadFromJsonAsync<TaskResponse>(TaskDashboardApp.Json, Ct))!;

        await using var hub = await TaskHubClient.ConnectAsync(web2.BaseAddress!, app.ApiKey, Ct);
        var hubSnapshot = await hub.Connection.InvokeAsync<TaskEventData>("SubscribeToTask", task.Id, 0L, Ct);
        var hubRead = ReadHubAsync(hub.Events);

        using var stream = await client1.GetAsync($"/api/tasks/{task.Id}/events?lastEventId=0", HttpCompletionOption.ResponseHeadersRead, Ct);
        using var sse = new SseReader(await stream.Content.ReadAsStreamAsync(Ct));
        var killed = false;
        var sseEvents = await sse.ReadAllEventsAsync(async message =>
        {
            if (!killed && message.Event == "progress" && message.Json.GetProperty("progress").GetInt32() >= 20)
            {
                killed = true;
                await KillListenersAsync();
            }
        }, Ct);

        var viaHub = await hubRead;
        var log = await app.Services.GetRequiredService<TaskStore>().GetEventsAsync(task.Id, 0, Ct);
        var ownerEvents = (await ownerFirstHalf).Where(e => e.Event != "snapshot").ToList();
        Assert.NotEqual("succeeded", ownerEvents[^1].Event);
        using (var resumed = new HttpRequestMessage(HttpMethod.Get, "/api/events"))
        {
            resumed.Headers.TryAddWithoutValidation("Last-Event-ID", ownerEvents[^1].Id);
            using var rest = await client1.SendAsync(resumed, HttpCompletionOption.ResponseHeadersRead, Ct);
            using var restSse = new SseReader(await rest.Content.ReadAsStreamAsync(Ct));
            ownerEvents.AddRange(await ReadSseUntilAsync(restSse, e => e.Event == "succeeded"));
        }

        var ownerHubEvents = await ownerHubFirstHalf;
        await ownerHub.DisposeAsync();
        Assert.NotEqual("succeeded", ownerHubEvents[^1].Type);
        await using (var resumedHub = await TaskHubClient.ConnectAsync(web2.BaseAddress!, app.ApiKey, Ct))
        {
            await resumedHub.Connection.InvokeAsync<MyTasksSubscription>("SubscribeToMyTasksAfter", ownerHubEvents[^1].Position, Ct);
            ownerHubEvents.AddRange(await ReadHubUntilAsync(resumedHub.Events, e => e.Type == "succeeded"));
        }

        Assert.True(killed, "the export never reported progress before it ended");
        Assert.Equal("succeeded", sseEvents[^1].Event);
        Assert.Equal(log.Select(e => e.Seq), sseEvents.Select(e => e.Seq));
        Assert.Equal(log.Select(e => e.Seq), viaHub.Select(e => e.Seq));
        Assert.Equal(log.Select(e => e.Type), viaHub.Select(e => e.Type));
        Assert.Equal(task.Id, hubSnapshot.TaskId);
        Assert.Equal(log.Select(e => e.Seq), ownerEvents.Select(e => e.Json.GetProperty("seq").GetInt64()));
        Assert.Equal(log.Select(e => e.Seq), ownerHubEvents.Select(e => e.Seq));
    }

    // Every event the client receives, until `last` accepts one; fails after 60 s.
    private static async Task<List<TaskEventData>> ReadHubUntilAsync(ChannelReader<TaskEventData> reader, Func<TaskEventData, bool> last)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        var events = new List<TaskEventData>();
        do
        {
            events.Add(await reader.ReadAsync(timeout.Token));
        }
        while (!last(events[^1]));
        return events;
    }

    private static async Task<List<SseMessage>> ReadSseUntilAsync(SseReader sse, Func<SseMessage, bool> last)
    {
        var events = new List<SseMessage>();
        while (await sse.ReadAsync(Ct) is { } message)
        {
            if (message.Event is not null)
            {
                events.Add(message);
                if (last(message))
                {
                    break;
                }
            }
        }

        return events;
    }

    private static async Task<List<TaskEventData>> ReadHubAsync(ChannelReader<TaskEventData> reader)
    {
        var events = new List<TaskEventData>();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        await foreach (var data in reader.ReadAllAsync(timeout.Token))
        {
            if (data.Seq > (events.Count == 0 ? 0 : events[^1].Seq))
            {
                events.Add(data);
            }

            if (TaskTransitions.IsFinal(data.Status) && data.Type is "succeeded" or "failed" or "cancelled")
            {
                break;
            }
        }

        return events;
    }

    private async Task KillListenersAsync()
    {
        await using var command = app.Database.CreateCommand(
            $"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '{TaskEventListener.ApplicationName}' AND datname = current_database()");
        Assert.True((long)(await command.ExecuteScalarAsync(Ct))! >= 2, "fewer than two listener connections to kill");
    }
}
