using System.Net;
using System.Net.Sockets;

namespace TaskDashboard.Tests.Infrastructure;

/// <summary>
/// A TCP proxy on loopback in front of PostgreSQL that can take the database away: <see cref="Cut"/>
/// resets every connection through it and turns new ones away until <see cref="Restore"/>, which is
/// what an app sees while its database restarts or the network between them drops.
/// </summary>
public sealed class OutageProxy : IAsyncDisposable
{
    private readonly TcpListener listener = new(IPAddress.Loopback, 0);
    private readonly string targetHost;
    private readonly int targetPort;
    private readonly HashSet<TcpClient> open = [];
    private readonly CancellationTokenSource stopping = new();
    private readonly Task accepting;
    private volatile bool down;

    public OutageProxy(string targetHost, int targetPort)
    {
        (this.targetHost, this.targetPort) = (targetHost, targetPort);
        listener.Start();
        accepting = AcceptAsync();
    }

    public int Port => ((IPEndPoint)listener.LocalEndpoint).Port;

    /// <summary>How many connections were turned away while the database was away.</summary>
    public int TurnedAway { get; private set; }

    /// <summary>Resets every connection through the proxy; new ones are closed at once until <see cref="Restore"/>.</summary>
    public void Cut()
    {
        down = true;
        lock (open)
        {
            foreach (var client in open)
            {
                Reset(client);
            }

            open.Clear();
        }
    }

    public void Restore() => down = false;

    /// <summary>The database away for <paramref name="length"/>: <see cref="Cut"/>, then <see cref="Restore"/>.</summary>
    public async Task OutageAsync(TimeSpan length, CancellationToken cancellationToken)
    {
        Cut();
        await Task.Delay(length, cancellationToken);
        Restore();
    }

    private async Task AcceptAsync()
    {
        while (!stopping.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await listener.AcceptTcpClientAsync(stopping.Token);
            }
            catch (Exception) when (stopping.IsCancellationRequested)
            {
                return;
            }

            if (down)
            {
                TurnedAway++;
                Reset(client);
                continue;
            }

            _ = ForwardAsync(client);
        }
    }

    private async Task ForwardAsync(TcpClient client)
    {
        var upstream = new TcpClient();
        try
        {
            await upstream.ConnectAsync(targetHost, targetPort, stopping.Token);
            lock (open)
            {
                if (down)
                {
                    Reset(client);
                    Reset(upstream);
                    return;
                }

                open.Add(client);
                open.Add(upstream);
            }

            // Either direction ending (or a reset) ends both.
            await Task.WhenAny(Pump(client, upstream), Pump(upstream, client));
        }
        catch (Exception)
        {
            // A reset or the proxy stopping: the connection is over.
        }
        finally
        {
            lock (open)
            {
                open.Remove(client);
                open.Remove(upstream);
            }

            client.Dispose();
            upstream.Dispose();
        }
    }

    private async Task Pump(TcpClient from, TcpClient to)
    {
        var buffer = new byte[16384];
        var source = from.GetStream();
        var target = to.GetStream();
        int read;
        while ((read = await source.ReadAsync(buffer, stopping.Token)) > 0)
        {
            await target.WriteAsync(buffer.AsMemory(0, read), stopping.Token);
        }
    }

    // Closes with a reset, as a dropped network or a killed server leaves the other end.
    private static void Reset(TcpClient client)
    {
        try
        {
            client.Client.LingerState = new LingerOption(true, 0);
            client.Close();
        }
        catch (Exception)
        {
            // Already closed.
        }
    }

    public async ValueTask DisposeAsync()
    {
        await stopping.CancelAsync();
        listener.Stop();
        Cut();
        await accepting;
        stopping.Dispose();
    }
}
