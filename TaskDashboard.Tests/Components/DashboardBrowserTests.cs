using System.Net.Http.Json;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using TaskDashboard.Tests.Infrastructure;
using TaskDashboard.Web.Tasks;
using static Microsoft.Playwright.Assertions;

namespace TaskDashboard.Tests.Components;

/// <summary>
/// A person at the dashboard in Chromium, against the real app with workers: forms, live progress,
/// download, cancel, and tasks submitted elsewhere showing up. Each page carries a marker that a
/// reload would erase, so "without reload" is checked, not assumed.
/// </summary>
[Collection(AppCollection.Name)]
public sealed class DashboardBrowserTests(BrowserApp app) : IClassFixture<BrowserApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ExportFromTheForm_ProgressesTo100PercentWithoutReload_AndDownloads()
    {
        var page = await SignedInPageAsync();

        await page.GotoAsync("/tasks/new/export");
        await BrowserApp.WaitInteractiveAsync(page);
        await page.Locator("input[data-testid=throttle], [data-testid=throttle] input").FillAsync("150");
        await page.ScreenshotAsync(new() { Path = Path.Combine(BrowserApp.ScreenshotDirectory, "new-export.png"), FullPage = true });
        await page.GetByTestId("submit").ClickAsync();
        await Expect(page).ToHaveURLAsync(new Regex("/tasks/[0-9a-f-]{36}$"));
        await MarkAsync(page);
        await Expect(page.GetByTestId("percent")).Not.ToHaveTextAsync("100 %");
        await Expect(page.GetByTestId("status")).ToHaveTextAsync("Running", new() { Timeout = 15_000 });
        await Expect(page.GetByTestId("percent")).ToHaveTextAsync("100 %", new() { Timeout = 30_000 });
        await Expect(page.GetByTestId("status")).ToHaveTextAsync("Succeeded");
        var download = await page.RunAndWaitForDownloadAsync(() => page.GetByTestId("download").First.ClickAsync());
        var file = await download.PathAsync();

        Assert.True(await IsMarkedAsync(page), "The page was reloaded.");
        Assert.Matches(@"^export-.*\.csv$", download.SuggestedFilename);
        var lines = await File.ReadAllLinesAsync(file, Ct);
        Assert.Equal("id,created_at,region,product,quantity,amount", lines[0]);
        Assert.Equal(TaskDashboardApp.DemoRows + 1, lines.Length);
        await Expect(page.GetByTestId("timeline")).ToContainTextAsync("succeeded");
        await page.ScreenshotAsync(new() { Path = Path.Combine(BrowserApp.ScreenshotDirectory, "task-detail.png"), FullPage = true });
    }

    [Fact]
    public async Task TaskSubmittedThroughTheApi_AppearsInAnOpenTasksPage_AndFinishesThere()
    {
        var page = await SignedInPageAsync();
        await page.GotoAsync("/");
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Your tasks" })).ToBeVisibleAsync();
        await BrowserApp.WaitInteractiveAsync(page);
        await MarkAsync(page);

        await app.CreateClient().SubmitAsync("/api/reports", """{"parameters":{"from":"2025-01-01","to":"2025-06-30","groupBy":"month"}}""", Ct);
        var task = await app.CreateClient().SubmitAsync("/api/exports", """{"parameters":{"throttleMs":400,"region":"north","format":"ndjson","gzip":true}}""", Ct);
        var row = page.GetByRole(AriaRole.Row).Filter(new() { Has = page.Locator($"a[href='/tasks/{task.Id}']") });

        await Expect(row).ToBeVisibleAsync(new() { Timeout = 15_000 });
        await Expect(row).ToContainTextAsync("north");
        await Expect(row.GetByTestId("status")).ToHaveTextAsync("Running", new() { Timeout = 15_000 });
        await Expect(row.GetByTestId("eta")).ToBeVisibleAsync(new() { Timeout = 15_000 });
        await page.ScreenshotAsync(new() { Path = Path.Combine(BrowserApp.ScreenshotDirectory, "tasks.png") });
        await Expect(row.GetByTestId("status")).ToHaveTextAsync("Succeeded", new() { Timeout = 30_000 });
        await Expect(row.GetByTestId("download")).ToBeVisibleAsync();
        Assert.True(await IsMarkedAsync(page), "The page was reloaded.");
    }

    [Fact]
    public async Task RunningTask_IsCancelledFromTheTable_OnlyAfterConfirmation()
    {
        var (page, task, row) = await RunningExportInTheTableAsync();

        await row.GetByTestId("cancel").ClickAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Keep running" }).ClickAsync();
        await Expect(row.GetByTestId("status")).ToHaveTextAsync("Running");
        await row.GetByTestId("cancel").ClickAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Cancel task" }).ClickAsync();

        await Expect(row.GetByTestId("status")).ToHaveTextAsync("Cancelled", new() { Timeout = 10_000 });
        Assert.Equal(TaskDashboard.Jobs.Tasks.TaskState.Cancelled, (await app.GetTaskAsync(app.CreateClient(), task.Id, Ct)).Status);
    }

    [Fact]
    public async Task RunningRow_KeepsKeyboardFocusOnItsCancelButton_WhileProgressArrives()
    {
        // A row rebuilt on every event (as when MudTable keyed rows by the whole changed task) drops
        // the focus of someone who tabbed to its button: their Enter then does nothing.
        var (page, task, row) = await RunningExportInTheTableAsync();
        var percent = await row.GetByTestId("percent").TextContentAsync();

        await row.GetByTestId("cancel").FocusAsync();
        await Expect(row.GetByTestId("percent")).Not.ToHaveTextAsync(percent!, new() { Timeout = 10_000 });
        await Expect(row.GetByTestId("cancel")).ToBeFocusedAsync();
        await page.Keyboard.PressAsync("Enter");

        await page.GetByRole(AriaRole.Button, new() { Name = "Keep running" }).ClickAsync(new() { Timeout = 5_000 });
        await Expect(row.GetByTestId("status")).ToHaveTextAsync("Running");
    }

    [Fact]
    public async Task ReportForm_ShowsTheApisMessages_AndSubmitsNothing_WhenDatesAreWrong()
    {
        var page = await SignedInPageAsync();
        var before = await app.CountTasksAsync(Ct);

        await page.GotoAsync("/tasks/new/report");
        await BrowserApp.WaitInteractiveAsync(page);
        await page.GetByTestId("submit").ClickAsync();

        await Expect(page.GetByText("'from' is required.")).ToBeVisibleAsync();
        await Expect(page.GetByText("'to' is required.")).ToBeVisibleAsync();
        Assert.Equal(before, await app.CountTasksAsync(Ct));
    }

    [Fact]
    public async Task Overview_CountsTasksByStatusAndQueue_AndListsTheWorkerProcesses()
    {
        var page = await SignedInPageAsync();
        var task = await app.CreateClient().SubmitAsync("/api/exports", """{"parameters":{"region":"east"}}""", Ct);
        await app.WaitForStateAsync(app.CreateClient(), task.Id, TaskDashboard.Jobs.Tasks.TaskState.Succeeded, Ct);
        var list = await app.CreateClient().GetFromJsonAsync<TaskListResponse>("/api/tasks?status=Succeeded&pageSize=100", TaskDashboardApp.Json, Ct);

        await page.GotoAsync("/overview");
        await BrowserApp.WaitInteractiveAsync(page);

        await Expect(page.GetByTestId("count-Succeeded")).ToContainTextAsync(list!.TotalCount.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await Expect(page.GetByTestId("servers").Locator("tbody tr")).Not.ToHaveCountAsync(0);
        // Every column of the queue table shows without scrolling it sideways (at the browser's 1280 px).
        var queueHeaders = page.GetByTestId("queues").Locator("th");
        await queueHeaders.First.ScrollIntoViewIfNeededAsync();
        await Expect(queueHeaders.Last).ToBeInViewportAsync(new() { Ratio = 1 });
        await page.GetByText("Last day").ClickAsync();
        await Expect(page.GetByText("Tasks ended per hour")).ToBeVisibleAsync();
        await page.ScreenshotAsync(new() { Path = Path.Combine(BrowserApp.ScreenshotDirectory, "overview.png"), FullPage = true });
    }

    [Fact]
    public async Task SchedulesPage_CreatesPausesAndDeletesASchedule()
    {
        var page = await SignedInPageAsync();
        var name = $"nightly {Guid.NewGuid():N}"[..16];

        await page.GotoAsync("/schedules");
        await BrowserApp.WaitInteractiveAsync(page);
        await page.GetByLabel("Name").FillAsync(name);
        await page.GetByLabel("Cron").FillAsync("30 2 * * *");
        await page.GetByLabel("Time zone").FillAsync("Europe/Berlin");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create schedule" }).ClickAsync();
        var row = page.GetByRole(AriaRole.Row).Filter(new() { HasText = name });
        await Expect(row).ToContainTextAsync("30 2 * * *");
        await row.GetByRole(AriaRole.Button, new() { Name = "Pause" }).ClickAsync();
        await Expect(row).ToContainTextAsync("paused");
        await row.GetByRole(AriaRole.Button, new() { Name = "Delete" }).ClickAsync();
        await page.GetByRole(AriaRole.Dialog).GetByRole(AriaRole.Button, new() { Name = "Delete" }).ClickAsync();

        await Expect(row).ToHaveCountAsync(0);
    }

    [Fact]
    public async Task BrowsersEventSource_GetsEveryEventOnce_AndStopsReconnectingAfterTheFinalOne()
    {
        var page = await SignedInPageAsync();
        var task = await app.CreateClient().SubmitAsync("/api/exports", """{"parameters":{"throttleMs":200}}""", Ct);

        await page.EvaluateAsync("""
            id => {
                const seen = window.__sse = { events: [], opens: 0 };
                seen.source = new EventSource(`/api/tasks/${id}/events`);
                seen.source.onopen = () => seen.opens++;
                for (const name of ['snapshot', 'progress', 'stage', 'succeeded', 'failed', 'cancelled']) {
                    seen.source.addEventListener(name, e => seen.events.push([name, Number(e.lastEventId)]));
                }
            }
            """, task.Id.ToString());
        // The server closes the stream after the final event; the EventSource comes back after the
        // retry: delay (2 s) with that event's id as Last-Event-ID, and the 204 closes it for good.
        await page.WaitForFunctionAsync("() => window.__sse.source.readyState === EventSource.CLOSED", null, new() { Timeout = 30_000 });
        var events = await page.EvaluateAsync<System.Text.Json.JsonElement>("() => window.__sse.events");
        var opens = await page.EvaluateAsync<int>("() => window.__sse.opens");

        var names = events.EnumerateArray().Select(e => e[0].GetString()).ToList();
        var seqs = events.EnumerateArray().Select(e => e[1].GetInt64()).ToList();
        Assert.Equal("snapshot", names[0]);
        Assert.Equal("succeeded", names[^1]);
        Assert.Single(names, n => n == "succeeded");
        Assert.Equal(Enumerable.Range((int)seqs[0], seqs.Count).Select(i => (long)i), seqs);
        Assert.Equal(1, opens);
    }

    private async Task<IPage> SignedInPageAsync()
    {
        var page = await app.NewPageAsync();
        await BrowserApp.SignInAsync(page, app.User.UserName, TaskDashboardApp.UserPassword);
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Your tasks" })).ToBeVisibleAsync();
        return page;
    }

    /// <summary>An export reporting once a second, its row Running in an open Tasks page.</summary>
    private async Task<(IPage Page, TaskResponse Task, ILocator Row)> RunningExportInTheTableAsync()
    {
        var page = await SignedInPageAsync();
        var task = await app.CreateClient().SubmitAsync("/api/exports", """{"parameters":{"throttleMs":1000}}""", Ct);
        await page.GotoAsync("/");
        await BrowserApp.WaitInteractiveAsync(page);
        var row = page.GetByRole(AriaRole.Row).Filter(new() { Has = page.Locator($"a[href='/tasks/{task.Id}']") });
        await Expect(row.GetByTestId("status")).ToHaveTextAsync("Running", new() { Timeout = 15_000 });
        return (page, task, row);
    }

    private static Task MarkAsync(IPage page) => page.EvaluateAsync("() => { window.__taskDashboardMarker = 42; }");

    private static async Task<bool> IsMarkedAsync(IPage page) => await page.EvaluateAsync<int?>("() => window.__taskDashboardMarker ?? null") == 42;
}
