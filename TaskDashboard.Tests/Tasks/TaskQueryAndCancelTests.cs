using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;
using TaskDashboard.Web.Tasks;

namespace TaskDashboard.Tests.Tasks;

[Collection(AppCollection.Name)]
public sealed class TaskQueryAndCancelTests(TaskDashboardApp app) : IClassFixture<TaskDashboardApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task GetTask_Returns404Problem_WhenTaskDoesNotExist()
    {
        var client = app.CreateClient();

        var response = await client.GetAsync($"/api/tasks/{Guid.NewGuid()}", Ct);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Theory]
    [InlineData("/api/tasks/not-a-guid")]
    [InlineData("/api/tasks/123/cancel")]
    public async Task TaskRoutes_Return404Problem_WhenIdIsMalformed(string path)
    {
        var client = app.CreateClient();

        var response = path.EndsWith("cancel", StringComparison.Ordinal)
            ? await client.PostAsync(path, null, Ct)
            : await client.GetAsync(path, Ct);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task TaskStore_HidesTask_FromAnotherOwner()
    {
        var client = app.CreateClient();
        var created = await client.SubmitAsync("/api/tasks", """{"kind":"export"}""", Ct);
        var store = app.Services.GetRequiredService<TaskStore>();

        var mine = await store.GetAsync(app.UserScope, created.Id, Ct);
        var theirs = await store.GetAsync(new TaskScope("someone-else"), created.Id, Ct);
        var cancelled = await store.RequestCancelAsync(new TaskScope("someone-else"), created.Id, Ct);
        var listed = await store.ListAsync(new TaskScope("someone-else"), null, null, 0, 100, Ct);

        Assert.NotNull(mine);
        Assert.Null(theirs);
        Assert.Null(cancelled);
        Assert.DoesNotContain(listed.Items, t => t.Id == created.Id);
        Assert.Equal(TaskState.Pending, (await store.GetAsync(app.UserScope, created.Id, Ct))!.State);
    }

    [Fact]
    public async Task ListTasks_FiltersByKindAndStatus_AndPagesNewestFirst()
    {
        var client = app.CreateClient();
        var reports = new List<Guid>();
        for (var i = 0; i < 3; i++)
        {
            reports.Add((await client.SubmitAsync("/api/tasks", """{"kind":"report","parameters":{"from":"2026-01-01","to":"2026-01-02"}}""", Ct)).Id);
        }

        await client.PostAsync($"/api/tasks/{reports[0]}/cancel", null, Ct);

        var page1 = (await client.GetFromJsonAsync<TaskListResponse>("/api/tasks?kind=report&status=Pending&pageSize=1", TaskDashboardApp.Json, Ct))!;
        var page2 = (await client.GetFromJsonAsync<TaskListResponse>("/api/tasks?kind=report&status=pending&pageSize=1&page=2", TaskDashboardApp.Json, Ct))!;
        var cancelled = (await client.GetFromJsonAsync<TaskListResponse>("/api/tasks?kind=report&status=Cancelled", TaskDashboardApp.Json, Ct))!;

        Assert.True(page1.TotalCount >= 2);
        Assert.Equal(page1.TotalCount, page2.TotalCount);
        Assert.Equal(reports[2], page1.Items.Single().Id);
        Assert.Equal(reports[1], page2.Items.Single().Id);
        Assert.Contains(cancelled.Items, t => t.Id == reports[0]);
        Assert.All(cancelled.Items, t => Assert.Equal(TaskState.Cancelled, t.Status));
    }

    [Theory]
    [InlineData("status=Sleeping", "status")]
    [InlineData("status=7", "status")]
    [InlineData("kind=pdf", "kind")]
    [InlineData("page=0", "page")]
    [InlineData("page=x", "page")]
    [InlineData("pageSize=1000", "pageSize")]
    public async Task ListTasks_ReturnsValidationProblem_WhenQueryIsBad(string query, string field)
    {
        var client = app.CreateClient();

        var response = await client.GetAsync($"/api/tasks?{query}", Ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>(Ct);
        Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _));
    }

    [Fact]
    public async Task CancelTask_CancelsPendingTaskAtOnce_ThenAnswers409()
    {
        var client = app.CreateClient();
        var created = await client.SubmitAsync("/api/tasks", """{"kind":"export"}""", Ct);

        var first = await client.PostAsync($"/api/tasks/{created.Id}/cancel", null, Ct);
        var second = await client.PostAsync($"/api/tasks/{created.Id}/cancel", null, Ct);

        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        var cancelled = (await first.Content.ReadFromJsonAsync<TaskResponse>(TaskDashboardApp.Json, Ct))!;
        Assert.Equal(TaskState.Cancelled, cancelled.Status);
        Assert.NotNull(cancelled.CompletedAt);
        Assert.Equal(HttpStatusCode.Conflict, second.StatusCode);
        Assert.Equal("application/problem+json", second.Content.Headers.ContentType?.MediaType);
        var events = await app.Services.GetRequiredService<TaskStore>().GetEventsAsync(created.Id, 0, Ct);
        Assert.Equal(["created", "cancelled"], events.Select(e => e.Type));
        Assert.Equal([1L, 2L], events.Select(e => e.Seq));
    }

    [Fact]
    public async Task CancelTask_Returns404_WhenTaskDoesNotExist()
    {
        var client = app.CreateClient();

        var response = await client.PostAsync($"/api/tasks/{Guid.NewGuid()}/cancel", null, Ct);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task GetResult_Returns409_WhenTaskHasNotSucceeded()
    {
        var client = app.CreateClient();
        var created = await client.SubmitAsync("/api/tasks", """{"kind":"export"}""", Ct);

        var response = await client.GetAsync($"/api/tasks/{created.Id}/result", Ct);

        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
    }

    [Fact]
    public async Task List_FindsTasksBySearchText_InTheirParameters()
    {
        var client = app.CreateClient();
        var marker = $"search-{Guid.NewGuid():N}"[..20];
        var wanted = await client.SubmitAsync("/api/tasks", """{"kind":"export","parameters":{"region":"west"}}""", Ct);
        await client.SubmitAsync("/api/tasks", """{"kind":"report","parameters":{"from":"2025-01-01","to":"2025-01-31"}}""", Ct);

        var byId = await client.GetFromJsonAsync<TaskListResponse>($"/api/tasks?search={wanted.Id.ToString()[..13]}", TaskDashboardApp.Json, Ct);
        var none = await client.GetFromJsonAsync<TaskListResponse>($"/api/tasks?search={marker}", TaskDashboardApp.Json, Ct);
        var tooLong = await client.GetAsync($"/api/tasks?search={new string('x', 201)}", Ct);

        Assert.Equal(wanted.Id, Assert.Single(byId!.Items).Id);
        Assert.Empty(none!.Items);
        Assert.Equal(HttpStatusCode.BadRequest, tooLong.StatusCode);
    }
}
