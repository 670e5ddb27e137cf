using Microsoft.AspNetCore.Components;
using MudBlazor;
using TaskDashboard.Jobs.Database;
using TaskDashboard.Jobs.Kinds;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Web.Components.Shared;
using TaskDashboard.Web.Tasks;

namespace TaskDashboard.Web.Components.Pages.Tasks;

/// <summary>
/// The live table of the caller's tasks (everyone's for ops): progress rows update from the
/// broadcaster, and a task submitted anywhere shows up without a reload.
/// </summary>
public sealed partial class TaskList
{
    private List<Row> rows = [];
    private long totalCount;
    private TaskState? status;
    private string? kind;
    private string? search;
    private int pageNumber = 1;
    private bool loading = true;
    private string? error;

    [Inject]
    private TaskKindRegistry Kinds { get; set; } = null!;

    [Inject]
    private TaskCanceller Canceller { get; set; } = null!;

    [Inject]
    private ISnackbar Snackbar { get; set; } = null!;

    private int PageCount => Math.Max(1, (int)Math.Ceiling(totalCount / (double)DashboardOptions.Value.PageSize));

    protected override Task OnLoadAsync() => LoadAsync();

    protected override void OnAfterRender(bool firstRender)
    {
        if (firstRender && RendererInfo.IsInteractive)
        {
            Watch(SubscribeToScope(), OnEventAsync);
        }
    }

    private Task OnEventAsync(TaskEvent taskEvent)
    {
        var row = rows.Find(r => r.Task.Id == taskEvent.TaskId);
        if (row is null || taskEvent.Type != "progress")
        {
            // A new task, or a change of state (attempt, result, errors live in the row): read afresh.
            MarkStale();
            return Task.CompletedTask;
        }

        row.Task = TaskDisplay.Apply(row.Task, taskEvent);
        MarkDirty();
        return Task.CompletedTask;
    }

    private async Task LoadAsync()
    {
        try
        {
            var size = DashboardOptions.Value.PageSize;
            var page = await Store.ListAsync(Scope, status, kind, (pageNumber - 1) * size, size, Stopping, search);
            rows = [.. page.Items.Select(task => new Row(task))];
            totalCount = page.TotalCount;
            error = null;
        }
        catch (Npgsql.NpgsqlException exception) when (!DatabasePools.IsUnreachable(exception))
        {
            error = $"Could not read the tasks: {exception.Message}";
        }
        finally
        {
            loading = false;
        }
    }

    private async Task OnStatusChangedAsync(TaskState? value) => await FilterAsync(() => status = value);

    private async Task OnKindChangedAsync(string? value) => await FilterAsync(() => kind = value);

    private async Task OnSearchChangedAsync(string? value) => await FilterAsync(() => search = value);

    private async Task OnPageChangedAsync(int value)
    {
        pageNumber = value;
        await LoadAsync();
    }

    private async Task FilterAsync(Action change)
    {
        change();
        pageNumber = 1;
        await LoadAsync();
    }

    private async Task CancelAsync(Guid id)
    {
        var outcome = await Canceller.CancelAsync(Scope, id, Stopping);
        Snackbar.Add(
            outcome switch
            {
                null => "That task is gone.",
                ({ State: TaskState.Cancelled }, _) => "Cancelled.",
                ({ IsFinal: true } task, _) => $"It had already ended as {task.State}.",
                _ => "Cancelling: it stops within a couple of seconds.",
            },
            outcome is ({ IsFinal: false } or { State: TaskState.Cancelled }, _) ? Severity.Info : Severity.Warning);
        await LoadAsync();
    }

    /// <summary>
    /// A task as a table row, equal to another row of the same task: MudTable keys its rows by their
    /// items, and with the task itself as the key every event made a new key, so the row's elements
    /// were built anew — dropping the focus of someone who had tabbed to its cancel button. A progress
    /// event replaces the row's task in place.
    /// </summary>
    private sealed class Row(TaskItem task) : IEquatable<Row>
    {
        private readonly Guid id = task.Id;

        public TaskItem Task { get; set; } = task;

        public bool Equals(Row? other) => other is not null && other.id == id;

        public override bool Equals(object? obj) => Equals(obj as Row);

        public override int GetHashCode() => id.GetHashCode();
    }
}
