using Microsoft.Extensions.Hosting;
using TaskDashboard.Jobs.DemoData;

namespace TaskDashboard.Jobs.Database;

/// <summary>
/// Applies migrations and seeds the demo data while the host starts, before the server accepts
/// requests or runs jobs.
/// </summary>
internal sealed class MigrationHostedService(MigrationRunner runner, DemoOrders demoOrders) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await runner.MigrateAsync(cancellationToken);
        await demoOrders.SeedIfEmptyAsync(cancellationToken);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
