using System.ComponentModel.DataAnnotations;

namespace TaskDashboard.Jobs.Webhooks;

/// <summary>How task-end callbacks are signed, sent and retried (section <c>Webhooks</c>).</summary>
public sealed class WebhookOptions
{
    public const string SectionName = "Webhooks";

    /// <summary>
    /// The signing secret, Standard Webhooks style: <c>whsec_</c> + base64 of at least 24 bytes. Empty:
    /// one is generated once and kept in PostgreSQL (ops read it at <c>GET /api/webhooks/secret</c>).
    /// </summary>
    public string? Secret { get; set; }

    /// <summary>How long one delivery attempt may take (connect, send, answer).</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:05:00")]
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Waits before the 2nd, 3rd, … attempt, comma-separated; one attempt more than there are delays.
    /// The default spreads 8 attempts over about 28 hours.
    /// </summary>
    [Required]
    public string RetrySchedule { get; set; } = "00:00:05, 00:05:00, 00:30:00, 02:00:00, 05:00:00, 10:00:00, 10:00:00";

    /// <summary><see cref="RetrySchedule"/> as delays; null when it does not parse or a delay is outside 0 – 7 days.</summary>
    public TimeSpan[]? GetRetryDelays()
    {
        var delays = new List<TimeSpan>();
        foreach (var part in RetrySchedule.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (!TimeSpan.TryParse(part, System.Globalization.CultureInfo.InvariantCulture, out var delay) || delay < TimeSpan.Zero || delay > TimeSpan.FromDays(7))
            {
                return null;
            }

            delays.Add(delay);
        }

        return [.. delays];
    }

    /// <summary>Each delay is stretched or shrunk at random by up to this fraction, so receivers are not hit in waves.</summary>
    [Range(0.0, 1.0)]
    public double RetryJitter { get; set; } = 0.2;

    /// <summary>How often each process looks for deliveries that are due.</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:01:00")]
    public TimeSpan DispatchInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Due deliveries each process turns into jobs per transaction; a full batch is followed by the next at once.</summary>
    [Range(1, 10_000)]
    public int DispatchBatchSize { get; set; } = 50;

    /// <summary>A delivery whose attempt has not reported back after this long (its worker died) is tried again.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan InFlightTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>Allow callback URLs on loopback addresses (local development and tests).</summary>
    public bool AllowLoopback { get; set; }

    /// <summary>Allow callback URLs on private, link-local and other internal ranges (never the cloud metadata address).</summary>
    public bool AllowPrivateNetworks { get; set; }

    /// <summary>How long resolving a callback URL's host may take on submit.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:01:00")]
    public TimeSpan DnsTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Where receivers reach this app, for the <c>resultUrl</c> in payloads (e.g. <c>https://tasks.example.com</c>); empty: a path only.</summary>
    public string? PublicBaseUrl { get; set; }
}
