using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;
using TaskDashboard.Tests.Progress;
using TaskDashboard.Web.Progress;
using TaskDashboard.Web.Security;
using TaskDashboard.Web.Tasks;

namespace TaskDashboard.Tests.Security;

/// <summary>
/// User A (the fixture's user), user B and an ops user on a real Kestrel port: whatever B or an
/// anonymous caller tries on A's tasks is refused, and nothing changes.
/// </summary>
[Collection(AppCollection.Name)]
public sealed class SecurityTests(SseApp app) : IClassFixture<SseApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task AnotherUser_GetsNotFound_FromEveryTaskEndpointStreamAndDownload_AndNothingChanges()
    {
        var (a, b) = (app.CreateClient(), await ClientForNewUserAsync(ops: false));
        var running = await a.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":4000}}""", Ct);
        var done = await a.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":10}}""", Ct);
        await app.WaitForStateAsync(a, done.Id, TaskState.Succeeded, Ct);

        foreach (var id in new[] { running.Id, done.Id })
        {
            Assert.Equal(HttpStatusCode.NotFound, (await b.GetAsync($"/api/tasks/{id}", Ct)).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await b.PostAsync($"/api/tasks/{id}/cancel", null, Ct)).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await b.GetAsync($"/api/tasks/{id}/result", Ct)).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await b.GetAsync($"/api/tasks/{id}/events", Ct)).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await b.GetAsync($"/api/tasks/{id}/events?lastEventId=0", Ct)).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await b.GetAsync($"/api/tasks/{id}/webhooks", Ct)).StatusCode);
        }

        var listed = await b.GetFromJsonAsync<TaskListResponse>("/api/tasks", TaskDashboardApp.Json, Ct);
        Assert.Equal(0, listed!.TotalCount);
        var afterwards = await app.Services.GetRequiredService<TaskStore>().GetAsync(app.UserScope, running.Id, Ct);
        Assert.Null(afterwards!.CancelRequestedAt);
        Assert.NotEqual(TaskState.Cancelled, afterwards.State);
    }

    [Fact]
    public async Task AnotherUser_CannotSubscribeToATaskOnTheHub_NorHearItThroughTheirOwnGroup()
    {
        var task = await app.CreateClient().SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":1000}}""", Ct);
        var (_, keyB) = await app.CreateUserAsync("b", ops: false, Ct);
        await using var hubB = await TaskHubClient.ConnectAsync(app.CreateClient().BaseAddress!, keyB, Ct);

        var refused = await Assert.ThrowsAsync<HubException>(() => hubB.Connection.InvokeAsync<TaskEventData>("SubscribeToTask", task.Id, null, Ct));
        await hubB.Connection.InvokeAsync("SubscribeToMyTasks", Ct);
        await app.WaitForStateAsync(app.CreateClient(), task.Id, TaskState.Succeeded, Ct);
        await Task.Delay(300, Ct);

        Assert.Contains("no task", refused.Message);
        Assert.False(hubB.Events.TryRead(out _), "B heard an event of A's task.");
    }

    [Fact]
    public async Task Anonymous_GetsUnauthorized_FromEveryApiEndpointStreamAndTheHub_AndNothingIsWritten()
    {
        var task = await app.CreateClient().SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":10}}""", Ct);
        await app.WaitForStateAsync(app.CreateClient(), task.Id, TaskState.Succeeded, Ct);
        var anonymous = app.CreateClientWithKey(null);
        var before = await app.CountTasksAsync(Ct);

        (HttpMethod Method, string Path)[] endpoints =
        [
            (HttpMethod.Get, "/api/tasks"),
            (HttpMethod.Get, $"/api/tasks/{task.Id}"),
            (HttpMethod.Post, $"/api/tasks/{task.Id}/cancel"),
            (HttpMethod.Get, $"/api/tasks/{task.Id}/result"),
            (HttpMethod.Get, $"/api/tasks/{task.Id}/events"),
            (HttpMethod.Get, "/api/events"),
            (HttpMethod.Get, $"/api/tasks/{task.Id}/webhooks"),
            (HttpMethod.Post, $"/api/tasks/{task.Id}/webhooks/{Guid.NewGuid()}/redeliver"),
            (HttpMethod.Get, "/api/webhooks/secret"),
            (HttpMethod.Post, "/api/tasks"),
            (HttpMethod.Post, "/api/exports"),
            (HttpMethod.Post, "/api/reports"),
            (HttpMethod.Get, "/api/keys"),
            (HttpMethod.Post, "/api/keys"),
            (HttpMethod.Delete, $"/api/keys/{Guid.NewGuid()}"),
            (HttpMethod.Get, "/api/users"),
            (HttpMethod.Post, "/api/users"),
            (HttpMethod.Post, "/hubs/tasks/negotiate?negotiateVersion=1"),
        ];
        foreach (var (method, path) in endpoints)
        {
            using var request = new HttpRequestMessage(method, path);
            if (method != HttpMethod.Get)
            {
                request.Content = ApiClientExtensions.Json("""{"kind":"export","parameters":{},"name":"x","userName":"mallory","password":"0123456789abcdef"}""");
            }

            var response = await anonymous.SendAsync(request, Ct);
            Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"{method} {path} answered {(int)response.StatusCode}");
        }

        var hubError = await Assert.ThrowsAsync<HttpRequestException>(() => TaskHubClient.ConnectAsync(anonymous.BaseAddress!, null, Ct));
        Assert.Equal(HttpStatusCode.Unauthorized, hubError.StatusCode);
        Assert.Equal(before, await app.CountTasksAsync(Ct));
        Assert.Null(await app.Services.GetRequiredService<AccountStore>().FindUserByNameAsync("mallory", Ct));
    }

    [Fact]
    public async Task UnknownOrRevokedApiKey_IsUnauthorized()
    {
        var (_, key) = await app.CreateUserAsync("revoker", ops: false, Ct);
        var client = app.CreateClientWithKey(key);
        var keys = await client.GetFromJsonAsync<List<ApiKeyInfo>>("/api/keys", TaskDashboardApp.Json, Ct);

        var before = await client.GetAsync("/api/tasks", Ct);
        var revoke = await client.DeleteAsync($"/api/keys/{Assert.Single(keys!).Id}", Ct);
        var after = await client.GetAsync("/api/tasks", Ct);
        var made = await app.CreateClientWithKey(key[..^2] + "xx").GetAsync("/api/tasks", Ct);
        var notAKey = await app.CreateClientWithKey("let-me-in").GetAsync("/api/tasks", Ct);

        Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, revoke.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, after.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, made.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, notAKey.StatusCode);
    }

    [Fact]
    public async Task ApiKeys_AreShownOnce_ListedWithoutTheSecret_AndOnlyTheirOwnerCanRevokeThem()
    {
        var owner = await ClientForNewUserAsync(ops: false);
        var other = await ClientForNewUserAsync(ops: false);

        var created = await owner.PostAsync("/api/keys", ApiClientExtensions.Json("""{"name":"nightly"}"""), Ct);
        var body = await created.Content.ReadFromJsonAsync<CreatedApiKey>(TaskDashboardApp.Json, Ct);
        var listJson = await owner.GetStringAsync("/api/keys", Ct);
        var stolen = await other.DeleteAsync($"/api/keys/{body!.Info.Id}", Ct);
        var unnamed = await owner.PostAsync("/api/keys", ApiClientExtensions.Json("""{"name":"  "}"""), Ct);

        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.StartsWith(body.Info.Prefix, body.Key);
        Assert.DoesNotContain(body.Key, listJson);
        Assert.Contains("nightly", listJson);
        Assert.Equal(HttpStatusCode.NotFound, stolen.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await app.CreateClientWithKey(body.Key).GetAsync("/api/tasks", Ct)).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, unnamed.StatusCode);
    }

    [Fact]
    public async Task Ops_SeesAndCancelsAnyonesTask_AndOpensHangfire_WhichOthersCannot()
    {
        var task = await app.CreateClient().SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":20000}}""", Ct);
        var ops = await ClientForNewUserAsync(ops: true);
        var user = app.CreateClient();

        var seen = await ops.GetAsync($"/api/tasks/{task.Id}", Ct);
        var listed = await ops.GetFromJsonAsync<TaskListResponse>("/api/tasks?pageSize=100", TaskDashboardApp.Json, Ct);
        var cancelled = await ops.PostAsync($"/api/tasks/{task.Id}/cancel", null, Ct);
        var hangfireForOps = await ops.GetAsync("/hangfire", Ct);
        var hangfireForUser = await user.GetAsync("/hangfire", Ct);
        var hangfireAnonymous = await NoRedirectClient().GetAsync("/hangfire", Ct);
        var secretForOps = await ops.GetAsync("/api/webhooks/secret", Ct);
        var secretForUser = await user.GetAsync("/api/webhooks/secret", Ct);
        var redeliverByUser = await user.PostAsync($"/api/tasks/{task.Id}/webhooks/{Guid.NewGuid()}/redeliver", null, Ct);

        Assert.Equal(HttpStatusCode.OK, seen.StatusCode);
        Assert.Contains(listed!.Items, t => t.Id == task.Id);
        Assert.True(cancelled.StatusCode is HttpStatusCode.Accepted or HttpStatusCode.OK, $"cancel answered {cancelled.StatusCode}");
        await app.WaitForStateAsync(user, task.Id, TaskState.Cancelled, Ct);
        Assert.Equal(HttpStatusCode.OK, hangfireForOps.StatusCode);
        Assert.Contains("Hangfire", await hangfireForOps.Content.ReadAsStringAsync(Ct));
        Assert.Equal(HttpStatusCode.Forbidden, hangfireForUser.StatusCode);
        Assert.Equal(HttpStatusCode.Redirect, hangfireAnonymous.StatusCode);
        Assert.StartsWith("/account/login", hangfireAnonymous.Headers.Location!.PathAndQuery);
        Assert.Equal(TaskDashboardApp.WebhookSecret, (await secretForOps.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("secret").GetString());
        Assert.Equal(HttpStatusCode.Forbidden, secretForUser.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, redeliverByUser.StatusCode);
    }

    [Fact]
    public async Task SignedDownloadLink_WorksWithoutAKey_AndIsRefusedWhenTamperedWithOrExpired()
    {
        var client = app.CreateClient();
        var task = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":10}}""", Ct);
        var done = await app.WaitForStateAsync(client, task.Id, TaskState.Succeeded, Ct);
        var other = await client.SubmitAsync("/api/tasks", """{"kind":"scripted","parameters":{"runMs":10}}""", Ct);
        var anonymous = app.CreateClientWithKey(null);
        var link = done.DownloadUrl!;
        var signature = Regex.Match(link, "signature=([^&]+)").Groups[1].Value;
        var expires = Regex.Match(link, "expires=([0-9]+)").Groups[1].Value;

        var ok = await anonymous.GetAsync(link, Ct);
        var tampered = await anonymous.GetAsync(link.Replace(signature, (signature[0] == 'A' ? "B" : "A") + signature[1..]), Ct);
        var longer = await anonymous.GetAsync(link.Replace($"expires={expires}", $"expires={long.Parse(expires) + 3600}"), Ct);
        var otherTask = await anonymous.GetAsync(link.Replace(task.Id.ToString(), other.Id.ToString()), Ct);
        var expiredSeconds = DateTimeOffset.UtcNow.AddMinutes(-1).ToUnixTimeSeconds();
        var expiredLink = await SignForAsync(task.Id, expiredSeconds);
        var expired = await anonymous.GetAsync(expiredLink, Ct);

        Assert.True(done.DownloadUrlExpiresAt > DateTimeOffset.UtcNow.AddMinutes(50));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Equal("done on attempt 1\n", await ok.Content.ReadAsStringAsync(Ct));
        Assert.Equal(HttpStatusCode.Forbidden, tampered.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, longer.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, otherTask.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, expired.StatusCode);
        Assert.Contains("expired", await expired.Content.ReadAsStringAsync(Ct));
    }

    [Fact]
    public async Task SignIn_SetsACookieThatOpensTheDashboardAndTheApi_AndNeedsTheAntiforgeryToken()
    {
        var (user, _) = await app.CreateUserAsync("signer", ops: false, Ct);
        var browser = NoRedirectClient();

        var unsigned = await browser.GetAsync("/account/keys", Ct);
        var token = await browser.FormTokenAsync("/account/login", Ct);
        var withoutToken = await browser.PostAsync("/account/signin", SignInClient.Form(("userName", user.UserName), ("password", TaskDashboardApp.UserPassword)), Ct);
        var wrong = await browser.PostAsync("/account/signin", SignInClient.Form(("userName", user.UserName), ("password", "wrong password"), ("__RequestVerificationToken", token)), Ct);
        var apiBeforeSignIn = await browser.GetAsync("/api/tasks", Ct);
        var signedIn = await browser.PostAsync("/account/signin", SignInClient.Form(("userName", user.UserName), ("password", TaskDashboardApp.UserPassword), ("returnUrl", "/account/keys"), ("__RequestVerificationToken", token)), Ct);
        var keysPage = await browser.GetAsync("/account/keys", Ct);
        var api = await browser.GetAsync("/api/tasks", Ct);

        Assert.Equal(HttpStatusCode.Redirect, unsigned.StatusCode);
        Assert.StartsWith("/account/login", unsigned.Headers.Location!.PathAndQuery);
        Assert.Equal(HttpStatusCode.BadRequest, withoutToken.StatusCode);
        Assert.Contains("failed=1", wrong.Headers.Location!.ToString());
        Assert.Equal(HttpStatusCode.Unauthorized, apiBeforeSignIn.StatusCode);
        Assert.Equal(HttpStatusCode.Redirect, signedIn.StatusCode);
        Assert.Equal("/account/keys", signedIn.Headers.Location!.ToString());
        var cookie = string.Join("; ", signedIn.Headers.GetValues("Set-Cookie"));
        Assert.Contains("httponly", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=lax", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(HttpStatusCode.OK, keysPage.StatusCode);
        Assert.Contains(user.UserName, await keysPage.Content.ReadAsStringAsync(Ct));
        Assert.Equal(HttpStatusCode.OK, api.StatusCode);
    }

    [Fact]
    public async Task KeysPage_ShowsANewKeyOnce_AndRevokesIt()
    {
        var (user, _) = await app.CreateUserAsync("pager", ops: false, Ct);
        var browser = NoRedirectClient();
        await browser.SignInAsync(user.UserName, TaskDashboardApp.UserPassword, Ct);

        var token = await browser.FormTokenAsync("/account/keys", Ct);
        var created = await browser.PostAsync("/account/keys", SignInClient.Form(("_handler", "create-key"), ("Create.Name", "from the page"), ("__RequestVerificationToken", token)), Ct);
        var key = Regex.Match(await created.Content.ReadAsStringAsync(Ct), "data-testid=\"new-key\">([^<]+)<").Groups[1].Value;
        var usable = await app.CreateClientWithKey(key).GetAsync("/api/tasks", Ct);
        var listed = await browser.GetStringAsync("/account/keys", Ct);
        var revokeForm = Regex.Match(listed, "name=\"_handler\" value=\"(revoke-[0-9a-f]{32})\"").Groups[1].Value;
        var revoked = await browser.PostAsync("/account/keys", SignInClient.Form(("_handler", revokeForm), ("__RequestVerificationToken", await browser.FormTokenAsync("/account/keys", Ct))), Ct);
        var afterRevoke = await app.CreateClientWithKey(key).GetAsync("/api/tasks", Ct);

        Assert.StartsWith("tdk_", key);
        Assert.Equal(HttpStatusCode.OK, usable.StatusCode);
        Assert.Contains("from the page", listed);
        Assert.DoesNotContain(key, listed);
        Assert.Equal(HttpStatusCode.OK, revoked.StatusCode);
        Assert.Contains("revoked", await revoked.Content.ReadAsStringAsync(Ct));
        Assert.Equal(HttpStatusCode.Unauthorized, afterRevoke.StatusCode);
    }

    [Fact]
    public async Task SignIn_DoesNotRedirectOffSite()
    {
        var browser = NoRedirectClient();
        var token = await browser.FormTokenAsync("/account/login", Ct);

        var response = await browser.PostAsync("/account/signin", SignInClient.Form(("userName", "admin"), ("password", TaskDashboardApp.AdminPassword), ("returnUrl", "//evil.example/steal"), ("__RequestVerificationToken", token)), Ct);

        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.Equal("/", response.Headers.Location!.ToString());
    }

    [Fact]
    public async Task CreateApiKeyCommand_PrintsAWorkingKey_AndRefusesAnUnknownUser()
    {
        var (user, _) = await app.CreateUserAsync("scripted", ops: false, Ct);

        var (code, output) = await RunCommandAsync("create-api-key", "--user", user.UserName, "--name", "from the shell");
        var (unknownCode, _) = await RunCommandAsync("create-api-key", "--user", "nobody-at-all");

        Assert.Equal(0, code);
        var key = output.Trim();
        Assert.StartsWith("tdk_", key);
        Assert.Equal(HttpStatusCode.OK, (await app.CreateClientWithKey(key).GetAsync("/api/tasks", Ct)).StatusCode);
        Assert.Equal(1, unknownCode);
    }

    private async Task<(int ExitCode, string Output)> RunCommandAsync(params string[] arguments)
    {
        var start = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "TaskDashboard.Web.dll"));
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["ConnectionStrings__Postgres"] = app.ConnectionString;
        using var process = System.Diagnostics.Process.Start(start)!;
        var output = await process.StandardOutput.ReadToEndAsync(Ct);
        await process.WaitForExitAsync(Ct);
        return (process.ExitCode, output);
    }

    [Fact]
    public async Task FirstStart_CreatesTheAdmin_WithTheConfiguredPasswordAndTheOpsRole()
    {
        var admin = await app.Services.GetRequiredService<AccountStore>().CheckPasswordAsync("admin", TaskDashboardApp.AdminPassword, Ct);

        Assert.NotNull(admin);
        Assert.True(admin.IsOps);
    }

    [Fact]
    public async Task Users_AreCreatedByOpsOnly_WithValidatedInput()
    {
        var ops = await ClientForNewUserAsync(ops: true);
        var user = app.CreateClient();
        var name = $"dana{Guid.NewGuid():N}"[..12];

        var byUser = await user.PostAsync("/api/users", ApiClientExtensions.Json($$"""{"userName":"{{name}}","password":"long enough password"}"""), Ct);
        var bad = await ops.PostAsync("/api/users", ApiClientExtensions.Json("""{"userName":"../x","password":"short","roles":["root"]}"""), Ct);
        var created = await ops.PostAsync("/api/users", ApiClientExtensions.Json($$"""{"userName":"{{name}}","password":"long enough password"}"""), Ct);
        var again = await ops.PostAsync("/api/users", ApiClientExtensions.Json($$"""{"userName":"{{name.ToUpperInvariant()}}","password":"long enough password"}"""), Ct);

        Assert.Equal(HttpStatusCode.Forbidden, byUser.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        var errors = (await bad.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("errors");
        Assert.True(errors.TryGetProperty("userName", out _) && errors.TryGetProperty("password", out _) && errors.TryGetProperty("roles", out _));
        Assert.Null(await app.Services.GetRequiredService<AccountStore>().FindUserByNameAsync("../x", Ct));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
        Assert.NotNull(await app.Services.GetRequiredService<AccountStore>().CheckPasswordAsync(name, "long enough password", Ct));
    }

    [Fact]
    public async Task Responses_CarrySecurityHeaders()
    {
        var api = await app.CreateClient().GetAsync("/api/tasks", Ct);
        var page = await NoRedirectClient().GetAsync("/account/login", Ct);

        foreach (var response in new[] { api, page })
        {
            Assert.Equal("nosniff", response.Headers.GetValues("X-Content-Type-Options").Single());
            Assert.Equal("DENY", response.Headers.GetValues("X-Frame-Options").Single());
            Assert.Equal("no-referrer", response.Headers.GetValues("Referrer-Policy").Single());
        }

        Assert.Contains("frame-ancestors 'none'", page.Headers.GetValues("Content-Security-Policy").Single());
    }

    [Fact]
    public async Task OversizedBody_IsRefused_AndNothingIsWritten()
    {
        var before = await app.CountTasksAsync(Ct);
        var huge = new string('x', 2 * 1024 * 1024);

        // Expect: 100-continue lets the server refuse before the body is sent (else it may close
        // the connection while the client is still writing, and the client sees a broken pipe).
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/exports") { Content = ApiClientExtensions.Json($$$"""{"parameters":{"region":"{{{huge}}}"}}""") };
        request.Headers.ExpectContinue = true;
        var response = await app.CreateClient().SendAsync(request, Ct);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal(before, await app.CountTasksAsync(Ct));
    }

    private async Task<HttpClient> ClientForNewUserAsync(bool ops)
    {
        var (_, key) = await app.CreateUserAsync(ops ? "ops" : "user", ops, Ct);
        return app.CreateClientWithKey(key);
    }

    private HttpClient NoRedirectClient() => SignInClient.Create(app.CreateClient().BaseAddress!);

    private async Task<string> SignForAsync(Guid taskId, long expires)
    {
        // A link signed with the real key but already past its time: shift the link maker's clock back.
        var links = new DownloadLinks(
            app.Services.GetRequiredService<TaskDashboard.Jobs.Database.SharedSecrets>(),
            app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<SecurityOptions>>(),
            new FixedTime(DateTimeOffset.FromUnixTimeSeconds(expires) - app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<SecurityOptions>>().Value.DownloadLinkLifetime));
        await links.InitializeAsync(Ct);
        return links.Create(taskId).Url;
    }

    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
