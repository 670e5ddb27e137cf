using System.Net;
using System.Net.Http.Headers;
using Microsoft.Extensions.DependencyInjection;
using TaskDashboard.Jobs;
using TaskDashboard.Jobs.Progress;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;
using TaskDashboard.Tests.Jobs;

namespace TaskDashboard.Tests.Progress;

/// <summary>The app on a real Kestrel port, with workers, the scripted kind and a 1 s SSE keep-alive.</summary>
public sealed class SseApp : WorkerApp
{
    public SseApp() => UseKestrel(0);

    protected override void ConfigureWebHost(Microsoft.AspNetCore.Hosting.IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        builder.UseSetting("Progress:SseKeepAlive", "00:00:01");
        builder.UseSetting("Progress:HubQuietRead", "00:00:01");
    }

    protected override void ConfigureTestServices(IServiceCollection services) => services.AddTaskKind<ScriptedTaskKind>();
}

[Collection(AppCollection.Name)]
public sealed class SseTests(SseApp app) : IClassFixture<SseApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Stream_SendsSnapshotThenEveryEventInOrder_AndClosesAfterTheFinalEvent()
    {
        var client = app.CreateClient();
        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":1500}}""", Ct);

        using var response = await client.GetAsync($"/api/tasks/{task.Id}/events", HttpCompletionOption.ResponseHeadersRead, Ct);
        using var sse = new SseReader(await response.Content.ReadAsStreamAsync(Ct));
        var events = await sse.ReadAllEventsAsync(Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("no", response.Headers.GetValues("X-Accel-Buffering").Single());
        Assert.Equal("snapshot", events[0].Event);
        Assert.Equal("succeeded", events[^1].Event);
        Assert.Equal($"/api/tasks/{task.Id}/result", events[^1].Json.GetProperty("resultUrl").GetString());
        var seqs = events.Select(e => e.Seq).ToList();
        Assert.Equal(Enumerable.Range((int)seqs[0], seqs.Count).Select(i => (long)i), seqs);
        var log = await app.Services.GetRequiredService<TaskStore>().GetEventsAsync(task.Id, seqs[0], Ct);
        Assert.Equal(log.Select(e => e.Seq), seqs.Skip(1));
        Assert.Contains(events, e => e.Event == "progress");
        Assert.Contains(events, e => e.Event == "stage" && e.Json.GetProperty("type").GetString() == "started");
    }

    [Fact]
    public async Task LastEventId_ReplaysExactlyTheMissedEvents_FromHeaderOrQuery()
    {
        var client = app.CreateClient();
        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":300}}""", Ct);
        await app.WaitForStateAsync(client, task.Id, TaskState.Succeeded, Ct);
        var log = await app.Services.GetRequiredService<TaskStore>().GetEventsAsync(task.Id, 0, Ct);

        var fromHeader = await ReadStreamAsync(client, $"/api/tasks/{task.Id}/events", lastEventId: "2");
        var fromQuery = await ReadStreamAsync(client, $"/api/tasks/{task.Id}/events?lastEventId=2", lastEventId: null);

        Assert.Equal(log.Where(e => e.Seq > 2).Select(e => e.Seq), fromHeader.Select(e => e.Seq));
        Assert.Equal(fromHeader.Select(e => e.Seq), fromQuery.Select(e => e.Seq));
        Assert.Equal("succeeded", fromHeader[^1].Event);
    }

    [Fact]
    public async Task ReconnectAfterADroppedConnection_LosesAndRepeatsNothing()
    {
        var client = app.CreateClient();
        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":1500}}""", Ct);
        var seen = new List<SseMessage>();

        using (var response = await client.GetAsync($"/api/tasks/{task.Id}/events", HttpCompletionOption.ResponseHeadersRead, Ct))
        using (var sse = new SseReader(await response.Content.ReadAsStreamAsync(Ct)))
        {
            while (seen.Count < 4 && await sse.ReadAsync(Ct) is { } message)
            {
                if (message.Event is not null)
                {
                    seen.Add(message);
                }
            }
        }

        seen.AddRange(await ReadStreamAsync(client, $"/api/tasks/{task.Id}/events", lastEventId: seen[^1].Id));

        var seqs = seen.Select(e => e.Seq).ToList();
        Assert.Equal(Enumerable.Range((int)seqs[0], seqs.Count).Select(i => (long)i), seqs);
        Assert.Equal("succeeded", seen[^1].Event);
    }

    [Fact]
    public async Task QuietStream_SendsKeepAliveComments()
    {
        var client = app.CreateClient();
        // A task that reports once and then works quietly for 2.5 s.
        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":2500,"progressEveryMs":10000}}""", Ct);

        using var response = await client.GetAsync($"/api/tasks/{task.Id}/events", HttpCompletionOption.ResponseHeadersRead, Ct);
        using var sse = new SseReader(await response.Content.ReadAsStreamAsync(Ct));
        var comments = 0;
        while (await sse.ReadAsync(Ct) is { } message)
        {
            if (message.Comment == "keep-alive")
            {
                comments++;
            }
        }

        Assert.True(comments >= 1, "no keep-alive comment in a 2.5 s stream with a 1 s keep-alive");
    }

    [Fact]
    public async Task ListenerReconnect_LosesNoEvent()
    {
        var client = app.CreateClient();
        var listener = app.Services.GetRequiredService<TaskEventListener>();
        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":2000}}""", Ct);
        var connectionsBefore = listener.Connections;

        using var response = await client.GetAsync($"/api/tasks/{task.Id}/events", HttpCompletionOption.ResponseHeadersRead, Ct);
        using var sse = new SseReader(await response.Content.ReadAsStreamAsync(Ct));
        var seen = 0;
        var events = await sse.ReadAllEventsAsync(async _ =>
        {
            if (++seen == 5)
            {
                await listener.DropConnectionAsync();
            }
        }, Ct);

        var seqs = events.Select(e => e.Seq).ToList();
        Assert.Equal(Enumerable.Range((int)seqs[0], seqs.Count).Select(i => (long)i), seqs);
        Assert.Equal("succeeded", events[^1].Event);
        Assert.True(listener.Connections > connectionsBefore, "the listener did not reconnect");
    }

    [Fact]
    public async Task Stream_Answers404ForAnUnknownTask_And400ForABadLastEventId()
    {
        var client = app.CreateClient();
        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{}}""", Ct);

        var unknown = await client.GetAsync($"/api/tasks/{Guid.NewGuid()}/events", Ct);
        var bad = new HttpRequestMessage(HttpMethod.Get, $"/api/tasks/{task.Id}/events");
        bad.Headers.TryAddWithoutValidation("Last-Event-ID", "abc");
        var badResponse = await client.SendAsync(bad, Ct);

        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal("application/problem+json", unknown.Content.Headers.ContentType?.MediaType);
        Assert.Equal(HttpStatusCode.BadRequest, badResponse.StatusCode);
    }

    [Fact]
    public async Task LastEventId_OfAnEndedTasksLastEvent_Answers204_AndPastALastEvent400()
    {
        var client = app.CreateClient();
        var store = app.Services.GetRequiredService<TaskStore>();
        var ended = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":100}}""", Ct);
        await app.WaitForStateAsync(client, ended.Id, TaskState.Succeeded, Ct);
        var endedLast = (await store.GetEventsAsync(ended.Id, 0, Ct))[^1].Seq;
        var waiting = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{},"delay":3600}""", Ct);

        using var caughtUp = await OpenStreamAsync(client, ended.Id, endedLast);
        using var pastEnded = await OpenStreamAsync(client, ended.Id, endedLast + 1);
        using var pastWaiting = await OpenStreamAsync(client, waiting.Id, 2);
        using var atWaiting = await OpenStreamAsync(client, waiting.Id, 1);

        // The client has the ended task's final event: no stream, and an EventSource stops reconnecting.
        Assert.Equal(HttpStatusCode.NoContent, caughtUp.StatusCode);
        Assert.Empty(await caughtUp.Content.ReadAsByteArrayAsync(Ct));
        // No client can have received an event past a task's last one: a clear error, not a silent stream.
        Assert.Equal(HttpStatusCode.BadRequest, pastEnded.StatusCode);
        Assert.Equal("application/problem+json", pastEnded.Content.Headers.ContentType?.MediaType);
        Assert.Contains($"past the task's last event ({endedLast})", await pastEnded.Content.ReadAsStringAsync(Ct));
        Assert.Equal(HttpStatusCode.BadRequest, pastWaiting.StatusCode);
        // A task that has not ended is streamed from its last event on.
        Assert.Equal(HttpStatusCode.OK, atWaiting.StatusCode);
        Assert.Equal("text/event-stream", atWaiting.Content.Headers.ContentType?.MediaType);
        await client.PostAsync($"/api/tasks/{waiting.Id}/cancel", null, Ct);
    }

    private static async Task<HttpResponseMessage> OpenStreamAsync(HttpClient client, Guid taskId, long lastEventId)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, $"/api/tasks/{taskId}/events");
        request.Headers.TryAddWithoutValidation("Last-Event-ID", lastEventId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct);
    }

    private static async Task<List<SseMessage>> ReadStreamAsync(HttpClient client, string path, string? lastEventId)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        if (lastEventId is not null)
        {
            request.Headers.TryAddWithoutValidation("Last-Event-ID", lastEventId);
        }

        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct);
        using var sse = new SseReader(await response.Content.ReadAsStreamAsync(Ct));
        return await sse.ReadAllEventsAsync(Ct);
    }
}
