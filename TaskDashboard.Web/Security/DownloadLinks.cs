using System.Buffers.Text;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using TaskDashboard.Jobs.Database;

namespace TaskDashboard.Web.Security;

/// <summary>
/// Signed, expiring result links that a plain <c>curl</c> can fetch without a key:
/// <c>/api/tasks/{id}/result?expires={unix seconds}&amp;signature={HMAC-SHA256 of "id.expires", base64url}</c>.
/// The key comes from <see cref="SecurityOptions.DownloadSigningKey"/> or is generated once and kept
/// in PostgreSQL, so a link made by one node is honoured by every other.
/// </summary>
public sealed class DownloadLinks(SharedSecrets secrets, IOptions<SecurityOptions> options, TimeProvider time)
{
    private const string SecretName = "download-link-signing-key";
    private byte[]? key;

    public enum Verdict { Valid, Expired, BadSignature }

    public (string Url, DateTimeOffset ExpiresAt) Create(Guid taskId)
    {
        var expires = time.GetUtcNow().Add(options.Value.DownloadLinkLifetime);
        var seconds = expires.ToUnixTimeSeconds();
        return ($"/api/tasks/{taskId}/result?expires={seconds.ToString(CultureInfo.InvariantCulture)}&signature={Sign(taskId, seconds)}",
            DateTimeOffset.FromUnixTimeSeconds(seconds));
    }

    public Verdict Check(Guid taskId, string? expires, string? signature)
    {
        if (!long.TryParse(expires, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds) || string.IsNullOrEmpty(signature))
        {
            return Verdict.BadSignature;
        }

        var expected = Encoding.ASCII.GetBytes(Sign(taskId, seconds));
        var given = Encoding.ASCII.GetBytes(signature);
        if (!CryptographicOperations.FixedTimeEquals(expected, given))
        {
            return Verdict.BadSignature;
        }

        return time.GetUtcNow().ToUnixTimeSeconds() < seconds ? Verdict.Valid : Verdict.Expired;
    }

    /// <summary>Loads (or creates) the signing key; called once at start-up, after migrations.</summary>
    public async Task InitializeAsync(CancellationToken cancellationToken)
    {
        if (!string.IsNullOrEmpty(options.Value.DownloadSigningKey))
        {
            key = Convert.FromBase64String(options.Value.DownloadSigningKey);
            return;
        }

        key = await secrets.GetOrCreateAsync(SecretName, 32, cancellationToken);
    }

    private string Sign(Guid taskId, long expires)
    {
        var signingKey = key ?? throw new InvalidOperationException("DownloadLinks.InitializeAsync has not run.");
        var mac = HMACSHA256.HashData(signingKey, Encoding.ASCII.GetBytes($"{taskId:N}.{expires.ToString(CultureInfo.InvariantCulture)}"));
        return Base64Url.EncodeToString(mac);
    }
}
