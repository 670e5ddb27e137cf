using Microsoft.Playwright;

namespace TaskDashboard.Tests.Infrastructure;

/// <summary>
/// The app with workers on a real Kestrel port, and Debian's Chromium driven by Playwright (never a
/// downloaded browser). Each test takes a fresh browser context: its own cookies, like a new person.
/// </summary>
public class BrowserApp : WorkerApp
{
    public const string ChromiumPath = "/usr/bin/chromium";

    private IPlaywright? playwright;

    public BrowserApp() => UseKestrel(0);

    public IBrowser Browser { get; private set; } = null!;

    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>Where screenshots go: next to the test binaries, under <c>screenshots/</c>.</summary>
    public static string ScreenshotDirectory => Directory.CreateDirectory(Path.Combine(AppContext.BaseDirectory, "screenshots")).FullName;

    public override async ValueTask InitializeAsync()
    {
        await base.InitializeAsync();
        BaseAddress = CreateClient().BaseAddress!;
        if (!File.Exists(ChromiumPath))
        {
            throw new InvalidOperationException($"{ChromiumPath} is missing: ./test installs Debian's chromium package (apt-get install chromium).");
        }

        playwright = await Playwright.CreateAsync();
        Browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumPath,
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        });
    }

    public async Task<IPage> NewPageAsync()
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions { BaseURL = BaseAddress.ToString(), ViewportSize = new() { Width = 1280, Height = 800 } });
        return await context.NewPageAsync();
    }

    /// <summary>Signs in through the login page, as a person does.</summary>
    public static async Task SignInAsync(IPage page, string userName, string password)
    {
        await page.GotoAsync("/account/login");
        await page.GetByLabel("User name").FillAsync(userName);
        await page.GetByLabel("Password").FillAsync(password);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
    }

    /// <summary>Until the circuit is up, a prerendered page does not react to clicks; the layout says when it is.</summary>
    public static Task WaitInteractiveAsync(IPage page) =>
        page.GetByTestId("interactive").WaitForAsync(new() { State = WaitForSelectorState.Attached });

    public override async ValueTask DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.DisposeAsync();
        }

        playwright?.Dispose();
        await base.DisposeAsync();
    }
}
