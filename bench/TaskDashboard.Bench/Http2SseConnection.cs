using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace TaskDashboard.Bench;

/// <summary>
/// A minimal HTTP/2 client (cleartext, prior knowledge) for many SSE streams on one connection, for
/// bench/subscribers only. HttpClient's HTTP/2 client spent ~30 µs of CPU per event per stream,
/// 2.5 times what the node under test spent sending it (half of it collecting the 16 KB buffer each
/// stream allocates per received frame); on one 2-core machine that time delays every delivery.
/// This one reads each connection's frames on one loop into one buffer and only looks for the SSE
/// fields the benchmark needs. It speaks just enough HTTP/2 for that: it advertises 1 GiB flow-control
/// windows so it never has to send WINDOW_UPDATE, acknowledges SETTINGS and PING, and treats any
/// response status but 200, RST_STREAM or GOAWAY as a failed stream.
/// </summary>
internal sealed class Http2SseConnection : IAsyncDisposable
{
    private const int MaxWindow = 1 << 30;
    private const byte Data = 0x0, Headers = 0x1, RstStream = 0x3, Settings = 0x4, Ping = 0x6, GoAway = 0x7, WindowUpdate = 0x8;
    private const byte EndStream = 0x1, Ack = 0x1, EndHeaders = 0x4, Padded = 0x8, Priority = 0x20;

    private readonly Socket socket;
    private readonly string authority;
    private readonly SemaphoreSlim sendLock = new(1, 1);
    private readonly Dictionary<int, SseStream> streams = [];
    private readonly Action<long, string, DateTimeOffset> onEvent;
    private readonly Task reading;
    private int nextStreamId = 1;

    private Http2SseConnection(Socket socket, string authority, Action<long, string, DateTimeOffset> onEvent)
    {
        this.socket = socket;
        this.authority = authority;
        this.onEvent = onEvent;
        reading = Task.Run(ReadLoopAsync);
    }

    /// <summary>Connects and sends the preface. <paramref name="onEvent"/> gets (id, event name, the data's "at") of every event on every stream, on this connection's read loop.</summary>
    public static async Task<Http2SseConnection> ConnectAsync(Uri url, Action<long, string, DateTimeOffset> onEvent)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Parse(url.Host.Trim('[', ']').Replace("localhost", "127.0.0.1", StringComparison.Ordinal)), url.Port));
        var preface = new List<byte>("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray());
        // SETTINGS: ENABLE_PUSH = 0, INITIAL_WINDOW_SIZE = 1 GiB; then the connection window to 1 GiB too.
        preface.AddRange(Frame(Settings, 0, 0, [0, 2, 0, 0, 0, 0, 0, 4, .. BigEndian(MaxWindow)]));
        preface.AddRange(Frame(WindowUpdate, 0, 0, BigEndian(MaxWindow - 65_535)));
        await socket.SendAsync(preface.ToArray());
        return new Http2SseConnection(socket, url.Authority, onEvent);
    }

    /// <summary>
    /// Opens a GET stream; the first task completes when its 200 response headers arrive, the second
    /// when the node ends the stream.
    /// </summary>
    public async Task<(Task Opened, Task Ended)> OpenAsync(string path, string bearerToken)
    {
        var block = new List<byte> { 0x82, 0x86 }; // :method GET, :scheme http (static table)
        Literal(block, 1, authority); // :authority
        Literal(block, 4, path); // :path
        Literal(block, 19, "text/event-stream"); // accept
        Literal(block, 23, $"Bearer {bearerToken}"); // authorization
        var stream = new SseStream();
        await sendLock.WaitAsync();
        try
        {
            var id = nextStreamId;
            nextStreamId += 2;
            lock (streams)
            {
                streams[id] = stream;
            }

            await socket.SendAsync(Frame(Headers, EndStream | EndHeaders, id, [.. block]));
        }
        finally
        {
            sendLock.Release();
        }

        return (stream.Opened.Task, stream.Ended.Task);
    }

    public async ValueTask DisposeAsync()
    {
        socket.Dispose();
        try
        {
            await reading;
        }
        catch (Exception)
        {
            // The socket was closed under the read loop.
        }
    }

    private async Task ReadLoopAsync()
    {
        var buffer = new byte[1 << 20];
        var filled = 0;
        try
        {
            while (true)
            {
                var read = await socket.ReceiveAsync(buffer.AsMemory(filled));
                if (read == 0)
                {
                    throw new IOException("The node closed the connection.");
                }

                filled += read;
                var offset = 0;
                while (filled - offset >= 9)
                {
                    var length = (buffer[offset] << 16) | (buffer[offset + 1] << 8) | buffer[offset + 2];
                    if (length > buffer.Length - 9)
                    {
                        throw new InvalidDataException($"A frame of {length} bytes.");
                    }

                    if (filled - offset < 9 + length)
                    {
                        break;
                    }

                    var (type, flags) = (buffer[offset + 3], buffer[offset + 4]);
                    var streamId = BinaryPrimitives.ReadInt32BigEndian(buffer.AsSpan(offset + 5)) & int.MaxValue;
                    await OnFrameAsync(type, flags, streamId, buffer.AsMemory(offset + 9, length));
                    offset += 9 + length;
                }

                buffer.AsSpan(offset, filled - offset).CopyTo(buffer);
                filled -= offset;
            }
        }
        catch (Exception exception)
        {
            lock (streams)
            {
                foreach (var stream in streams.Values)
                {
                    stream.Fail(exception);
                }

                streams.Clear();
            }
        }
    }

    private async Task OnFrameAsync(byte type, byte flags, int streamId, Memory<byte> payload)
    {
        switch (type)
        {
            case Settings when (flags & Ack) == 0:
                await SendAsync(Frame(Settings, Ack, 0, []));
                return;
            case Ping when (flags & Ack) == 0:
                await SendAsync(Frame(Ping, Ack, 0, payload.ToArray()));
                return;
            case GoAway:
                throw new IOException("The node sent GOAWAY.");
        }

        SseStream? stream;
        lock (streams)
        {
            streams.TryGetValue(streamId, out stream);
        }

        if (stream is null || streamId == 0)
        {
            return;
        }

        var body = Unpad(payload.Span, flags);
        switch (type)
        {
            case Headers:
                if ((flags & Priority) != 0)
                {
                    body = body[5..];
                }

                // Kestrel sends ":status: 200" as static table entry 8 first.
                if (body.IsEmpty || body[0] != 0x88)
                {
                    Remove(streamId).Fail(new HttpRequestException($"Stream {streamId}: the response status is not 200."));
                    return;
                }

                stream.Opened.TrySetResult();
                break;
            case Data:
                stream.Append(body, onEvent);
                break;
            case RstStream:
                Remove(streamId).Fail(new IOException($"The node reset stream {streamId}."));
                return;
        }

        if ((flags & EndStream) != 0 && type is Headers or Data)
        {
            Remove(streamId).Ended.TrySetResult();
        }
    }

    private SseStream Remove(int streamId)
    {
        lock (streams)
        {
            streams.Remove(streamId, out var stream);
            return stream!;
        }
    }

    private async Task SendAsync(byte[] frame)
    {
        await sendLock.WaitAsync();
        try
        {
            await socket.SendAsync(frame);
        }
        finally
        {
            sendLock.Release();
        }
    }

    private static ReadOnlySpan<byte> Unpad(ReadOnlySpan<byte> payload, byte flags) =>
        (flags & Padded) == 0 ? payload : payload[1..(payload.Length - payload[0])];

    private static byte[] Frame(byte type, byte flags, int streamId, byte[] payload)
    {
        var frame = new byte[9 + payload.Length];
        frame[0] = (byte)(payload.Length >> 16);
        frame[1] = (byte)(payload.Length >> 8);
        frame[2] = (byte)payload.Length;
        frame[3] = type;
        frame[4] = flags;
        BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(5), streamId);
        payload.CopyTo(frame, 9);
        return frame;
    }

    private static byte[] BigEndian(int value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(bytes, value);
        return bytes;
    }

    // HPACK "literal header field without indexing" with a static-table name, no Huffman coding.
    private static void Literal(List<byte> block, int nameIndex, string value)
    {
        Integer(block, 0x00, 4, nameIndex);
        var bytes = Encoding.ASCII.GetBytes(value);
        Integer(block, 0x00, 7, bytes.Length);
        block.AddRange(bytes);
    }

    private static void Integer(List<byte> block, byte flags, int prefixBits, int value)
    {
        var max = (1 << prefixBits) - 1;
        if (value < max)
        {
            block.Add((byte)(flags | value));
            return;
        }

        block.Add((byte)(flags | max));
        for (value -= max; value >= 128; value >>= 7)
        {
            block.Add((byte)((value & 0x7f) | 0x80));
        }

        block.Add((byte)value);
    }

    /// <summary>One stream's SSE parser: it keeps the id and event name until the data line.</summary>
    private sealed class SseStream
    {
        private readonly List<byte> partial = [];
        private long id;
        private string name = "";

        public TaskCompletionSource Opened { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Ended { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Fail(Exception exception)
        {
            Opened.TrySetException(exception);
            Ended.TrySetException(exception);
        }

        public void Append(ReadOnlySpan<byte> data, Action<long, string, DateTimeOffset> onEvent)
        {
            while (!data.IsEmpty)
            {
                var newline = data.IndexOf((byte)'\n');
                if (newline < 0)
                {
                    partial.AddRange(data);
                    return;
                }

                if (partial.Count > 0)
                {
                    partial.AddRange(data[..newline]);
                    OnLine([.. partial], onEvent);
                    partial.Clear();
                }
                else
                {
                    OnLine(data[..newline], onEvent);
                }

                data = data[(newline + 1)..];
            }
        }

        private void OnLine(ReadOnlySpan<byte> line, Action<long, string, DateTimeOffset> onEvent)
        {
            if (line.StartsWith("id: "u8))
            {
                id = long.Parse(line[4..], CultureInfo.InvariantCulture);
            }
            else if (line.StartsWith("event: "u8))
            {
                var value = line[7..];
                name = value.SequenceEqual("progress"u8) ? "progress" : Encoding.ASCII.GetString(value);
            }
            else if (line.StartsWith("data: "u8))
            {
                var at = line.IndexOf("\"at\":\""u8);
                if (at >= 0)
                {
                    var value = line[(at + 6)..];
                    value = value[..value.IndexOf((byte)'"')];
                    onEvent(id, name, DateTimeOffset.Parse(Encoding.ASCII.GetString(value), CultureInfo.InvariantCulture));
                }
            }
        }
    }
}
