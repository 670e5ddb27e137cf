using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using TaskDashboard.Jobs.Progress;

namespace TaskDashboard.Jobs.Database;

/// <summary>
/// One LISTEN connection of this process on one channel: a dedicated connection (a pooled one would
/// be reset, and would keep listening while idle in the pool — every NOTIFY in the database signals
/// every listening backend), pinged when idle, reopened with backoff when it drops. After every
/// (re)connect <see cref="OnListeningAsync"/> runs, because notifications sent meanwhile are gone.
/// When the connection is lost, the process's pools are cleared (<see cref="DatabasePools"/>): what
/// ended this connection (a restart, a failover, a network drop) most likely ended the idle pooled
/// ones too, and each would otherwise fail once on its next use.
/// </summary>
public abstract class ChannelListener(NpgsqlDataSource listenSource, DatabasePools pools, ProgressOptions settings, ILogger logger) : BackgroundService
{
    private NpgsqlConnection? current;

    /// <summary>Times the listener (re)connected; for tests and health.</summary>
    public int Connections { get; private set; }

    /// <summary>The channel listened to.</summary>
    protected abstract string ChannelName { get; }

    /// <summary>Breaks the current LISTEN connection (for tests of reconnect and catch-up).</summary>
    public async Task DropConnectionAsync(NpgsqlDataSource admin)
    {
        if (current is { } connection)
        {
            await using var terminate = admin.CreateCommand("SELECT pg_terminate_backend(@pid)");
            terminate.Parameters.AddWithValue("pid", connection.ProcessID);
            await terminate.ExecuteNonQueryAsync();
        }
    }

    /// <summary>Runs once LISTEN is in place after every (re)connect: catch up on what was missed.</summary>
    protected abstract Task OnListeningAsync(CancellationToken cancellationToken);

    /// <summary>Runs on the connection's reader for every notification: hand the payload on, never block.</summary>
    protected abstract void OnNotification(string payload);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var backoff = settings.ListenerBackoff;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = await OpenListeningConnectionAsync(stoppingToken);
                connection.Notification += (_, e) => OnNotification(e.Payload);
                current = connection;
                Connections++;
                backoff = settings.ListenerBackoff;
                await OnListeningAsync(stoppingToken);
                while (!stoppingToken.IsCancellationRequested)
                {
                    if (!await connection.WaitAsync(settings.ListenerKeepAlive, stoppingToken))
                    {
                        await using var ping = new NpgsqlCommand("SELECT 1", connection);
                        await ping.ExecuteNonQueryAsync(stoppingToken);
                    }
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception exception)
            {
                logger.LogWarning(exception, "The listener on {Channel} lost its connection; reconnecting in {Backoff}", ChannelName, backoff);
                if (current is not null)
                {
                    pools.Clear();
                }

                current = null;
                try
                {
                    await Task.Delay(backoff, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    break;
                }

                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, settings.ListenerMaxBackoff.Ticks));
            }
        }
    }

    private async Task<NpgsqlConnection> OpenListeningConnectionAsync(CancellationToken cancellationToken)
    {
        var connection = await listenSource.OpenConnectionAsync(cancellationToken);
        try
        {
            await using var listen = new NpgsqlCommand($"LISTEN {ChannelName}", connection);
            await listen.ExecuteNonQueryAsync(cancellationToken);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }
}
