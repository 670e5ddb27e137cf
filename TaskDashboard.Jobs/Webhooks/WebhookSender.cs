using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Options;

namespace TaskDashboard.Jobs.Webhooks;

/// <summary>The outcome of one POST: the status code, or the error that stopped it.</summary>
public sealed record WebhookAttemptResult(int? StatusCode, TimeSpan Duration, string? Error)
{
    public bool Delivered => StatusCode is >= 200 and < 300;
}

/// <summary>
/// Sends one signed POST. Connections go only to addresses the <see cref="CallbackUrlPolicy"/>
/// allows, checked when connecting (a name that resolved to a public address on submit and to an
/// internal one now gets nothing); redirects are not followed.
/// </summary>
public sealed class WebhookSender : IDisposable
{
    private readonly HttpClient client;
    private readonly IOptionsMonitor<WebhookOptions> options;

    public WebhookSender(CallbackUrlPolicy policy, IOptionsMonitor<WebhookOptions> options)
    {
        this.options = options;
        var handler = new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            UseCookies = false,
            UseProxy = false,
            PooledConnectionLifetime = TimeSpan.FromMinutes(2),
            ConnectCallback = async (context, cancellationToken) =>
            {
                var host = context.DnsEndPoint.Host;
                var allowed = await policy.ResolveAllowedAsync(host, cancellationToken);
                if (allowed.Length == 0)
                {
                    throw new WebhookRefusedException($"'{host}' resolves to an address callbacks may not reach.");
                }

                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    await socket.ConnectAsync(allowed, context.DnsEndPoint.Port, cancellationToken);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        client = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        client.DefaultRequestHeaders.UserAgent.ParseAdd("TaskDashboard-Webhooks/1.0");
    }

    public async Task<WebhookAttemptResult> SendAsync(string url, string webhookId, long timestamp, string signature, string body, CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.CurrentValue.Timeout);
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            request.Headers.Add("webhook-id", webhookId);
            request.Headers.Add("webhook-timestamp", timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture));
            request.Headers.Add("webhook-signature", signature);
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            return new WebhookAttemptResult((int)response.StatusCode, watch.Elapsed, response.IsSuccessStatusCode ? null : $"The receiver answered {(int)response.StatusCode} {response.ReasonPhrase}.");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new WebhookAttemptResult(null, watch.Elapsed, $"No answer within {options.CurrentValue.Timeout.TotalSeconds:0.#} s.");
        }
        catch (HttpRequestException exception)
        {
            var refused = exception.InnerException as WebhookRefusedException ?? exception.InnerException?.InnerException as WebhookRefusedException;
            return new WebhookAttemptResult(null, watch.Elapsed, refused?.Message ?? exception.Message);
        }
    }

    public void Dispose() => client.Dispose();
}

/// <summary>The callback's address is not one callbacks may reach.</summary>
public sealed class WebhookRefusedException(string message) : Exception(message);
