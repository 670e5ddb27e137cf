using Microsoft.AspNetCore.Hosting;
using Microsoft.Playwright;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;
using static Microsoft.Playwright.Assertions;

namespace TaskDashboard.Tests.Components;

/// <summary>The browser app reaching its database through an <see cref="OutageProxy"/>.</summary>
public sealed class OutageBrowserApp : BrowserApp
{
    public OutageProxy Proxy { get; private set; } = null!;

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        Proxy = OutageProxy.InFrontOf(ConnectionString, builder);
        builder.UseSetting("Dashboard:DatabaseRetryInterval", "00:00:00.500");
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        await Proxy.DisposeAsync();
    }
}

/// <summary>
/// A person at the dashboard while its database restarts: each live page says so instead of ending
/// its circuit, and shows its data once the database is back, without a reload.
/// </summary>
[Collection(AppCollection.Name)]
public sealed class DatabaseOutageBrowserTests(OutageBrowserApp app) : IClassFixture<OutageBrowserApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task PagesOpenedOrUsedWhileTheDatabaseIsAway_SayItIsAway_AndShowTheirDataOnceItIsBack()
    {
        app.Proxy.Restore();
        var task = await app.CreateClient().SubmitAsync("/api/reports", """{"parameters":{"from":"2025-01-01","to":"2025-03-31","groupBy":"month"}}""", Ct);
        await app.WaitForStateAsync(app.CreateClient(), task.Id, TaskState.Succeeded, Ct);
        var page = await app.NewPageAsync();
        await BrowserApp.SignInAsync(page, app.User.UserName, TaskDashboardApp.UserPassword);
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Your tasks" })).ToBeVisibleAsync();
        await BrowserApp.WaitInteractiveAsync(page);
        var taskLink = page.Locator($"a[href='/tasks/{task.Id}']");
        await Expect(taskLink).ToBeVisibleAsync();
        await page.EvaluateAsync("() => { window.__taskDashboardMarker = 42; }");
        var away = page.GetByTestId("database-away");

        // A task's page opened while the database is away.
        app.Proxy.Cut();
        await taskLink.ClickAsync();
        await Expect(away).ToBeVisibleAsync();
        await Expect(page.GetByText("There is no task")).Not.ToBeVisibleAsync();
        app.Proxy.Restore();
        await Expect(page.GetByTestId("status")).ToHaveTextAsync("Succeeded", new() { Timeout = 15_000 });
        await Expect(away).Not.ToBeVisibleAsync();

        // The overview, opened and then switched to the last day (an action) while the database is away.
        app.Proxy.Cut();
        await page.GetByRole(AriaRole.Link, new() { Name = "Overview" }).ClickAsync();
        await Expect(away).ToBeVisibleAsync();
        await page.GetByText("Last day").ClickAsync();
        await Expect(page.GetByText("Tasks ended per hour")).ToBeVisibleAsync();
        app.Proxy.Restore();
        await Expect(page.GetByTestId("servers").Locator("tbody tr").First).ToBeVisibleAsync(new() { Timeout = 15_000 });
        await Expect(away).Not.ToBeVisibleAsync();

        // The task table.
        app.Proxy.Cut();
        await page.GetByRole(AriaRole.Link, new() { Name = "Tasks", Exact = true }).ClickAsync();
        await Expect(away).ToBeVisibleAsync();
        app.Proxy.Restore();
        await Expect(taskLink).ToBeVisibleAsync(new() { Timeout = 15_000 });
        await Expect(away).Not.ToBeVisibleAsync();

        Assert.Equal(42, await page.EvaluateAsync<int?>("() => window.__taskDashboardMarker ?? null"));
    }

    [Fact]
    public async Task SchedulesOpenedAndATaskSubmittedWhileTheDatabaseIsAway_SayIt_AndWorkOnceItIsBack()
    {
        app.Proxy.Restore();
        var created = await app.CreateClient().PostAsync("/api/schedules", ApiClientExtensions.Json(
            """{"name":"nightly north","kind":"export","parameters":{"region":"north"},"cron":"0 2 * * *","timeZone":"UTC"}"""), Ct);
        created.EnsureSuccessStatusCode();
        var page = await app.NewPageAsync();
        await BrowserApp.SignInAsync(page, app.User.UserName, TaskDashboardApp.UserPassword);
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Your tasks" })).ToBeVisibleAsync();
        await BrowserApp.WaitInteractiveAsync(page);
        var away = page.GetByTestId("database-away");

        app.Proxy.Cut();
        await page.GetByRole(AriaRole.Link, new() { Name = "Schedules" }).ClickAsync();
        await Expect(away).ToBeVisibleAsync();
        app.Proxy.Restore();
        await Expect(page.GetByTestId("schedules")).ToContainTextAsync("nightly north", new() { Timeout = 15_000 });
        await Expect(away).Not.ToBeVisibleAsync();

        // An export submitted while the database is away: refused with a reason, the form kept.
        await page.GetByRole(AriaRole.Link, new() { Name = "New export" }).ClickAsync();
        await Expect(page.GetByTestId("submit")).ToBeVisibleAsync();
        app.Proxy.Cut();
        await page.GetByTestId("submit").ClickAsync();
        await Expect(page.GetByTestId("refusal")).ToContainTextAsync("database cannot be reached");
        app.Proxy.Restore();
        await TaskDashboardApp.WaitUntilAsync(async () => (await app.CreateClient().GetAsync("/api/tasks", Ct)).IsSuccessStatusCode, "the database to answer again", Ct);
        await page.GetByTestId("submit").ClickAsync();
        await Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex("/tasks/[0-9a-f-]{36}$"), new() { Timeout = 15_000 });
    }

    [Fact]
    public async Task SignInAndApiKeysWhileTheDatabaseIsAway_SayIt_AndWorkOnceItIsBack()
    {
        app.Proxy.Restore();
        var created = await app.CreateClient().PostAsync("/api/keys", ApiClientExtensions.Json("""{"name":"kept through the outage"}"""), Ct);
        created.EnsureSuccessStatusCode();
        var page = await app.NewPageAsync();

        // Signing in needs the users table: the form comes back with the reason.
        app.Proxy.Cut();
        await BrowserApp.SignInAsync(page, app.User.UserName, TaskDashboardApp.UserPassword);
        await Expect(page.GetByTestId("database-away")).ToContainTextAsync("no one can sign in");
        app.Proxy.Restore();
        await BrowserApp.SignInAsync(page, app.User.UserName, TaskDashboardApp.UserPassword);
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Your tasks" })).ToBeVisibleAsync();

        // The static keys page: a 503 that says so (not an empty list), and reloads itself until the database is back.
        app.Proxy.Cut();
        var response = await page.GotoAsync("/account/keys");
        Assert.Equal(503, response!.Status);
        await Expect(page.GetByTestId("database-away")).ToContainTextAsync("tries again by itself");
        await Expect(page.GetByText("You have no API keys yet")).Not.ToBeVisibleAsync();
        app.Proxy.Restore();
        await Expect(page.GetByText("kept through the outage")).ToBeVisibleAsync(new() { Timeout = 15_000 });
        await Expect(page.GetByTestId("database-away")).Not.ToBeVisibleAsync();

        // A key asked for while the database is away: not created, and the page says so.
        app.Proxy.Cut();
        await page.GetByLabel("Name", new() { Exact = true }).FillAsync("made in the outage");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create key" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Alert).Filter(new() { HasText = "The key was not created" })).ToBeVisibleAsync();
        await Expect(page.GetByTestId("new-key")).Not.ToBeVisibleAsync();
        app.Proxy.Restore();
        var keys = await app.CreateClient().GetStringAsync("/api/keys", Ct);
        Assert.DoesNotContain("made in the outage", keys);
    }

    [Fact]
    public async Task ARunningTasksPageOpenedWhileTheDatabaseIsAway_GoesLiveOnceItIsBack()
    {
        app.Proxy.Restore();
        var client = app.CreateClient();
        var task = await client.SubmitAsync("/api/exports", """{"parameters":{"throttleMs":1500}}""", Ct);
        await app.WaitForStateAsync(client, task.Id, TaskState.Running, Ct);
        var page = await app.NewPageAsync();
        await BrowserApp.SignInAsync(page, app.User.UserName, TaskDashboardApp.UserPassword);
        await BrowserApp.WaitInteractiveAsync(page);
        var taskLink = page.Locator($"a[href='/tasks/{task.Id}']");
        await Expect(taskLink).ToBeVisibleAsync();

        app.Proxy.Cut();
        await taskLink.ClickAsync();
        await Expect(page.GetByTestId("database-away")).ToBeVisibleAsync();
        app.Proxy.Restore();

        // Read once the database is back, then followed live to the end: the page subscribed.
        await Expect(page.GetByTestId("status")).ToHaveTextAsync("Running", new() { Timeout = 15_000 });
        await Expect(page.GetByTestId("percent")).ToHaveTextAsync("100 %", new() { Timeout = 60_000 });
        await Expect(page.GetByTestId("status")).ToHaveTextAsync("Succeeded");
    }
}
