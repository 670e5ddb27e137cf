using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using TaskDashboard.Jobs.Database;

namespace TaskDashboard.Jobs.Webhooks;

/// <summary>
/// Standard Webhooks signatures: <c>webhook-signature: v1,base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}"))</c>,
/// with the secret given as <c>whsec_</c> + base64. The secret comes from configuration or is
/// generated once and kept in PostgreSQL, so every node signs alike.
/// </summary>
public sealed class WebhookSigner(SharedSecrets secrets, IOptions<WebhookOptions> options)
{
    public const string SecretPrefix = "whsec_";
    private const string SecretName = "webhook-signing-secret";
    private readonly SemaphoreSlim loading = new(1, 1);
    private string? secret;

    /// <summary>The secret in its shareable form (<c>whsec_…</c>).</summary>
    public async Task<string> GetSecretAsync(CancellationToken cancellationToken)
    {
        if (secret is not null)
        {
            return secret;
        }

        await loading.WaitAsync(cancellationToken);
        try
        {
            return secret ??= string.IsNullOrEmpty(options.Value.Secret) ? await LoadOrCreateAsync(cancellationToken) : options.Value.Secret;
        }
        finally
        {
            loading.Release();
        }
    }

    public async Task<string> SignAsync(string webhookId, long timestamp, string body, CancellationToken cancellationToken) =>
        Sign(await GetSecretAsync(cancellationToken), webhookId, timestamp, body);

    /// <summary>The signature a receiver computes to check a delivery (see the README for a receiver's code).</summary>
    public static string Sign(string secret, string webhookId, long timestamp, string body)
    {
        var key = Convert.FromBase64String(secret.StartsWith(SecretPrefix, StringComparison.Ordinal) ? secret[SecretPrefix.Length..] : secret);
        var mac = HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"{webhookId}.{timestamp}.{body}"));
        return "v1," + Convert.ToBase64String(mac);
    }

    public static bool IsValidSecret(string value)
    {
        var encoded = value.StartsWith(SecretPrefix, StringComparison.Ordinal) ? value[SecretPrefix.Length..] : value;
        var buffer = new byte[encoded.Length];
        return Convert.TryFromBase64String(encoded, buffer, out var length) && length >= 24;
    }

    private async Task<string> LoadOrCreateAsync(CancellationToken cancellationToken) =>
        SecretPrefix + Convert.ToBase64String(await secrets.GetOrCreateAsync(SecretName, 32, cancellationToken));
}
