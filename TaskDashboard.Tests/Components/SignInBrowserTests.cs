using System.Net;
using Microsoft.Playwright;
using TaskDashboard.Tests.Infrastructure;
using static Microsoft.Playwright.Assertions;

namespace TaskDashboard.Tests.Components;

/// <summary>Chromium against the real app: signing in and out, API keys, and who gets to /hangfire.</summary>
[Collection(AppCollection.Name)]
public sealed class SignInBrowserTests(BrowserApp app) : IClassFixture<BrowserApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task APerson_SignsIn_CreatesAndRevokesAnApiKey_AndSignsOut()
    {
        var (user, _) = await app.CreateUserAsync("person", ops: false, Ct);
        var page = await app.NewPageAsync();

        await page.GotoAsync("/");
        await Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex("/account/login"));
        await BrowserApp.SignInAsync(page, user.UserName, "not the password");
        await Expect(page.GetByRole(AriaRole.Alert)).ToHaveTextAsync("Wrong user name or password.");
        await BrowserApp.SignInAsync(page, user.UserName, TaskDashboardApp.UserPassword);
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Your tasks" })).ToBeVisibleAsync();
        await Expect(page.GetByText(user.UserName)).ToBeVisibleAsync();
        await Expect(page.GetByRole(AriaRole.Link, new() { Name = "Hangfire" })).ToHaveCountAsync(0);

        await BrowserApp.WaitInteractiveAsync(page);
        await page.GetByRole(AriaRole.Link, new() { Name = "API keys" }).ClickAsync();
        await page.GetByLabel("Name").FillAsync("from the browser");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create key" }).ClickAsync();
        var key = (await page.GetByTestId("new-key").TextContentAsync())!.Trim();
        await page.ScreenshotAsync(new() { Path = Path.Combine(BrowserApp.ScreenshotDirectory, "api-keys.png"), FullPage = true });
        var withKey = await app.CreateClientWithKey(key).GetAsync("/api/tasks", Ct);
        await page.GetByRole(AriaRole.Row).Filter(new() { HasText = "from the browser" }).GetByRole(AriaRole.Button, new() { Name = "Revoke" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Row).Filter(new() { HasText = "from the browser" })).ToContainTextAsync("revoked");
        var afterRevoke = await app.CreateClientWithKey(key).GetAsync("/api/tasks", Ct);

        await page.GetByRole(AriaRole.Button, new() { Name = "Sign out" }).ClickAsync();
        await Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex("/account/login"));
        await page.GotoAsync("/account/keys");
        await Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex("/account/login"));

        Assert.Equal(HttpStatusCode.OK, withKey.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, afterRevoke.StatusCode);
    }

    [Fact]
    public async Task HangfireDashboard_OpensForOps_AndIsDeniedToOthers()
    {
        var (ops, _) = await app.CreateUserAsync("ops", ops: true, Ct);
        var (user, _) = await app.CreateUserAsync("user", ops: false, Ct);
        var opsPage = await app.NewPageAsync();
        var userPage = await app.NewPageAsync();

        await BrowserApp.SignInAsync(opsPage, ops.UserName, TaskDashboardApp.UserPassword);
        await BrowserApp.WaitInteractiveAsync(opsPage);
        await opsPage.GetByRole(AriaRole.Link, new() { Name = "Hangfire" }).ClickAsync();
        await BrowserApp.SignInAsync(userPage, user.UserName, TaskDashboardApp.UserPassword);
        await userPage.GotoAsync("/hangfire");

        await Expect(opsPage).ToHaveURLAsync(new System.Text.RegularExpressions.Regex("/hangfire"));
        await Expect(opsPage.GetByText("TaskDashboard jobs").First).ToBeVisibleAsync();
        await Expect(userPage.GetByRole(AriaRole.Heading, new() { Name = "Not allowed" })).ToBeVisibleAsync();
    }
}
