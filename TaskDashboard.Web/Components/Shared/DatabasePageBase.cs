using Microsoft.AspNetCore.Components;
using Microsoft.Extensions.Options;
using TaskDashboard.Jobs.Database;

namespace TaskDashboard.Web.Components.Shared;

/// <summary>
/// A page that reads what it shows from the database (<see cref="OnLoadAsync"/>) and outlives the
/// database's outages (a restart, a failover): a read or a UI action that cannot reach it does not
/// end the circuit. The page keeps what it showed, says that the database is away
/// (<see cref="DatabaseAway"/>, shown by <c>DatabaseAwayAlert</c>), and reads again every
/// <see cref="DashboardOptions.DatabaseRetryInterval"/> until it is back.
/// </summary>
public abstract class DatabasePageBase : ComponentBase, IHandleEvent, IDisposable
{
    private readonly CancellationTokenSource stopping = new();
    private bool retrying;

    [Inject]
    protected TimeProvider Time { get; set; } = null!;

    [Inject]
    protected IOptions<DashboardOptions> DashboardOptions { get; set; } = null!;

    /// <summary>Whether the page's last read or action failed because the database could not be reached.</summary>
    protected bool DatabaseAway { get; private set; }

    /// <summary>Cancelled when the page goes away.</summary>
    protected CancellationToken Stopping => stopping.Token;

    protected override Task OnInitializedAsync() => ReadAsync();

    /// <summary>Reads what the page shows: when it opens, and again after an outage (and whenever the page itself calls it).</summary>
    protected abstract Task OnLoadAsync();

    /// <summary><see cref="OnLoadAsync"/>, unless the database is away: then the page waits for it.</summary>
    protected async Task ReadAsync()
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

    public virtual void Dispose()
    {
        stopping.Cancel();
        stopping.Dispose();
        GC.SuppressFinalize(this);
    }
}
