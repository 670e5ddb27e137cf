using Microsoft.Extensions.Hosting;

namespace TaskDashboard.Jobs.Database;

/// <summary>Applies migrations while the host starts, before the server accepts requests or runs jobs.</summary>
internal sealed class MigrationHostedService(MigrationRunner runner) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => runner.MigrateAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
