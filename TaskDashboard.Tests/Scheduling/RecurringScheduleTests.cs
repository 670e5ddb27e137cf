using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Hangfire;
using TaskDashboard.Jobs.Schedules;
using TaskDashboard.Tests.Infrastructure;
using TaskDashboard.Tests.Jobs;
using TaskDashboard.Web.Schedules;

namespace TaskDashboard.Tests.Scheduling;

public sealed class RecurringApp : ScriptedWorkerApp
{
    protected override IReadOnlyDictionary<string, string> Settings { get; } = new Dictionary<string, string>();
}

[Collection(AppCollection.Name)]
public sealed class RecurringScheduleTests(RecurringApp app) : IClassFixture<RecurringApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Schedule_SubmitsNormalTasks_OnItsCron_AndPausesResumesAndDeletes()
    {
        var client = app.CreateClient();

        var created = await client.PostAsync("/api/schedules", ApiClientExtensions.Json(
            """{"name":"every second","kind":"scripted","parameters":{"runMs":10},"cron":"* * * * * *","timeZone":"Europe/Berlin"}"""), Ct);
        var schedule = (await created.Content.ReadFromJsonAsync<ScheduleResponse>(TaskDashboardApp.Json, Ct))!;
        await WaitForRunsAsync(client, schedule.Id, 2);
        var paused = await client.PostAsync($"/api/schedules/{schedule.Id}/pause", null, Ct);
        var afterPause = await GetAsync(client, schedule.Id);
        await Task.Delay(2500, Ct);
        var stillPaused = await GetAsync(client, schedule.Id);
        await client.PostAsync($"/api/schedules/{schedule.Id}/resume", null, Ct);
        await WaitForRunsAsync(client, schedule.Id, stillPaused.RunCount + 1);
        var last = await GetAsync(client, schedule.Id);
        var task = await app.GetTaskAsync(client, last.LastTaskId!.Value, Ct);
        var deleted = await client.DeleteAsync($"/api/schedules/{schedule.Id}", Ct);

        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.NotNull(schedule.NextRunAt);
        Assert.Equal(HttpStatusCode.OK, paused.StatusCode);
        Assert.True(afterPause.Paused);
        Assert.Null(afterPause.NextRunAt);
        Assert.InRange(stillPaused.RunCount - afterPause.RunCount, 0, 1);
        Assert.Equal("scripted", task.Kind);
        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync($"/api/schedules/{schedule.Id}", Ct)).StatusCode);
        using var connection = app.JobStorage.GetConnection();
        Assert.Null(connection.GetAllEntriesFromHash($"recurring-job:{ScheduleService.RecurringJobId(schedule.Id)}"));
    }

    [Fact]
    public async Task AnotherUser_CannotSeePauseOrDeleteASchedule()
    {
        var created = await app.CreateClient().PostAsync("/api/schedules", ApiClientExtensions.Json(
            """{"name":"mine","kind":"scripted","parameters":{},"cron":"0 6 * * *"}"""), Ct);
        var schedule = (await created.Content.ReadFromJsonAsync<ScheduleResponse>(TaskDashboardApp.Json, Ct))!;
        var (_, key) = await app.CreateUserAsync("other", ops: false, Ct);
        var other = app.CreateClientWithKey(key);

        Assert.Equal(HttpStatusCode.NotFound, (await other.GetAsync($"/api/schedules/{schedule.Id}", Ct)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await other.PostAsync($"/api/schedules/{schedule.Id}/pause", null, Ct)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await other.DeleteAsync($"/api/schedules/{schedule.Id}", Ct)).StatusCode);
        Assert.Empty((await other.GetFromJsonAsync<List<ScheduleResponse>>("/api/schedules", TaskDashboardApp.Json, Ct))!);
        Assert.False((await GetAsync(app.CreateClient(), schedule.Id)).Paused);
    }

    [Fact]
    public async Task BadSchedule_Gets400ForEveryField_AndNothingIsCreated()
    {
        var client = app.CreateClient();
        var before = (await client.GetFromJsonAsync<List<ScheduleResponse>>("/api/schedules", TaskDashboardApp.Json, Ct))!.Count;

        var response = await client.PostAsync("/api/schedules", ApiClientExtensions.Json(
            """{"name":"","kind":"export","parameters":{"format":"xml"},"cron":"every day","timeZone":"Mars/Olympus","priority":"urgent"}"""), Ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var errors = (await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("errors");
        foreach (var field in new[] { "name", "parameters.format", "cron", "timeZone", "priority" })
        {
            Assert.True(errors.TryGetProperty(field, out _), $"No error for {field}: {errors}");
        }

        Assert.Equal(before, (await client.GetFromJsonAsync<List<ScheduleResponse>>("/api/schedules", TaskDashboardApp.Json, Ct))!.Count);
    }

    private static async Task<ScheduleResponse> GetAsync(HttpClient client, Guid id) =>
        (await client.GetFromJsonAsync<ScheduleResponse>($"/api/schedules/{id}", TaskDashboardApp.Json, Ct))!;

    private static Task WaitForRunsAsync(HttpClient client, Guid id, int runs) =>
        TaskDashboardApp.WaitUntilAsync(async () => (await GetAsync(client, id)).RunCount >= runs, $"schedule {id} to run {runs} times", Ct);
}
