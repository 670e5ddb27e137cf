using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Components.Authorization;
using Microsoft.Extensions.Options;
using TaskDashboard.Jobs.Database;
using TaskDashboard.Jobs.Progress;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Web.Security;

namespace TaskDashboard.Web.Components.Shared;

/// <summary>
/// A page fed by the node's broadcaster (the same one behind the hub and SSE). Events are applied as
/// they come, but the page renders at most once per <see cref="DashboardOptions.RenderInterval"/>,
/// however many events arrive. Subscribe in <c>OnAfterRenderAsync</c>, once interactive.
/// </summary>
/// <remarks>
/// While the database cannot be reached (a restart, a failover), a read or an action of the page
/// that needs it does not end the circuit: the page keeps what it showed, says that the database is
/// away (<see cref="DatabaseAway"/>), and reads again every
/// <see cref="DashboardOptions.DatabaseRetryInterval"/> until it is back.
/// </remarks>
public abstract class LiveComponentBase : ComponentBase, IHandleEvent, IDisposable
{
    private readonly CancellationTokenSource stopping = new();
    private readonly List<TaskEventSubscription> subscriptions = [];
    private int dirty;
    private int stale;
    private bool retrying;

    [Inject]
    protected TaskEventBus Bus { get; set; } = null!;

    [Inject]
    protected TaskStore Store { get; set; } = null!;

    [Inject]
    protected TimeProvider Time { get; set; } = null!;

    [CascadingParameter]
    private Task<AuthenticationState> AuthenticationState { get; set; } = null!;

    /// <summary>Whose tasks the page shows: the signed-in user's, or everyone's for ops (set before <see cref="OnLoadAsync"/>).</summary>
    protected TaskScope Scope { get; private set; } = null!;

    /// <summary>Whether the page's last read or action failed because the database could not be reached.</summary>
    protected bool DatabaseAway { get; private set; }

    protected sealed override async Task OnInitializedAsync()
    {
        Scope = (await AuthenticationState).User.TaskScope();
        Now = Time.GetUtcNow();
        await ReadAsync();
    }

    /// <summary>Reads what the page shows, on first render and (through the page's own calls) when events make it stale.</summary>
    protected abstract Task OnLoadAsync();

    // OnLoadAsync, unless the database is away: then the page waits for it.
    private async Task ReadAsync()
    {
        try
        {
            await OnLoadAsync();
            DatabaseAway = false;
        }
        catch (Exception exception) when (DatabasePools.IsUnreachable(exception))
        {
            WaitForDatabase();
        }
    }

    // Once interactive, one loop per page reads again every DatabaseRetryInterval until a read
    // succeeds. (A prerendered page only shows the notice: its circuit's first read starts the loop.)
    // Everything here runs on the circuit's synchronization context, one piece at a time.
    private void WaitForDatabase()
    {
        DatabaseAway = true;
        if (RendererInfo.IsInteractive && !retrying)
        {
            retrying = true;
            _ = RetryAsync();
        }
    }

    private async Task RetryAsync()
    {
        try
        {
            using var timer = new PeriodicTimer(DashboardOptions.Value.DatabaseRetryInterval, Time);
            while (DatabaseAway && await timer.WaitForNextTickAsync(Stopping))
            {
                await ReadAsync();
                StateHasChanged();
            }
        }
        catch (OperationCanceledException) when (Stopping.IsCancellationRequested)
        {
        }
        catch (Exception exception)
        {
            await DispatchExceptionAsync(exception);
        }
        finally
        {
            retrying = false;
        }
    }

    // As ComponentBase handles a UI event (render now, and again when the handler completes), but an
    // action that cannot reach the database shows the notice instead of ending the circuit.
    async Task IHandleEvent.HandleEventAsync(EventCallbackWorkItem callback, object? arg)
    {
        Task? handler = null;
        try
        {
            handler = callback.InvokeAsync(arg);
            if (!handler.IsCompleted)
            {
                StateHasChanged();
            }

            await handler;
        }
        catch (Exception exception) when (DatabasePools.IsUnreachable(exception))
        {
            WaitForDatabase();
        }
        catch (OperationCanceledException) when (handler is { IsCanceled: true })
        {
            return;
        }

        StateHasChanged();
    }

    /// <summary>The broadcaster's feed of every task in <see cref="Scope"/>.</summary>
    protected TaskEventSubscription SubscribeToScope() => Scope.AllOwners ? Bus.SubscribeAll() : Bus.SubscribeOwner(Scope.OwnerId);

    [Inject]
    protected IOptions<DashboardOptions> DashboardOptions { get; set; } = null!;

    protected CancellationToken Stopping => stopping.Token;

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

    public virtual void Dispose()
    {
        stopping.Cancel();
        lock (subscriptions)
        {
            foreach (var subscription in subscriptions)
            {
                subscription.Dispose();
            }
        }

        stopping.Dispose();
        GC.SuppressFinalize(this);
    }
}
