using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;

namespace TaskDashboard.Web.Security;

/// <summary>
/// <c>Authorization: Bearer tdk_…</c>, or <c>?access_token=</c> on the hub (browsers' WebSockets and
/// EventSource cannot send headers). A checked key is trusted for
/// <see cref="SecurityOptions.ApiKeyCacheDuration"/> by this node.
/// </summary>
public sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> schemeOptions,
    ILoggerFactory loggerFactory,
    UrlEncoder encoder,
    ApiKeyCache cache) : AuthenticationHandler<AuthenticationSchemeOptions>(schemeOptions, loggerFactory, encoder)
{
    public const string SchemeName = "ApiKey";

    /// <summary>Whether the request carries an API key (then this scheme, not the cookie, decides).</summary>
    public static bool HasKey(HttpRequest request) =>
        request.Headers.Authorization.ToString().StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)
        || (request.Path.StartsWithSegments("/hubs") && request.Query.ContainsKey("access_token"));

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var header = Request.Headers.Authorization.ToString();
        var key = header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)
            ? header["Bearer ".Length..].Trim()
            : Request.Path.StartsWithSegments("/hubs") ? Request.Query["access_token"].ToString() : "";
        if (key.Length == 0)
        {
            return AuthenticateResult.NoResult();
        }

        var user = await cache.GetOrCheckAsync(key, Context.RequestAborted);
        if (user is null)
        {
            return AuthenticateResult.Fail("Unknown or revoked API key.");
        }

        var principal = new ClaimsPrincipal(CurrentUser.Identity(user, SchemeName));
        return AuthenticateResult.Success(new AuthenticationTicket(principal, SchemeName));
    }

    protected override Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = StatusCodes.Status401Unauthorized;
        Response.Headers.WWWAuthenticate = "Bearer";
        return Task.CompletedTask;
    }
}

/// <summary>Checked API keys per node, keyed by the key's hash; revoking on this node evicts at once.</summary>
public sealed class ApiKeyCache(AccountStore accounts, IOptionsMonitor<SecurityOptions> options) : IDisposable
{
    private readonly MemoryCache memory = new(new MemoryCacheOptions { SizeLimit = 10_000 });

    public async Task<UserAccount?> GetOrCheckAsync(string key, CancellationToken cancellationToken)
    {
        var cacheKey = CacheKey(key);
        if (memory.TryGetValue(cacheKey, out UserAccount? known))
        {
            return known;
        }

        var user = await accounts.FindUserByApiKeyAsync(key, cancellationToken);
        var lifetime = options.CurrentValue.ApiKeyCacheDuration;
        // Only good keys are remembered: a flood of bad ones must not fill the cache.
        if (user is not null && lifetime > TimeSpan.Zero)
        {
            memory.Set(cacheKey, user, new MemoryCacheEntryOptions { AbsoluteExpirationRelativeToNow = lifetime, Size = 1 });
        }

        return user;
    }

    /// <summary>Forgets every checked key (after a revocation: keys are cached by hash, not by id).</summary>
    public void Clear() => memory.Clear();

    public void Dispose() => memory.Dispose();

    private static string CacheKey(string key) => "apikey:" + Convert.ToBase64String(AccountStore.HashKey(key));
}
