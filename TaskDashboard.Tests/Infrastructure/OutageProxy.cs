using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Hosting;
using Npgsql;

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
    private LostAnswer? lostAnswer;

    public OutageProxy(string targetHost, int targetPort)
    {
        (this.targetHost, this.targetPort) = (targetHost, targetPort);
        listener.Start();
        accepting = AcceptAsync();
    }

    public int Port => ((IPEndPoint)listener.LocalEndpoint).Port;

    /// <summary>A proxy in front of <paramref name="connectionString"/>'s server, made the app's way to its database.</summary>
    public static OutageProxy InFrontOf(string connectionString, IWebHostBuilder builder)
    {
        var direct = new NpgsqlConnectionStringBuilder(connectionString);
        var proxy = new OutageProxy(direct.Host!, direct.Port);
        builder.UseSetting("ConnectionStrings:Postgres", new NpgsqlConnectionStringBuilder(connectionString) { Host = "127.0.0.1", Port = proxy.Port }.ConnectionString);
        return proxy;
    }

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

    /// <summary>
    /// Loses one answer, as a network that drops in the middle of a commit does: the first simple
    /// <c>COMMIT</c> on a connection whose transaction sent <paramref name="marker"/> (text or a
    /// parameter's value) reaches the server, which commits, but its answer never comes back: the
    /// connection is reset instead. Completes once that happened.
    /// </summary>
    public Task LoseCommitAnswerAsync(string marker) => LoseAnswer(new LostAnswer(Encoding.UTF8.GetBytes(marker), AtCommit: true));

    /// <summary>
    /// The same for a statement that commits by itself: the first request that carries
    /// <paramref name="marker"/> runs, and its answer never comes back.
    /// </summary>
    public Task LoseAnswerAsync(string marker) => LoseAnswer(new LostAnswer(Encoding.UTF8.GetBytes(marker), AtCommit: false));

    private Task LoseAnswer(LostAnswer armed)
    {
        Interlocked.Exchange(ref lostAnswer, armed)?.Done.TrySetCanceled();
        return armed.Done.Task;
    }

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
            var link = new Link(client, upstream);
            await Task.WhenAny(
                Pump(client, upstream, request => WatchRequest(link, request)),
                Pump(upstream, client, _ => PassAnswer(link)));
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

    // Passes on what one end sends while `pass` says so.
    private async Task Pump(TcpClient from, TcpClient to, Func<Span<byte>, bool> pass)
    {
        var buffer = new byte[16384];
        var source = from.GetStream();
        var target = to.GetStream();
        int read;
        while ((read = await source.ReadAsync(buffer, stopping.Token)) > 0 && pass(buffer.AsSpan(0, read)))
        {
            await target.WriteAsync(buffer.AsMemory(0, read), stopping.Token);
        }
    }

    // A request on its way to the server: is it the one whose answer is to be lost?
    private bool WatchRequest(Link link, Span<byte> request)
    {
        if (lostAnswer is { } armed)
        {
            var marked = request.IndexOf(armed.Marker) >= 0;
            link.SentMarker |= marked;
            var commit = request.SequenceEqual(CommitQuery);
            if ((armed.AtCommit ? commit && link.SentMarker : marked) && Interlocked.CompareExchange(ref lostAnswer, null, armed) == armed)
            {
                link.LoseAnswer = armed;
            }

            link.SentMarker &= !commit;
        }

        return true;
    }

    // An answer on its way to the client: passed on, unless it is the one to lose.
    private static bool PassAnswer(Link link)
    {
        if (link.LoseAnswer is not { } lost)
        {
            return true;
        }

        // The server has answered, so it has committed; the client never hears of it.
        Reset(link.Client);
        Reset(link.Upstream);
        lost.Done.TrySetResult();
        return false;
    }

    // A simple-protocol Query message of "COMMIT": how Npgsql commits a transaction.
    private static readonly byte[] CommitQuery = [(byte)'Q', 0, 0, 0, 11, .. "COMMIT"u8, 0];

    private sealed record LostAnswer(byte[] Marker, bool AtCommit)
    {
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private sealed class Link(TcpClient client, TcpClient upstream)
    {
        public TcpClient Client { get; } = client;

        public TcpClient Upstream { get; } = upstream;

        public bool SentMarker { get; set; }

        // Set before the COMMIT is passed on, read once the server answers it.
        public LostAnswer? LoseAnswer { get; set; }
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
