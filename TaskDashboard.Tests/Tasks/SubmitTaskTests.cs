using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Hangfire.States;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;
using TaskDashboard.Web.Tasks;

namespace TaskDashboard.Tests.Tasks;

[Collection(AppCollection.Name)]
public sealed class SubmitTaskTests(TaskDashboardApp app) : IClassFixture<TaskDashboardApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task PostTask_Returns202WithLocationRetryAfterAndLinks_WhenValid()
    {
        var client = app.CreateClient();

        var response = await client.PostAsync("/api/tasks", Body("""{"kind":"report","parameters":{"from":"2026-01-01","to":"2026-01-31","groupBy":"product"},"priority":"high"}"""), Ct);

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var task = (await response.Content.ReadFromJsonAsync<TaskResponse>(TaskDashboardApp.Json, Ct))!;
        Assert.Equal($"/api/tasks/{task.Id}", response.Headers.Location?.OriginalString);
        Assert.Equal(TimeSpan.FromSeconds(2), response.Headers.RetryAfter?.Delta);
        Assert.Equal(TaskState.Pending, task.Status);
        Assert.Equal("report", task.Kind);
        Assert.Equal("high", task.Priority);
        Assert.Equal("product", task.Parameters.GetProperty("groupBy").GetString());
        Assert.Equal("html", task.Parameters.GetProperty("format").GetString());
        Assert.Equal(new TaskLinks($"/api/tasks/{task.Id}", $"/api/tasks/{task.Id}/events", $"/api/tasks/{task.Id}/cancel", $"/api/tasks/{task.Id}/result", $"/api/tasks/{task.Id}/webhooks"), task.Links);
        var stored = await app.GetTaskAsync(client, task.Id, Ct);
        Assert.Equal(task.CreatedAt, stored.CreatedAt);
    }

    [Theory]
    [InlineData("/api/reports", """{"parameters":{"from":"2026-01-01","to":"2026-01-02"}}""", "report")]
    [InlineData("/api/exports", """{"parameters":{"format":"ndjson","gzip":true}}""", "export")]
    [InlineData("/api/exports", """{}""", "export")]
    public async Task PostKindShortcut_CreatesTaskOfThatKind(string path, string body, string kind)
    {
        var client = app.CreateClient();

        var response = await client.PostAsync(path, Body(body), Ct);

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var task = (await response.Content.ReadFromJsonAsync<TaskResponse>(TaskDashboardApp.Json, Ct))!;
        Assert.Equal(kind, task.Kind);
        Assert.Equal("default", task.Priority);
    }

    [Theory]
    [InlineData("""{"kind":"report","parameters":{"from":"2026-01-01"}""", "$")]
    [InlineData("""not json""", "$")]
    [InlineData("""{"kind":"nope"}""", "kind")]
    [InlineData("""{"parameters":{}}""", "kind")]
    [InlineData("""{"kind":"report","parameters":{"to":"2026-01-01"}}""", "parameters.from")]
    [InlineData("""{"kind":"report","parameters":{"from":"2026-13-01","to":"2026-01-01"}}""", "parameters.from")]
    [InlineData("""{"kind":"report","parameters":{"from":"2026-02-01","to":"2026-01-01"}}""", "parameters.from")]
    [InlineData("""{"kind":"report","parameters":{"from":"2026-01-01","to":"2026-01-02","groupBy":"color"}}""", "parameters.groupBy")]
    [InlineData("""{"kind":"export","parameters":{"format":"xml"}}""", "parameters.format")]
    [InlineData("""{"kind":"export","parameters":{"throttleMs":-1}}""", "parameters.throttleMs")]
    [InlineData("""{"kind":"export","parameters":{"gzip":"yes"}}""", "parameters.gzip")]
    [InlineData("""{"kind":"export","parameters":{"colour":"red"}}""", "parameters.colour")]
    [InlineData("""{"kind":"export","parameters":[1,2]}""", "parameters")]
    [InlineData("""{"kind":"export","priority":"urgent"}""", "priority")]
    [InlineData("""{"kind":"export","unexpected":true}""", "unexpected")]
    [InlineData("""[]""", "$")]
    [InlineData("""null""", "$")]
    [InlineData("", "$")]
    public async Task PostTask_ReturnsValidationProblemNamingTheField_AndWritesNothing_WhenInputIsBad(string body, string field)
    {
        var client = app.CreateClient();
        var before = await app.CountTasksAsync(Ct);

        var response = await client.PostAsync("/api/tasks", Body(body), Ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>(Ct);
        Assert.True(problem.GetProperty("errors").TryGetProperty(field, out var messages), $"no error for '{field}' in {problem}");
        Assert.False(string.IsNullOrWhiteSpace(messages[0].GetString()));
        Assert.Equal(before, await app.CountTasksAsync(Ct));
    }

    [Fact]
    public async Task PostTask_Returns413_AndWritesNothing_WhenBodyTooLarge()
    {
        var client = app.CreateClient();
        var before = await app.CountTasksAsync(Ct);
        var huge = "{\"kind\":\"export\",\"parameters\":{\"region\":\"" + new string('x', 70_000) + "\"}}";

        var response = await client.PostAsync("/api/tasks", Body(huge), Ct);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(before, await app.CountTasksAsync(Ct));
    }

    [Fact]
    public async Task PostTask_Returns415_WhenBodyIsNotJson()
    {
        var client = app.CreateClient();
        var before = await app.CountTasksAsync(Ct);

        var response = await client.PostAsync("/api/tasks", new StringContent("kind=export", Encoding.UTF8, "application/x-www-form-urlencoded"), Ct);

        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        Assert.Equal(before, await app.CountTasksAsync(Ct));
    }

    [Fact]
    public async Task PostTask_ReturnsOriginalTaskWith200_WhenIdempotencyKeyRepeatsSameRequest()
    {
        var client = app.CreateClient();
        var key = Guid.NewGuid().ToString();
        const string body = """{"kind":"export","parameters":{"format":"csv"}}""";

        var first = await client.SendAsync(WithKey(body, key), Ct);
        var before = await app.CountTasksAsync(Ct);
        // The same request with defaults spelled out is the same request.
        var second = await client.SendAsync(WithKey("""{"kind":"export","parameters":{"gzip":false},"priority":"default"}""", key), Ct);

        Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        var a = (await first.Content.ReadFromJsonAsync<TaskResponse>(TaskDashboardApp.Json, Ct))!;
        var b = (await second.Content.ReadFromJsonAsync<TaskResponse>(TaskDashboardApp.Json, Ct))!;
        Assert.Equal(a.Id, b.Id);
        Assert.Equal(before, await app.CountTasksAsync(Ct));
    }

    [Fact]
    public async Task PostTask_Returns422_AndWritesNothing_WhenIdempotencyKeyIsReusedWithDifferentBody()
    {
        var client = app.CreateClient();
        var key = Guid.NewGuid().ToString();
        await client.SendAsync(WithKey("""{"kind":"export","parameters":{"format":"csv"}}""", key), Ct);
        var before = await app.CountTasksAsync(Ct);

        var response = await client.SendAsync(WithKey("""{"kind":"export","parameters":{"format":"ndjson"}}""", key), Ct);

        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(before, await app.CountTasksAsync(Ct));
    }

    [Fact]
    public async Task PostTask_CreatesOneTask_WhenTheSameIdempotencyKeyArrivesConcurrently()
    {
        var client = app.CreateClient();
        var key = Guid.NewGuid().ToString();
        var before = await app.CountTasksAsync(Ct);

        var responses = await Task.WhenAll(Enumerable.Range(0, 16).Select(_ =>
            client.SendAsync(WithKey("""{"kind":"export"}""", key), Ct)));

        var tasks = await Task.WhenAll(responses.Select(r => r.Content.ReadFromJsonAsync<TaskResponse>(TaskDashboardApp.Json, Ct)));
        Assert.Single(responses, r => r.StatusCode == HttpStatusCode.Accepted);
        Assert.All(responses, r => Assert.True(r.StatusCode is HttpStatusCode.Accepted or HttpStatusCode.OK));
        Assert.Single(tasks.Select(t => t!.Id).Distinct());
        Assert.Equal(before + 1, await app.CountTasksAsync(Ct));
    }

    [Theory]
    [InlineData("has space")]
    [InlineData("kéy")]
    [InlineData("0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901")]
    public async Task PostTask_ReturnsValidationProblem_WhenIdempotencyKeyIsMalformed(string key)
    {
        var client = app.CreateClient();
        var before = await app.CountTasksAsync(Ct);

        var response = await client.SendAsync(WithKey("""{"kind":"export"}""", key), Ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>(Ct);
        Assert.True(problem.GetProperty("errors").TryGetProperty("Idempotency-Key", out _));
        Assert.Equal(before, await app.CountTasksAsync(Ct));
    }

    [Fact]
    public async Task PostTask_EnqueuesOneHangfireJobOnThePriorityQueue()
    {
        var client = app.CreateClient();
        var task = await client.SubmitAsync("/api/tasks", """{"kind":"export","priority":"critical"}""", Ct);

        var jobId = await app.WaitForJobIdAsync(task.Id, Ct);

        using var connection = app.JobStorage.GetConnection();
        var job = connection.GetJobData(jobId);
        Assert.Equal(EnqueuedState.StateName, job.State);
        Assert.Equal("p0_critical", job.Job.Queue);
        Assert.Equal(task.Id, (Guid)job.Job.Args[0]);
    }

    private static StringContent Body(string json) => ApiClientExtensions.Json(json);

    private static HttpRequestMessage WithKey(string json, string key)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/api/tasks") { Content = Body(json) };
        request.Headers.TryAddWithoutValidation("Idempotency-Key", key);
        return request;
    }
}
