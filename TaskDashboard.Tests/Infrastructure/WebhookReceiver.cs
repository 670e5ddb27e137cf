using System.Net;
using System.Threading.Channels;

namespace TaskDashboard.Tests.Infrastructure;

/// <summary>One POST as the receiver saw it.</summary>
public sealed record ReceivedWebhook(int Number, string Id, string Timestamp, string Signature, string Body, DateTimeOffset At);

/// <summary>
/// A real HTTP receiver on a loopback port. <see cref="Respond"/> decides each answer from the
/// request's number (1, 2, …): a status code, after an optional delay.
/// </summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly HttpListener listener;
    private readonly CancellationTokenSource stopping = new();
    private readonly Channel<ReceivedWebhook> arrivals = Channel.CreateUnbounded<ReceivedWebhook>();
    private readonly List<ReceivedWebhook> received = [];
    private readonly Task loop;
    private int count;

    public WebhookReceiver(Func<int, Task<int>>? respond = null)
    {
        Respond = respond ?? (_ => Task.FromResult(200));
        for (var attempt = 0; ; attempt++)
        {
            // A listener whose Start failed (the port was taken) is closed: try again with a new one.
            Port = Random.Shared.Next(20_000, 60_000);
            var candidate = new HttpListener();
            candidate.Prefixes.Add($"http://127.0.0.1:{Port}/");
            try
            {
                candidate.Start();
                listener = candidate;
                break;
            }
            catch (HttpListenerException) when (attempt < 20)
            {
                candidate.Close();
            }
        }

        loop = Task.Run(AcceptAsync);
    }

    public int Port { get; }

    public string Url => $"http://127.0.0.1:{Port}/hook";

    public Func<int, Task<int>> Respond { get; set; }

    public IReadOnlyList<ReceivedWebhook> Received
    {
        get
        {
            lock (received)
            {
                return [.. received];
            }
        }
    }

    /// <summary>Waits for the next request to arrive (before it is answered).</summary>
    public async Task<ReceivedWebhook> NextAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        return await arrivals.Reader.ReadAsync(timeout.Token);
    }

    private async Task AcceptAsync()
    {
        while (!stopping.IsCancellationRequested)
        {
            HttpListenerContext context;
            try
            {
                context = await listener.GetContextAsync();
            }
            catch (Exception) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (HttpListenerException)
            {
                return;
            }

            _ = Task.Run(() => HandleAsync(context));
        }
    }

    private async Task HandleAsync(HttpListenerContext context)
    {
        var number = Interlocked.Increment(ref count);
        using var reader = new StreamReader(context.Request.InputStream);
        var webhook = new ReceivedWebhook(
            number,
            context.Request.Headers["webhook-id"] ?? "",
            context.Request.Headers["webhook-timestamp"] ?? "",
            context.Request.Headers["webhook-signature"] ?? "",
            await reader.ReadToEndAsync(),
            DateTimeOffset.UtcNow);
        lock (received)
        {
            received.Add(webhook);
        }

        arrivals.Writer.TryWrite(webhook);
        try
        {
            context.Response.StatusCode = await Respond(number);
            context.Response.Close();
        }
        catch (Exception)
        {
            // The sender gave up (timeout) or went away (killed): nothing to answer.
        }
    }

    public async ValueTask DisposeAsync()
    {
        stopping.Cancel();
        listener.Close();
        await loop;
        stopping.Dispose();
    }
}
