using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Components.Authorization;
using TaskDashboard.Jobs.Progress;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Web.Security;

namespace TaskDashboard.Web.Components.Shared;

/// <summary>
/// A page fed by the node's broadcaster (the same one behind the hub and SSE). Events are applied as
/// they come, but the page renders at most once per <see cref="DashboardOptions.RenderInterval"/>,
/// however many events arrive. Subscribe in <c>OnAfterRenderAsync</c>, once interactive.
/// </summary>
public abstract class LiveComponentBase : DatabasePageBase
{
    private readonly List<TaskEventSubscription> subscriptions = [];
    private int dirty;
    private int stale;

    [Inject]
    protected TaskEventBus Bus { get; set; } = null!;

    [Inject]
    protected TaskStore Store { get; set; } = null!;

    [CascadingParameter]
    private Task<AuthenticationState> AuthenticationState { get; set; } = null!;

    /// <summary>Whose tasks the page shows: the signed-in user's, or everyone's for ops (set before <see cref="OnLoadAsync"/>).</summary>
    protected TaskScope Scope { get; private set; } = null!;

    protected sealed override async Task OnInitializedAsync()
    {
        Scope = (await AuthenticationState).User.TaskScope();
        Now = Time.GetUtcNow();
        await ReadAsync();
    }

    /// <summary>The broadcaster's feed of every task in <see cref="Scope"/>.</summary>
    protected TaskEventSubscription SubscribeToScope() => Scope.AllOwners ? Bus.SubscribeAll() : Bus.SubscribeOwner(Scope.OwnerId);

    /// <summary>Reads <paramref name="subscription"/> until the page goes away, handing each event to <paramref name="onEvent"/>.</summary>
    protected void Watch(TaskEventSubscription subscription, Func<TaskEvent, Task> onEvent)
    {
        lock (subscriptions)
        {
            subscriptions.Add(subscription);
        }

        _ = PumpAsync(subscription, onEvent);
        if (subscriptions.Count == 1)
        {
            _ = RenderLoopAsync();
        }
    }

    /// <summary>The time the page reckons ETAs and run times from; moves on at every render.</summary>
    protected DateTimeOffset Now { get; private set; } = DateTimeOffset.UtcNow;

    /// <summary>Asks for a render at the next tick of the render interval.</summary>
    protected void MarkDirty() => Interlocked.Exchange(ref dirty, 1);

    /// <summary>Asks for <see cref="OnLoadAsync"/> and a render at the next tick (however many events asked).</summary>
    protected void MarkStale()
    {
        Interlocked.Exchange(ref stale, 1);
        MarkDirty();
    }

    private async Task PumpAsync(TaskEventSubscription subscription, Func<TaskEvent, Task> onEvent)
    {
        try
        {
            await foreach (var taskEvent in subscription.Reader.ReadAllAsync(Stopping))
            {
                // On the circuit's thread: the handler touches the page's state.
                await InvokeAsync(() => onEvent(taskEvent));
            }
        }
        catch (OperationCanceledException) when (Stopping.IsCancellationRequested)
        {
        }
        catch (Exception exception)
        {
            await DispatchExceptionAsync(exception);
        }
    }

    private async Task RenderLoopAsync()
    {
        using var timer = new PeriodicTimer(DashboardOptions.Value.RenderInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(Stopping))
            {
                if (Interlocked.Exchange(ref dirty, 0) == 1)
                {
                    await InvokeAsync(async () =>
                    {
                        Now = Time.GetUtcNow();
                        if (Interlocked.Exchange(ref stale, 0) == 1)
                        {
                            await ReadAsync();
                        }

                        StateHasChanged();
                    });
                }
            }
        }
        catch (OperationCanceledException) when (Stopping.IsCancellationRequested)
        {
        }
        catch (Exception exception)
        {
            await DispatchExceptionAsync(exception);
        }
    }

    public override void Dispose()
    {
        lock (subscriptions)
        {
            foreach (var subscription in subscriptions)
            {
                subscription.Dispose();
            }
        }

        base.Dispose();
    }
}
