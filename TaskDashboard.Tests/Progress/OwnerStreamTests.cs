using System.Net;
using Microsoft.Extensions.DependencyInjection;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;

namespace TaskDashboard.Tests.Progress;

/// <summary><c>GET /api/events</c>: every event of the caller's tasks, each with its position in the log.</summary>
[Collection(AppCollection.Name)]
public sealed class OwnerStreamTests(SseApp app) : IClassFixture<SseApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task OwnerStream_DeliversEveryEventOfEveryTaskOfTheCaller()
    {
        var client = await NewUserClientAsync();
        using var response = await client.GetAsync("/api/events", HttpCompletionOption.ResponseHeadersRead, Ct);
        using var sse = new SseReader(await response.Content.ReadAsStreamAsync(Ct));
        var snapshot = await ReadEventsAsync(sse, 1);

        var first = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":600}}""", Ct);
        var second = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":300}}""", Ct);
        var events = new List<SseMessage>();
        while (events.Count(e => e.Event == "succeeded") < 2 && await sse.ReadAsync(Ct) is { } message)
        {
            if (message.Event is not null)
            {
                events.Add(message);
            }
        }

        Assert.Equal("snapshot", snapshot[0].Event);
        Assert.NotNull(snapshot[0].Id);
        Assert.All(events, e => Assert.False(string.IsNullOrEmpty(e.Id)));
        await AssertEveryEventOnceAsync(events, [first.Id, second.Id]);
        // A task's first event needs no read of the log: it is sent as announced, named in the id.
        Assert.All(events.Where(e => Key(e).Seq == 1), e => Assert.Contains('_', e.Id!));
    }

    [Fact]
    public async Task OwnerStream_ResumedFromTheIdOfAnyEvent_SendsExactlyTheEventsAfterIt()
    {
        var client = await NewUserClientAsync();
        var start = (await ReadEventsAsync(client, lastEventId: null, count: 1))[0];
        Assert.Equal("snapshot", start.Event);
        Assert.Equal(0, start.Json.GetArrayLength());
        var tasks = new List<Guid>();
        for (var i = 0; i < 3; i++)
        {
            tasks.Add((await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":400}}""", Ct)).Id);
        }

        foreach (var id in tasks)
        {
            await app.WaitForStateAsync(client, id, TaskState.Succeeded, Ct);
        }

        // Everything since the snapshot is one range of the log, so every event but the last is
        // positioned inside it (after the snapshot, up to the range's end, after this task's event).
        var store = app.Services.GetRequiredService<TaskStore>();
        var total = 0;
        foreach (var id in tasks)
        {
            total += (await store.GetEventsAsync(id, 0, Ct)).Count;
        }

        var missed = await ReadEventsAsync(client, start.Id, total);
        await AssertEveryEventOnceAsync(missed, tasks);
        Assert.All(missed[..^1], e => Assert.Contains('~', e.Id!));

        for (var i = 0; i < missed.Count; i++)
        {
            var rest = await ReadEventsAsync(client, missed[i].Id, missed.Count - i - 1);
            AssertSameEvents(missed[(i + 1)..], rest);
        }

        // And from the live events of tasks that run side by side after the client caught up, their
        // events committed by several writers in whatever order.
        using var response = await OpenAsync(client, missed[^1].Id);
        using var sse = new SseReader(await response.Content.ReadAsStreamAsync(Ct));
        var later = new List<Guid>();
        for (var i = 0; i < 3; i++)
        {
            later.Add((await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":500}}""", Ct)).Id);
        }

        var live = new List<SseMessage>();
        while (live.Count(e => e.Event == "succeeded") < later.Count)
        {
            live.AddRange(await ReadEventsAsync(sse, 1));
        }

        await AssertEveryEventOnceAsync(live, later);
        // Sent as announced, named in the id on top of the last position read from the log.
        Assert.Contains(live, e => e.Id!.Contains('_'));
        for (var i = 0; i < live.Count; i++)
        {
            var rest = await ReadEventsAsync(client, live[i].Id, live.Count - i - 1);
            AssertSameEvents(live[(i + 1)..], rest);
        }
    }

    [Fact]
    public async Task OwnerStream_ResumedInsideARangeLongerThanAPage_SendsExactlyTheEventsAfterIt()
    {
        var client = await NewUserClientAsync();
        var start = (await ReadEventsAsync(client, lastEventId: null, count: 1))[0];
        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{},"delay":3600}""", Ct);
        // 1,200 events in one transaction: more than two of the stream's 500-event reads.
        await using (var command = app.Database.CreateCommand("""
            INSERT INTO dashboard.task_events (task_id, seq, type, state, progress, created_at)
            SELECT @id, s, 'progress', 'Scheduled', 0, now() FROM generate_series(2, 1201) AS s
            """))
        {
            command.Parameters.AddWithValue("id", task.Id);
            await command.ExecuteNonQueryAsync(Ct);
        }

        var all = await ReadEventsAsync(client, start.Id, 1201);
        var fromPageTwo = await ReadEventsAsync(client, all[700].Id, 500);
        var fromPageEnd = await ReadEventsAsync(client, all[499].Id, 701);

        Assert.Equal(Enumerable.Range(1, 1201).Select(i => (long)i), all.Select(e => e.Json.GetProperty("seq").GetInt64()));
        AssertSameEvents(all[701..], fromPageTwo);
        AssertSameEvents(all[500..], fromPageEnd);
        await client.PostAsync($"/api/tasks/{task.Id}/cancel", null, Ct);
    }

    [Fact]
    public async Task OwnerStream_ResumedAfterTheLastEvent_SendsNothingUntilANewOne()
    {
        var client = await NewUserClientAsync();
        var start = (await ReadEventsAsync(client, lastEventId: null, count: 1))[0];
        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":200}}""", Ct);
        await app.WaitForStateAsync(client, task.Id, TaskState.Succeeded, Ct);
        var total = (await app.Services.GetRequiredService<TaskStore>().GetEventsAsync(task.Id, 0, Ct)).Count;
        var events = await ReadEventsAsync(client, start.Id, total);

        // The app's keep-alive is 1 s: a comment, and no event, comes first.
        using var response = await OpenAsync(client, events[^1].Id);
        using var sse = new SseReader(await response.Content.ReadAsStreamAsync(Ct));
        SseMessage? first;
        do
        {
            first = await sse.ReadAsync(Ct);
        }
        while (first is { Event: null, Comment: null });

        Assert.Equal("succeeded", events[^1].Event);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.NotNull(first);
        Assert.Equal("keep-alive", first.Comment);
        Assert.Null(first.Event);
    }

    [Fact]
    public async Task OwnerStream_SendsAnEventWhoseAnnouncementWasLost_AtTheNextKeepAlive()
    {
        var (client, task) = await NewUserWithAWaitingTaskAsync();
        using var response = await OpenAsync(client, null);
        using var sse = new SseReader(await response.Content.ReadAsStreamAsync(Ct));
        await ReadEventsAsync(sse, 1);
        await WaitBetweenKeepAlivesAsync(sse);

        // Logged without a NOTIFY, as when a process dies between a batch's commit and its announcement.
        await LogProgressEventAsync(task, seq: 2);
        var (beforeIt, logged) = await ReadUntilEventAsync(sse);

        Assert.Equal((task, 2L), Key(logged));
        Assert.Contains("keep-alive", beforeIt);
        await client.PostAsync($"/api/tasks/{task}/cancel", null, Ct);
    }

    [Fact]
    public async Task OwnerStream_PlacesAnAnnouncementWithoutItsTransaction_ByReadingTheLog()
    {
        var (client, task) = await NewUserWithAWaitingTaskAsync();
        using var response = await OpenAsync(client, null);
        using var sse = new SseReader(await response.Content.ReadAsStreamAsync(Ct));
        await ReadEventsAsync(sse, 1);
        await WaitBetweenKeepAlivesAsync(sse);

        // An older version's notification: no transaction, so the stream cannot place it by itself.
        var logged = await LogProgressEventAsync(task, seq: 2);
        await app.Services.GetRequiredService<TaskDashboard.Jobs.Progress.TaskEventBus>().OnNotifiedAsync(
            new TaskEventNotification(task, 2, logged.Type, logged.State, logged.Progress, logged.Stage, logged.Message, logged.CreatedAt, await OwnerOfAsync(task)), Ct);
        var (beforeIt, sent) = await ReadUntilEventAsync(sse);

        // Sent at once (the app's keep-alive is 1 s), read from the log: its id is a new snapshot.
        Assert.Equal((task, 2L), Key(sent));
        Assert.Empty(beforeIt);
        Assert.DoesNotContain('_', sent.Id!);
        await client.PostAsync($"/api/tasks/{task}/cancel", null, Ct);
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("12")]
    [InlineData("100:-1:")]
    [InlineData("100:5:7")]
    [InlineData("100:5:3,1")]
    [InlineData("100:5:~100:5:~nothex.3")]
    [InlineData("100:9:~100:5:~0123456789abcdef0123456789abcdef.3")]
    public async Task OwnerStream_RefusesAMalformedLastEventId(string lastEventId)
    {
        var client = await NewUserClientAsync();

        using var response = await OpenAsync(client, lastEventId);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("Last-Event-ID must be the id of an event of this stream", await response.Content.ReadAsStringAsync(Ct));
    }

    [Fact]
    public async Task OwnerStream_RefusesALastEventIdPastTheLog_FromHeaderOrQuery()
    {
        var client = await NewUserClientAsync();
        var now = await app.Services.GetRequiredService<TaskStore>().GetLogPositionAsync(Ct);
        var ahead = $"{now.Xmax + 1_000_000}:0:";

        using var header = await OpenAsync(client, ahead);
        using var query = await client.GetAsync($"/api/events?lastEventId={Uri.EscapeDataString(ahead)}", HttpCompletionOption.ResponseHeadersRead, Ct);

        foreach (var response in new[] { header, query })
        {
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Contains("is past the event log's position", await response.Content.ReadAsStringAsync(Ct));
        }
    }

    [Fact]
    public async Task OwnerStream_ThatCannotReadTheLog_Ends_AndTheClientResumesFromItsLastId()
    {
        var (client, task) = await NewUserWithAWaitingTaskAsync();
        using var response = await OpenAsync(client, lastEventId: null);
        using var sse = new SseReader(await response.Content.ReadAsStreamAsync(Ct));
        var (_, snapshot) = await ReadUntilEventAsync(sse);

        // An event the node cannot read (a state no task has), logged without NOTIFY: the stream's
        // read of the log at its next keep-alive fails on it, as it would with the database gone.
        await OwnerEventLog.LogUnannouncedAsync(app, task, seq: 2, state: "Unreadable");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(15));
        var events = new List<SseMessage>();
        try
        {
            while (await sse.ReadAsync(timeout.Token) is { } message)
            {
                if (message.Event is not null)
                {
                    events.Add(message);
                }
            }
        }
        catch (Exception exception) when (exception is IOException or HttpRequestException)
        {
            // The node aborted the response.
        }

        Assert.False(timeout.IsCancellationRequested, "the stream did not end");
        Assert.Empty(events);

        // Mended, the client resumes from its last id and gets the event.
        await OwnerEventLog.MakeReadableAsync(app, task, seq: 2);
        var resumed = Assert.Single(await ReadEventsAsync(client, snapshot.Id, 1));
        Assert.Equal((task, 2L), Key(resumed));
    }

    [Fact]
    public async Task OwnerStream_SendsTheNextEventOfATaskInItsSnapshot_AsAnnounced()
    {
        var client = await NewUserClientAsync();
        var (lease, logged) = await RunningTaskWithLiveEventsAsync(app, client);
        using var response = await OpenAsync(client, lastEventId: null);
        using var sse = new SseReader(await response.Content.ReadAsStreamAsync(Ct));
        var (_, snapshot) = await ReadUntilEventAsync(sse);
        // The log's last event, not the row's (which live progress events do not touch).
        Assert.Equal(logged, Assert.Single(snapshot.Json.EnumerateArray()).GetProperty("seq").GetInt64());

        await WaitBetweenKeepAlivesAsync(sse);
        var next = await LogLiveEventAsync(app, lease);
        var (_, sent) = await ReadUntilEventAsync(sse);

        Assert.Equal((lease.TaskId, next), Key(sent));
        // Placed without a read of the log: named in the id on top of the position.
        Assert.Contains($"_{lease.TaskId:N}.{next}", sent.Id, StringComparison.Ordinal);
    }

    /// <summary>A task of the client's user, claimed by the test, with two live progress events logged; and its last event's number.</summary>
    internal static async Task<(TaskLease Lease, long LastSeq)> RunningTaskWithLiveEventsAsync(TaskDashboardApp app, HttpClient client)
    {
        // Delayed an hour, so that no worker takes it, then due with a job id no Hangfire job has, so
        // that the dispatcher leaves it alone: the test claims it instead.
        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{},"delay":3600}""", Ct);
        await using (var command = app.Database.CreateCommand("UPDATE dashboard.tasks SET hangfire_job_id = '0', scheduled_at = NULL WHERE id = @id"))
        {
            command.Parameters.AddWithValue("id", task.Id);
            await command.ExecuteNonQueryAsync(Ct);
        }

        var claimed = await app.Services.GetRequiredService<TaskStore>().TryClaimAsync(task.Id, "owner-test", TimeSpan.FromMinutes(5), Ct);
        var lease = new TaskLease(task.Id, "owner-test", claimed!.Attempt);
        await LogLiveEventAsync(app, lease);
        return (lease, await LogLiveEventAsync(app, lease));
    }

    /// <summary>Logs (and announces) a live progress event of a running task, as its job would; returns its number.</summary>
    internal static async Task<long> LogLiveEventAsync(TaskDashboardApp app, TaskLease lease)
    {
        var store = app.Services.GetRequiredService<TaskStore>();
        await Task.Run(() => store.AppendProgressEvents([new ProgressEventWrite(lease, 50, "Working", "logged by the test", DateTimeOffset.UtcNow)]), Ct);
        return await store.GetLastEventSeqAsync(lease.TaskId, Ct);
    }

    // A user of this test alone, with a task that waits an hour to start: its log is the test's.
    private async Task<(HttpClient Client, Guid Task)> NewUserWithAWaitingTaskAsync()
    {
        var client = await NewUserClientAsync();
        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{},"delay":3600}""", Ct);
        return (client, task.Id);
    }

    private async Task<TaskEvent> LogProgressEventAsync(Guid task, long seq)
    {
        await OwnerEventLog.LogUnannouncedAsync(app, task, seq);
        return (await app.Services.GetRequiredService<TaskStore>().GetEventsAsync(task, seq - 1, Ct)).Single();
    }

    private async Task<string> OwnerOfAsync(Guid task)
    {
        await using var command = app.Database.CreateCommand("SELECT owner_id FROM dashboard.tasks WHERE id = @id");
        command.Parameters.AddWithValue("id", task);
        return (string)(await command.ExecuteScalarAsync(Ct))!;
    }

    // Half-way between two keep-alives (the app sends one a second), when the stream has long
    // finished the read of the log that follows each: it waits for announcements.
    private static async Task WaitBetweenKeepAlivesAsync(SseReader sse)
    {
        var (comments, _) = await ReadUntilAsync(sse, m => m.Comment == "keep-alive");
        Assert.Empty(comments);
        await Task.Delay(500, Ct);
    }

    // The comments before the stream's next event, and that event; fails after 10 s.
    private static Task<(List<string> Comments, SseMessage Event)> ReadUntilEventAsync(SseReader sse) =>
        ReadUntilAsync(sse, m => m.Event is not null);

    // The comments before the first message that `found` accepts, and that message; fails after 10 s.
    private static async Task<(List<string> Comments, SseMessage Found)> ReadUntilAsync(SseReader sse, Func<SseMessage, bool> found)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        var comments = new List<string>();
        while (await sse.ReadAsync(timeout.Token) is { } message)
        {
            if (found(message))
            {
                return (comments, message);
            }

            if (message.Comment is not null)
            {
                comments.Add(message.Comment);
            }
        }

        throw new InvalidOperationException("The stream ended.");
    }

    // A user of this test alone, so that no other test's tasks show in the stream.
    private async Task<HttpClient> NewUserClientAsync()
    {
        var (_, key) = await app.CreateUserAsync("owner", ops: false, Ct);
        return app.CreateClientWithKey(key);
    }

    private static (Guid TaskId, long Seq) Key(SseMessage e) => (e.Json.GetProperty("taskId").GetGuid(), e.Json.GetProperty("seq").GetInt64());

    private static void AssertSameEvents(IEnumerable<SseMessage> expected, IReadOnlyList<SseMessage> actual) =>
        OwnerEventLog.AssertSameEvents(expected.Select(Key), [.. actual.Select(Key)]);

    // Every event once and in order, each with an id of its own.
    private async Task AssertEveryEventOnceAsync(IReadOnlyList<SseMessage> events, IEnumerable<Guid> tasks)
    {
        await OwnerEventLog.AssertEveryEventOnceAsync(app, [.. events.Select(Key)], tasks);
        Assert.Equal(events.Count, events.Select(e => e.Id).Distinct().Count());
    }

    private static async Task<HttpResponseMessage> OpenAsync(HttpClient client, string? lastEventId)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, "/api/events");
        if (lastEventId is not null)
        {
            request.Headers.TryAddWithoutValidation("Last-Event-ID", lastEventId);
        }

        return await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct);
    }

    // The first `count` events of a stream (from `lastEventId`), then it is closed.
    private static async Task<List<SseMessage>> ReadEventsAsync(HttpClient client, string? lastEventId, int count)
    {
        using var response = await OpenAsync(client, lastEventId);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var sse = new SseReader(await response.Content.ReadAsStreamAsync(Ct));
        return await ReadEventsAsync(sse, count);
    }

    private static async Task<List<SseMessage>> ReadEventsAsync(SseReader sse, int count)
    {
        var events = new List<SseMessage>();
        while (events.Count < count && await sse.ReadAsync(Ct) is { } message)
        {
            if (message.Event is not null)
            {
                events.Add(message);
            }
        }

        Assert.Equal(count, events.Count);
        return events;
    }
}
