using System.Text.Json;
using Microsoft.AspNetCore.Components;
using MudBlazor;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Jobs.Webhooks;
using TaskDashboard.Web.Components.Shared;
using TaskDashboard.Web.Tasks;

namespace TaskDashboard.Web.Components.Pages.Tasks;

/// <summary>One task: live progress, parameters, result or error, failed attempts, and its event timeline.</summary>
public sealed partial class TaskDetail
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    private TaskItem? task;
    private List<TaskEvent> events = [];
    private IReadOnlyList<WebhookDelivery> deliveries = [];
    private bool notFound;
    private bool watching;

    [Parameter]
    public Guid Id { get; set; }

    [Inject]
    private TaskCanceller Canceller { get; set; } = null!;

    [Inject]
    private WebhookStore Webhooks { get; set; } = null!;

    [Inject]
    private ISnackbar Snackbar { get; set; } = null!;

    [Inject]
    private NavigationManager Navigation { get; set; } = null!;

    protected override Task OnLoadAsync() => LoadAsync();

    protected override void OnAfterRender(bool firstRender)
    {
        // (The first read may wait for the database: then the page subscribes once it has read the task.)
        if (!watching && RendererInfo.IsInteractive && task is not null)
        {
            watching = true;
            // Events after the ones already read come from the broadcaster, in order.
            Watch(Bus.Subscribe(Id, task.LastEventSeq), OnEventAsync);
            // Keep the ETA, run time and webhook attempts fresh between events.
            _ = TickAsync();
        }
    }

    private Task OnEventAsync(TaskEvent taskEvent)
    {
        if (task is null || taskEvent.Seq <= task.LastEventSeq)
        {
            return Task.CompletedTask;
        }

        if (taskEvent.Seq > task.LastEventSeq + 1 || taskEvent.Type != "progress")
        {
            // A gap, or a change of state (attempt, result, errors live in the row): read afresh.
            MarkStale();
            return Task.CompletedTask;
        }

        task = TaskDisplay.Apply(task, taskEvent);
        events.Add(taskEvent);
        MarkDirty();
        return Task.CompletedTask;
    }

    private async Task TickAsync()
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        try
        {
            while (await timer.WaitForNextTickAsync(Stopping))
            {
                if (deliveries.Any(d => d.Status is "Pending" or "InFlight") || (task is { IsFinal: true, CallbackUrl: not null } && deliveries.Count == 0))
                {
                    MarkStale();
                }
                else if (task is { IsFinal: false })
                {
                    MarkDirty();
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The page went away.
        }
    }

    private async Task LoadAsync()
    {
        task = await Store.GetAsync(Scope, Id, Stopping);
        notFound = task is null;
        if (task is not null)
        {
            var all = await Store.GetEventsAsync(Id, 0, Stopping);
            events = all.Skip(Math.Max(0, all.Count - DashboardOptions.Value.TimelineLength)).Where(e => e.Seq <= task.LastEventSeq).ToList();
            deliveries = task.CallbackUrl is null ? [] : await Webhooks.ListForTaskAsync(Id, Stopping);
        }

    }

    private async Task CancelAsync(Guid id)
    {
        var outcome = await Canceller.CancelAsync(Scope, id, Stopping);
        Snackbar.Add(outcome is ({ IsFinal: true, State: not TaskState.Cancelled } ended, _) ? $"It had already ended as {ended.State}." : "Cancelling.", Severity.Info);
        await LoadAsync();
    }

    private async Task RedeliverAsync(Guid deliveryId)
    {
        var created = await Webhooks.RedeliverAsync(Id, deliveryId, Stopping);
        Snackbar.Add(created is null ? "That delivery is gone." : "Sending it again.", Severity.Info);
        await LoadAsync();
    }

    private static Color DeliveryColor(string status) => status switch
    {
        "Delivered" => Color.Success,
        "Failed" or "Gone" => Color.Error,
        "InFlight" => Color.Info,
        _ => Color.Default,
    };

    private static string Pretty(JsonElement parameters) => JsonSerializer.Serialize(parameters, Indented);

    private string CurlCommands()
    {
        var root = Navigation.BaseUri.TrimEnd('/');
        return $"""
            key=tdk_…   # an API key from /account/keys
            curl -N -H "Authorization: Bearer $key" {root}/api/tasks/{Id}/events
            curl -s -H "Authorization: Bearer $key" {root}/api/tasks/{Id}
            curl -OJ -H "Authorization: Bearer $key" {root}/api/tasks/{Id}/result
            """;
    }
}
