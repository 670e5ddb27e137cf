using Bunit;
using MudBlazor;
using MudBlazor.Services;
using Microsoft.Extensions.DependencyInjection;
using TaskDashboard.Web.Components.Shared;

namespace TaskDashboard.Tests.Components;

/// <summary>The forms check with the API's own rules and hand over exactly what the API takes.</summary>
public sealed class TaskFormTests : BunitContext
{
    private readonly List<TaskFormSubmission> submitted = [];

    public TaskFormTests()
    {
        Services.AddMudServices();
        JSInterop.Mode = JSRuntimeMode.Loose;
        Render<MudPopoverProvider>();
    }

    [Fact]
    public async Task ExportForm_ShowsTheApisMessages_AndSubmitsNothing_WhenFieldsBreakTheRules()
    {
        var cut = Render<ExportForm>(p => p.Add(c => c.OnSubmit, (TaskFormSubmission s) => submitted.Add(s)));
        cut.Instance.Parameters.ThrottleMs = 70_000;
        cut.Instance.Settings.Timeout = 0;

        await cut.Find("[data-testid=submit]").ClickAsync(new());

        Assert.Contains("throttleMs must be between 0 and 60000.", cut.Markup);
        Assert.Contains("'timeout' must be between 1 and 86400 seconds.", cut.Markup);
        Assert.Empty(submitted);
    }

    [Fact]
    public async Task ExportForm_RefusesADateRangeThatEndsBeforeItStarts()
    {
        var cut = Render<ExportForm>(p => p.Add(c => c.OnSubmit, (TaskFormSubmission s) => submitted.Add(s)));
        cut.Instance.Parameters.From = new DateOnly(2025, 3, 1);
        cut.Instance.Parameters.To = new DateOnly(2025, 1, 1);

        await cut.Find("[data-testid=submit]").ClickAsync(new());

        Assert.Contains("'from' must not be after 'to'.", cut.Find(".mud-input-error").TextContent);
        Assert.Empty(submitted);
    }

    [Fact]
    public async Task ExportForm_HandsOverTheApisJson_WhenValid()
    {
        var cut = Render<ExportForm>(p => p.Add(c => c.OnSubmit, (TaskFormSubmission s) => submitted.Add(s)));
        cut.Instance.Parameters.From = new DateOnly(2025, 1, 1);
        cut.Instance.Parameters.Region = "north";
        cut.Instance.Parameters.Gzip = true;
        cut.Instance.Settings.Priority = "high";

        await cut.Find("[data-testid=submit]").ClickAsync(new());

        var submission = Assert.Single(submitted);
        Assert.Equal("export", submission.Kind);
        Assert.Equal("high", submission.Priority);
        Assert.Null(submission.Timeout);
        Assert.Equal("2025-01-01", submission.Parameters.GetProperty("from").GetString());
        Assert.Equal("north", submission.Parameters.GetProperty("region").GetString());
        Assert.True(submission.Parameters.GetProperty("gzip").GetBoolean());
        Assert.Equal("csv", submission.Parameters.GetProperty("format").GetString());
    }

    [Fact]
    public void ExportForm_ShowsTheServersErrors_OnTheirFields()
    {
        var errors = new FieldErrors([new("parameters.region", ["The region must be one of central, east, north, south, west."]), new("kind", ["Something else."])]);

        var cut = Render<ExportForm>(p => p.Add(c => c.ServerErrors, errors));

        Assert.Contains("The region must be one of central, east, north, south, west.", cut.Find(".mud-input-error").TextContent);
        Assert.Contains("Something else.", cut.Find(".mud-alert").TextContent);
    }

    [Fact]
    public async Task ExportForm_HandsOverTheStartTime_AndRefusesATimeWithoutADay()
    {
        var cut = Render<ExportForm>(p => p.Add(c => c.OnSubmit, (TaskFormSubmission s) => submitted.Add(s)));
        cut.Instance.Settings.StartTime = TimeSpan.FromHours(6);

        await cut.Find("[data-testid=submit]").ClickAsync(new());
        var refused = cut.Markup;
        var day = DateTime.UtcNow.Date.AddDays(2);
        cut.Instance.Settings.StartDate = day;
        await cut.Find("[data-testid=submit]").ClickAsync(new());

        Assert.Contains("Pick a day to go with the start time.", refused);
        var submission = Assert.Single(submitted);
        Assert.Equal(new DateTimeOffset(day.AddHours(6), TimeSpan.Zero), submission.RunAt);
    }

    [Fact]
    public async Task ReportForm_RequiresBothDates_WithTheApisMessages()
    {
        var cut = Render<ReportForm>(p => p.Add(c => c.OnSubmit, (TaskFormSubmission s) => submitted.Add(s)));

        await cut.Find("[data-testid=submit]").ClickAsync(new());

        Assert.Contains("'from' is required.", cut.Markup);
        Assert.Contains("'to' is required.", cut.Markup);
        Assert.Empty(submitted);
    }

    [Fact]
    public async Task ReportForm_HandsOverTheApisJson_WhenValid()
    {
        var cut = Render<ReportForm>(p => p.Add(c => c.OnSubmit, (TaskFormSubmission s) => submitted.Add(s)));
        cut.Instance.Parameters.From = new DateOnly(2025, 1, 1);
        cut.Instance.Parameters.To = new DateOnly(2025, 6, 30);
        cut.Instance.Parameters.GroupBy = "month";

        await cut.Find("[data-testid=submit]").ClickAsync(new());

        var submission = Assert.Single(submitted);
        Assert.Equal("report", submission.Kind);
        Assert.Equal("month", submission.Parameters.GetProperty("groupBy").GetString());
        Assert.Equal("html", submission.Parameters.GetProperty("format").GetString());
    }
}
