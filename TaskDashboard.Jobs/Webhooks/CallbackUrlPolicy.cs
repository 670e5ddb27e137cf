using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Options;

namespace TaskDashboard.Jobs.Webhooks;

/// <summary>
/// Which callback URLs may receive traffic: http(s), no credentials, and a host whose addresses are
/// all public (loopback and private ranges only when configured; the metadata address never). The
/// address check runs on submit and again on every connection, so DNS rebinding gains nothing.
/// </summary>
public sealed class CallbackUrlPolicy(IOptionsMonitor<WebhookOptions> options)
{
    public const int MaxLength = 2048;

    private static readonly IPAddress[] MetadataAddresses = [IPAddress.Parse("169.254.169.254"), IPAddress.Parse("fd00:ec2::254")];

    /// <summary>Null when the URL is acceptable, else why not (for a 400).</summary>
    public async Task<string?> CheckAsync(string url, CancellationToken cancellationToken)
    {
        if (url.Length > MaxLength || !Uri.TryCreate(url, UriKind.Absolute, out var uri))
        {
            return $"The callback URL must be an absolute http or https URL of at most {MaxLength} characters.";
        }

        if (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)
        {
            return "The callback URL must use http or https.";
        }

        if (!string.IsNullOrEmpty(uri.UserInfo))
        {
            return "The callback URL must not contain a user name or password.";
        }

        if (!string.IsNullOrEmpty(uri.Fragment))
        {
            return "The callback URL must not contain a fragment (#…).";
        }

        IPAddress[] addresses;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(options.CurrentValue.DnsTimeout);
            addresses = await ResolveAsync(uri.IdnHost, timeout.Token);
        }
        catch (Exception exception) when (exception is SocketException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return $"The callback URL's host '{uri.Host}' could not be resolved.";
        }

        return addresses.Length == 0
            ? $"The callback URL's host '{uri.Host}' has no address."
            : addresses.FirstOrDefault(a => !IsAllowed(a)) is { } refused
                ? $"The callback URL's host '{uri.Host}' resolves to {refused}, an address callbacks may not reach (loopback, private, link-local or metadata)."
                : null;
    }

    /// <summary>The addresses of <paramref name="host"/> (itself when it is an IP literal), or none when any of them is not allowed.</summary>
    public async Task<IPAddress[]> ResolveAllowedAsync(string host, CancellationToken cancellationToken)
    {
        var addresses = await ResolveAsync(host, cancellationToken);
        return addresses.All(IsAllowed) ? addresses : [];
    }

    private static async Task<IPAddress[]> ResolveAsync(string host, CancellationToken cancellationToken) =>
        IPAddress.TryParse(host, out var literal) ? [literal] : await Dns.GetHostAddressesAsync(host, cancellationToken);

    /// <summary>Whether a connection to <paramref name="address"/> is allowed.</summary>
    public bool IsAllowed(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (MetadataAddresses.Contains(address))
        {
            return false;
        }

        if (IPAddress.IsLoopback(address))
        {
            return options.CurrentValue.AllowLoopback;
        }

        return !IsInternal(address) || options.CurrentValue.AllowPrivateNetworks;
    }

    private static bool IsInternal(IPAddress address)
    {
        if (address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any) || address.Equals(IPAddress.None))
        {
            return true;
        }

        if (address.AddressFamily == AddressFamily.InterNetworkV6)
        {
            var bytes = address.GetAddressBytes();
            return address.IsIPv6LinkLocal || address.IsIPv6SiteLocal || address.IsIPv6Multicast
                || (bytes[0] & 0xFE) == 0xFC;   // fc00::/7, unique local
        }

        var b = address.GetAddressBytes();
        return b[0] == 10                                  // 10.0.0.0/8
            || b[0] == 0                                   // 0.0.0.0/8
            || (b[0] == 172 && (b[1] & 0xF0) == 16)        // 172.16.0.0/12
            || (b[0] == 192 && b[1] == 168)                // 192.168.0.0/16
            || (b[0] == 169 && b[1] == 254)                // link-local
            || (b[0] == 100 && (b[1] & 0xC0) == 64)        // 100.64.0.0/10, carrier-grade NAT
            || b[0] >= 224;                                // multicast and reserved
    }
}
