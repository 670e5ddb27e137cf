using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;

namespace TaskDashboard.Tests.Infrastructure;

/// <summary>
/// A SignalR client of /hubs/tasks that subscribes and then stops reading: a raw WebSocket speaking
/// the JSON hub protocol over a socket with a 4 KB receive buffer. The server's side still takes
/// ~4 MB into its socket's send buffer (the kernel grows it on loopback) before its writes back up,
/// so a test must send more than that. (The .NET SignalR client cannot stall this way: it keeps
/// reading into an unbounded queue even when its handlers block.)
/// </summary>
public sealed class StalledHubClient : IAsyncDisposable
{
    private const char RecordSeparator = '\u001e';
    private readonly ClientWebSocket socket;
    private readonly HttpMessageInvoker invoker;
    private readonly StringBuilder pending = new();
    private int invocations;

    private StalledHubClient(ClientWebSocket socket, HttpMessageInvoker invoker) => (this.socket, this.invoker) = (socket, invoker);

    public static async Task<StalledHubClient> ConnectAsync(Uri baseAddress, string apiKey, CancellationToken cancellationToken)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (context, token) =>
            {
                var tcp = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, ReceiveBufferSize = 4096 };
                try
                {
                    await tcp.ConnectAsync(context.DnsEndPoint, token);
                    return new NetworkStream(tcp, ownsSocket: true);
                }
                catch
                {
                    tcp.Dispose();
                    throw;
                }
            },
        };
        var invoker = new HttpMessageInvoker(handler);
        var socket = new ClientWebSocket();
        socket.Options.SetRequestHeader("Authorization", $"Bearer {apiKey}");
        var url = new UriBuilder(new Uri(baseAddress, "/hubs/tasks")) { Scheme = baseAddress.Scheme == "https" ? "wss" : "ws" }.Uri;
        await socket.ConnectAsync(url, invoker, cancellationToken);
        var client = new StalledHubClient(socket, invoker);
        await client.SendAsync("""{"protocol":"json","version":1}""", cancellationToken);
        var handshake = await client.ReadRecordAsync(cancellationToken);
        if (handshake != "{}")
        {
            throw new InvalidOperationException($"The hub refused the handshake: {handshake}");
        }

        return client;
    }

    /// <summary>Invokes a hub method (arguments as JSON) and reads until its completion; after this the client reads nothing more.</summary>
    public async Task InvokeAsync(string target, string argumentsJson, CancellationToken cancellationToken)
    {
        var id = (++invocations).ToString(System.Globalization.CultureInfo.InvariantCulture);
        await SendAsync($$"""{"type":1,"invocationId":"{{id}}","target":"{{target}}","arguments":{{argumentsJson}}}""", cancellationToken);
        while (await ReadRecordAsync(cancellationToken) is var record && !(record.Contains("\"type\":3") && record.Contains($"\"invocationId\":\"{id}\"")))
        {
        }
    }

    private Task SendAsync(string json, CancellationToken cancellationToken) =>
        socket.SendAsync(Encoding.UTF8.GetBytes(json + RecordSeparator), WebSocketMessageType.Text, endOfMessage: true, cancellationToken);

    // Hub messages end with a record separator; a WebSocket message may carry several. Reads one
    // byte at a time so that nothing past the record it needs is taken off the socket.
    private async Task<string> ReadRecordAsync(CancellationToken cancellationToken)
    {
        var buffer = new byte[1];
        while (true)
        {
            var text = pending.ToString();
            var end = text.IndexOf(RecordSeparator);
            if (end >= 0)
            {
                pending.Remove(0, end + 1);
                return text[..end];
            }

            var result = await socket.ReceiveAsync(buffer, cancellationToken);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                throw new InvalidOperationException("The hub closed the connection.");
            }

            pending.Append((char)buffer[0]);
        }
    }

    public ValueTask DisposeAsync()
    {
        socket.Abort();
        socket.Dispose();
        invoker.Dispose();
        return ValueTask.CompletedTask;
    }
}
