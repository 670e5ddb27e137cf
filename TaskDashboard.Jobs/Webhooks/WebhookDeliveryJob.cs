using Hangfire;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace TaskDashboard.Jobs.Webhooks;

/// <summary>
/// One attempt of one delivery, as its own Hangfire job. Safe to run twice (a worker killed
/// mid-POST gets its job run again): the same attempt is sent again with the same
/// <c>webhook-id</c>, and only the first to report back moves the delivery on.
/// </summary>
public sealed class WebhookDeliveryJob(
    WebhookStore store,
    WebhookSigner signer,
    WebhookSender sender,
    IOptionsMonitor<WebhookOptions> options,
    TimeProvider time,
    ILogger<WebhookDeliveryJob> logger)
{
    [AutomaticRetry(Attempts = 0, OnAttemptsExceeded = AttemptsExceededAction.Delete)]
    public async Task RunAsync(Guid deliveryId, int attempt, CancellationToken cancellationToken)
    {
        if (await store.ClaimAttemptAsync(deliveryId, attempt, cancellationToken) is not var (url, payload, webhookId))
        {
            return;
        }

        var now = time.GetUtcNow();
        var timestamp = now.ToUnixTimeSeconds();
        var signature = await signer.SignAsync(webhookId, timestamp, payload, cancellationToken);
        var result = await sender.SendAsync(url, webhookId, timestamp, signature, payload, cancellationToken);

        var delays = options.CurrentValue.GetRetryDelays() ?? [];
        var (status, retryAt) = result switch
        {
            { Delivered: true } => ("Delivered", (DateTimeOffset?)null),
            { StatusCode: 410 } => ("Gone", null),
            _ when attempt <= delays.Length => ("Pending", time.GetUtcNow() + Jittered(delays[attempt - 1])),
            _ => ("Failed", null),
        };
        await store.RecordAttemptAsync(deliveryId, attempt, now, result, status, retryAt, CancellationToken.None);
        logger.LogInformation(
            "Webhook {WebhookId} attempt {Attempt} to {Url}: {StatusCode} {Error} -> {Status}",
            webhookId, attempt, url, result.StatusCode, result.Error, status);
    }

    private TimeSpan Jittered(TimeSpan delay)
    {
        var jitter = options.CurrentValue.RetryJitter;
        return delay * (1 + ((Random.Shared.NextDouble() * 2) - 1) * jitter);
    }
}
