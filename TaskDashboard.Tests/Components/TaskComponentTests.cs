using System.Text.Json;
using Bunit;
using Microsoft.Extensions.DependencyInjection;
using MudBlazor;
using MudBlazor.Services;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Web.Components.Shared;

namespace TaskDashboard.Tests.Components;

/// <summary>The task row's parts on their own: progress, status-dependent actions, the cancel confirmation.</summary>
public sealed class TaskComponentTests : BunitContext
{
    private static readonly DateTimeOffset Now = new(2026, 11, 27, 12, 0, 0, TimeSpan.Zero);

    public TaskComponentTests()
    {
        Services.AddMudServices();
        JSInterop.Mode = JSRuntimeMode.Loose;
    }

    [Fact]
    public void Progress_ShowsPercentStageMessageAndEta_WhileRunning()
    {
        var task = Task(TaskState.Running) with { Progress = 25, Stage = "Exporting", Message = "5,000 of 20,000 rows", StartedAt = Now.AddSeconds(-30) };

        var cut = Render<TaskProgress>(p => p.Add(c => c.Task, task).Add(c => c.Now, Now));

        Assert.Equal("25 %", cut.Find("[data-testid=percent]").TextContent);
        Assert.Equal("Exporting", cut.Find("[data-testid=stage]").TextContent);
        Assert.Equal("5,000 of 20,000 rows", cut.Find("[data-testid=message]").TextContent);
        Assert.Equal("ETA 1m 30s", cut.Find("[data-testid=eta]").TextContent);
    }

    [Theory]
    [InlineData(TaskState.Pending)]
    [InlineData(TaskState.Succeeded)]
    [InlineData(TaskState.Failed)]
    public void Progress_ShowsNoEta_WhenNotRunning(TaskState state)
    {
        var task = Task(state) with { Progress = 50, StartedAt = Now.AddSeconds(-30) };

        var cut = Render<TaskProgress>(p => p.Add(c => c.Task, task).Add(c => c.Now, Now));

        Assert.Empty(cut.FindAll("[data-testid=eta]"));
    }

    [Theory]
    [InlineData(TaskState.Pending, false, true)]
    [InlineData(TaskState.Scheduled, false, true)]
    [InlineData(TaskState.Running, false, true)]
    [InlineData(TaskState.Succeeded, true, false)]
    [InlineData(TaskState.Failed, false, false)]
    [InlineData(TaskState.Cancelled, false, false)]
    public void Actions_OfferDownloadOnlyForAResult_AndCancelOnlyWhileUnfinished(TaskState state, bool download, bool cancel)
    {
        var task = Task(state) with { Result = state == TaskState.Succeeded ? new TaskResult("x.csv", "text/csv", 1, 1, "00", "x/x.csv") : null };

        var cut = Render<TaskActions>(p => p.Add(c => c.Task, task));

        Assert.Equal(download, cut.FindAll("[data-testid=download]").Count == 1);
        Assert.Equal(cancel, cut.FindAll("[data-testid=cancel]").Count == 1);
        if (download)
        {
            Assert.Equal($"/api/tasks/{task.Id}/result", cut.Find("[data-testid=download]").GetAttribute("href"));
        }
    }

    [Fact]
    public void Actions_DisableCancel_OnceACancelWasRequested()
    {
        var task = Task(TaskState.Running) with { CancelRequestedAt = Now };

        var cut = Render<TaskActions>(p => p.Add(c => c.Task, task));

        Assert.True(cut.Find("[data-testid=cancel]").HasAttribute("disabled"));
        Assert.Contains("Cancelling", cut.Find("[data-testid=cancel]").TextContent);
    }

    [Fact]
    public async Task Cancel_CallsBack_OnlyAfterThePersonConfirms()
    {
        var dialogs = Render<MudDialogProvider>();
        var task = Task(TaskState.Running);
        var cancelled = new List<Guid>();
        var cut = Render<TaskActions>(p => p.Add(c => c.Task, task).Add(c => c.OnCancel, (Guid id) => cancelled.Add(id)));

        // The click's handler waits for the person's answer, so it is awaited only after answering.
        var asking = cut.Find("[data-testid=cancel]").ClickAsync(new());
        dialogs.WaitForAssertion(() => Assert.Contains("Cancel this task?", dialogs.Markup));
        await dialogs.FindAll("button").Single(b => b.TextContent.Contains("Keep running")).ClickAsync(new());
        await asking.WaitAsync(TimeSpan.FromSeconds(10), Xunit.TestContext.Current.CancellationToken);
        var afterDeclining = cancelled.Count;
        asking = cut.Find("[data-testid=cancel]").ClickAsync(new());
        dialogs.WaitForAssertion(() => Assert.Contains("Cancel this task?", dialogs.Markup));
        await dialogs.FindAll("button").Single(b => b.TextContent.Contains("Cancel task")).ClickAsync(new());
        await asking.WaitAsync(TimeSpan.FromSeconds(10), Xunit.TestContext.Current.CancellationToken);

        Assert.Equal(0, afterDeclining);
        Assert.Equal([task.Id], cancelled);
    }

    private static TaskItem Task(TaskState state) => new()
    {
        Id = Guid.CreateVersion7(),
        OwnerId = "someone",
        Kind = "export",
        Parameters = JsonDocument.Parse("""{"format":"csv"}""").RootElement.Clone(),
        Priority = TaskPriority.Default,
        State = state,
        MaxAttempts = 3,
        CreatedAt = Now.AddMinutes(-1),
        UpdatedAt = Now,
    };
}
