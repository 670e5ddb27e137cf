using System.ComponentModel.DataAnnotations;

namespace TaskDashboard.Web.Security;

public sealed class SecurityOptions
{
    public const string SectionName = "Security";

    /// <summary>The role that sees every task and may open /hangfire.</summary>
    public const string OpsRole = "ops";

    /// <summary>User name of the admin created on the first start, when there are no users.</summary>
    [Required, RegularExpression(UserNamePattern)]
    public string AdminUserName { get; set; } = "admin";

    /// <summary>The first admin's password; when empty a random one is generated and printed once.</summary>
    public string? AdminPassword { get; set; }

    /// <summary>How long a signed download link (<c>downloadUrl</c>) stays valid.</summary>
    [Range(typeof(TimeSpan), "00:00:10", "30.00:00:00")]
    public TimeSpan DownloadLinkLifetime { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Base64 HMAC key for download links; empty: one generated key kept in PostgreSQL for all nodes.</summary>
    public string? DownloadSigningKey { get; set; }

    /// <summary>How long a dashboard sign-in lasts (sliding).</summary>
    [Range(typeof(TimeSpan), "00:01:00", "30.00:00:00")]
    public TimeSpan CookieLifetime { get; set; } = TimeSpan.FromHours(8);

    /// <summary>Send the sign-in cookie over HTTPS only. Leave off to use plain http on loopback (./run).</summary>
    public bool RequireHttpsCookies { get; set; }

    /// <summary>How long a checked API key is trusted by a node before PostgreSQL is asked again (revocation delay on other nodes).</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00")]
    public TimeSpan ApiKeyCacheDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Sign-in attempts allowed per client address and minute; more get 429.</summary>
    [Range(1, 10_000)]
    public int SignInAttemptsPerMinute { get; set; } = 10;

    /// <summary>Largest request body the server reads at all (submissions have their own, smaller limit).</summary>
    [Range(1024, 1024 * 1024 * 1024)]
    public long MaxRequestBodyBytes { get; set; } = 1024 * 1024;

    /// <summary>Shortest password accepted for new users.</summary>
    [Range(8, 128)]
    public int MinPasswordLength { get; set; } = 12;

    public const string UserNamePattern = "^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$";
}
