using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using TaskDashboard.Tests.Infrastructure;

namespace TaskDashboard.Tests.Scheduling;

/// <summary>Small limits: three submissions at once per user, one a second after that, two tasks waiting per user.</summary>
public sealed class LimitedApp : TaskDashboardApp
{
    protected override void ConfigureWebHost(Microsoft.AspNetCore.Hosting.IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        builder.UseSetting("Tasks:SubmissionBurst", "3");
        builder.UseSetting("Tasks:SubmissionsPerSecond", "1");
        builder.UseSetting("Jobs:MaxWaitingPerOwner", "2");
    }
}

[Collection(AppCollection.Name)]
public sealed class SubmissionLimitTests(LimitedApp app) : IClassFixture<LimitedApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task SubmissionsOverAUsersRate_Get429WithRetryAfter_AndOtherUsersAreNotHeldBack()
    {
        var (_, key) = await app.CreateUserAsync("hasty", ops: false, Ct);
        var (_, otherKey) = await app.CreateUserAsync("patient", ops: false, Ct);
        var hasty = app.CreateClientWithKey(key);
        var responses = new List<HttpResponseMessage>();

        for (var i = 0; i < 6; i++)
        {
            // Bad bodies: refused after the rate check, so no task waits and only the rate limit bites.
            responses.Add(await hasty.PostAsync("/api/exports", ApiClientExtensions.Json("""{"parameters":{"format":"xml"}}"""), Ct));
        }

        var other = await app.CreateClientWithKey(otherKey).PostAsync("/api/exports", ApiClientExtensions.Json("""{"parameters":{}}"""), Ct);

        // A burst of three, then one a second: of the next three (sent within well under a second) at least one is refused.
        Assert.All(responses.Take(3), r => Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode));
        var limited = responses.Skip(3).First(r => r.StatusCode == HttpStatusCode.TooManyRequests);
        Assert.InRange(limited.Headers.RetryAfter!.Delta!.Value.TotalSeconds, 1, 60);
        Assert.Equal("application/problem+json", limited.Content.Headers.ContentType?.MediaType);
        Assert.Equal(HttpStatusCode.Accepted, other.StatusCode);
    }

    [Fact]
    public async Task TooManyWaitingTasks_Get429WithTheReason_AndNothingIsWritten()
    {
        var (_, key) = await app.CreateUserAsync("busy", ops: false, Ct);
        var client = app.CreateClientWithKey(key);
        Assert.Equal(HttpStatusCode.Accepted, (await client.PostAsync("/api/exports", ApiClientExtensions.Json("""{"parameters":{}}"""), Ct)).StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, (await client.PostAsync("/api/exports", ApiClientExtensions.Json("""{"delay":3600,"parameters":{}}"""), Ct)).StatusCode);
        var before = await app.CountTasksAsync(Ct);

        var refused = await client.PostAsync("/api/exports", ApiClientExtensions.Json("""{"parameters":{}}"""), Ct);

        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Equal(10, refused.Headers.RetryAfter!.Delta!.Value.TotalSeconds);
        var problem = await refused.Content.ReadFromJsonAsync<JsonElement>(Ct);
        Assert.Contains("You have 2 tasks waiting", problem.GetProperty("detail").GetString());
        Assert.Equal(before, await app.CountTasksAsync(Ct));
    }

    [Fact]
    public async Task WaitingCap_LetsSubmissionsInAgain_OnceTheNodeHasRecountedAfterATaskLeft()
    {
        var (_, key) = await app.CreateUserAsync("returning", ops: false, Ct);
        var client = app.CreateClientWithKey(key);
        var first = await client.SubmitAsync("/api/exports", """{"delay":3600,"parameters":{}}""", Ct);
        await client.SubmitAsync("/api/exports", """{"delay":3600,"parameters":{}}""", Ct);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await client.PostAsync("/api/exports", ApiClientExtensions.Json("""{"parameters":{}}"""), Ct)).StatusCode);

        await client.PostAsync($"/api/tasks/{first.Id}/cancel", null, Ct);

        // The node recounts in the background once its count is older than Jobs:WaitingCountRefresh
        // (1 s); a submission a second (the rate limit) gets in once it has.
        var accepted = false;
        for (var i = 0; i < 10 && !accepted; i++)
        {
            await Task.Delay(1100, Ct);
            accepted = (await client.PostAsync("/api/exports", ApiClientExtensions.Json("""{"delay":3600,"parameters":{}}"""), Ct)).StatusCode == HttpStatusCode.Accepted;
        }

        Assert.True(accepted);
    }
}
