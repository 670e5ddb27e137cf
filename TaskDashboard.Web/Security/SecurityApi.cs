using System.Security.Claims;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;
using Npgsql;
using TaskDashboard.Jobs.Database;

namespace TaskDashboard.Web.Security;

public static class SecurityApi
{
    public const string OpsPolicy = "ops";
    public const string SignInRateLimit = "sign-in";
    private const string SmartScheme = "CookieOrApiKey";

    public static IHostApplicationBuilder AddSecurity(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<SecurityOptions>()
            .BindConfiguration(SecurityOptions.SectionName)
            .ValidateDataAnnotations()
            .Validate(o => string.IsNullOrEmpty(o.DownloadSigningKey) || IsKey(o.DownloadSigningKey), "Security:DownloadSigningKey must be base64 of at least 32 bytes.")
            .ValidateOnStart();
        var options = builder.Configuration.GetSection(SecurityOptions.SectionName).Get<SecurityOptions>() ?? new SecurityOptions();

        builder.Services.AddSingleton<AccountStore>();
        builder.Services.AddSingleton<ApiKeyCache>();
        builder.Services.AddSingleton<DownloadLinks>();
        builder.Services.AddHostedService<SecurityStartup>();

        // Every node reads every other node's cookies and antiforgery tokens.
        builder.Services.AddDataProtection().SetApplicationName("TaskDashboard");
        builder.Services.AddOptions<KeyManagementOptions>()
            .Configure<NpgsqlDataSource>((o, dataSource) => o.XmlRepository = new PostgresXmlRepository(dataSource));

        // A request with an API key is judged by it alone; anything else by the sign-in cookie.
        builder.Services.AddAuthentication(SmartScheme)
            .AddPolicyScheme(SmartScheme, "Cookie or API key", o => o.ForwardDefaultSelector = context =>
                ApiKeyAuthenticationHandler.HasKey(context.Request) ? ApiKeyAuthenticationHandler.SchemeName : CookieAuthenticationDefaults.AuthenticationScheme)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null)
            .AddCookie(o =>
            {
                o.Cookie.Name = "TaskDashboard.Auth";
                o.Cookie.HttpOnly = true;
                o.Cookie.SameSite = SameSiteMode.Lax;
                o.Cookie.SecurePolicy = options.RequireHttpsCookies ? CookieSecurePolicy.Always : CookieSecurePolicy.SameAsRequest;
                o.ExpireTimeSpan = options.CookieLifetime;
                o.SlidingExpiration = true;
                o.LoginPath = "/account/login";
                o.LogoutPath = "/account/logout";
                o.AccessDeniedPath = "/account/denied";
                // Programs get status codes, not a login page.
                o.Events.OnRedirectToLogin = context => RedirectOrStatus(context, StatusCodes.Status401Unauthorized);
                o.Events.OnRedirectToAccessDenied = context => RedirectOrStatus(context, StatusCodes.Status403Forbidden);
            });

        builder.Services.AddAuthorizationBuilder()
            .SetFallbackPolicy(new AuthorizationPolicyBuilder().RequireAuthenticatedUser().Build())
            .AddPolicy(OpsPolicy, policy => policy.RequireAuthenticatedUser().RequireRole(SecurityOptions.OpsRole));

        builder.Services.AddAntiforgery(o =>
        {
            o.Cookie.Name = "TaskDashboard.Antiforgery";
            // SecurityHeaders sends X-Frame-Options: DENY on every answer; a second value would be ambiguous.
            o.SuppressXFrameOptionsHeader = true;
            o.Cookie.SecurePolicy = options.RequireHttpsCookies ? CookieSecurePolicy.Always : CookieSecurePolicy.SameAsRequest;
        });

        builder.Services.AddRateLimiter(o =>
        {
            o.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            o.AddPolicy(SignInRateLimit, context => RateLimitPartition.GetFixedWindowLimiter(
                context.Connection.RemoteIpAddress?.ToString() ?? "unknown",
                _ => new FixedWindowRateLimiterOptions
                {
                    PermitLimit = context.RequestServices.GetRequiredService<IOptions<SecurityOptions>>().Value.SignInAttemptsPerMinute,
                    Window = TimeSpan.FromMinutes(1),
                }));
            // Every rate limit answers 429 with Retry-After and a problem document.
            o.OnRejected = async (context, cancellationToken) =>
            {
                var retryAfter = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)) : 60;
                context.HttpContext.Response.Headers.RetryAfter = retryAfter.ToString(System.Globalization.CultureInfo.InvariantCulture);
                await context.HttpContext.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
                {
                    HttpContext = context.HttpContext,
                    ProblemDetails = new ProblemDetails
                    {
                        Status = StatusCodes.Status429TooManyRequests,
                        Title = "Too many requests",
                        Detail = $"Too many requests in a short time; try again in {retryAfter} s.",
                    },
                });
            };
        });

        builder.Services.Configure<KestrelServerOptions>(o => o.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes);
        builder.Services.Configure<Microsoft.AspNetCore.Http.Features.FormOptions>(o =>
        {
            o.ValueLengthLimit = 4096;
            o.MultipartBodyLengthLimit = options.MaxRequestBodyBytes;
        });
        return builder;
    }

    /// <summary>Authentication, authorization, antiforgery, rate limits and security headers, in that order.</summary>
    public static IApplicationBuilder UseSecurity(this IApplicationBuilder app)
    {
        app.UseMiddleware<SecurityHeaders>();
        app.UseAuthentication();
        app.UseAuthorization();
        app.UseAntiforgery();
        app.UseRateLimiter();
        return app;
    }

    public static RouteGroupBuilder MapSecurity(this IEndpointRouteBuilder app)
    {
        var account = app.MapGroup("/account").WithTags("Account").ExcludeFromDescription();
        account.MapPost("/signin", SignInAsync).AllowAnonymous().RequireRateLimiting(SignInRateLimit);
        account.MapPost("/logout", SignOutAsync);

        var keys = app.MapGroup("/api/keys").WithTags("API keys");
        keys.MapGet("/", ListKeysAsync).WithName("ListApiKeys");
        keys.MapPost("/", CreateKeyAsync).WithName("CreateApiKey");
        keys.MapDelete("/{id:guid}", RevokeKeyAsync).WithName("RevokeApiKey");

        var users = app.MapGroup("/api/users").WithTags("Users").RequireAuthorization(OpsPolicy);
        users.MapGet("/", ListUsersAsync).WithName("ListUsers");
        users.MapPost("/", CreateUserAsync).WithName("CreateUser");
        return account;
    }

    /// <summary>The sign-in form's target: sets the cookie and goes back to where the user was headed.</summary>
    public static async Task<IResult> SignInAsync(
        [FromForm] string? userName, [FromForm] string? password, [FromForm] string? returnUrl,
        HttpContext context, AccountStore accounts, IOptions<SecurityOptions> options, CancellationToken cancellationToken)
    {
        var target = SafeReturnUrl(returnUrl);
        UserAccount? user;
        try
        {
            user = string.IsNullOrEmpty(userName) || string.IsNullOrEmpty(password) || userName.Length > 64 || password.Length > 256
                ? null
                : await accounts.CheckPasswordAsync(userName, password, cancellationToken);
        }
        catch (Exception exception) when (DatabasePools.IsUnreachable(exception))
        {
            // A person at a form gets the form back with the reason, not a problem document.
            return TypedResults.Redirect($"/account/login?unavailable=1&returnUrl={Uri.EscapeDataString(target)}");
        }

        if (user is null)
        {
            return TypedResults.Redirect($"/account/login?failed=1&returnUrl={Uri.EscapeDataString(target)}");
        }

        await context.SignInAsync(
            CookieAuthenticationDefaults.AuthenticationScheme,
            new ClaimsPrincipal(CurrentUser.Identity(user, CookieAuthenticationDefaults.AuthenticationScheme)),
            new AuthenticationProperties { IsPersistent = true });
        return TypedResults.Redirect(target);
    }

    public static async Task<IResult> SignOutAsync([FromForm] string? returnUrl, HttpContext context)
    {
        await context.SignOutAsync(CookieAuthenticationDefaults.AuthenticationScheme);
        return TypedResults.Redirect("/account/login");
    }

    public static async Task<Ok<IReadOnlyList<ApiKeyInfo>>> ListKeysAsync(ClaimsPrincipal user, AccountStore accounts, CancellationToken cancellationToken) =>
        TypedResults.Ok(await accounts.ListApiKeysAsync(user.Id(), cancellationToken));

    public static async Task<Results<Created<CreatedApiKey>, ValidationProblem>> CreateKeyAsync(
        CreateApiKeyRequest? request, ClaimsPrincipal user, AccountStore accounts, CancellationToken cancellationToken)
    {
        var name = request?.Name?.Trim();
        if (string.IsNullOrEmpty(name) || name.Length > 100)
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["name"] = ["Give the key a name of 1 to 100 characters."] });
        }

        var (info, key) = await accounts.CreateApiKeyAsync(user.Id(), name, cancellationToken);
        return TypedResults.Created($"/api/keys/{info.Id}", new CreatedApiKey(info, key));
    }

    public static async Task<Results<NoContent, ProblemHttpResult>> RevokeKeyAsync(
        Guid id, ClaimsPrincipal user, AccountStore accounts, ApiKeyCache cache, CancellationToken cancellationToken)
    {
        if (!await accounts.RevokeApiKeyAsync(user.Id(), id, cancellationToken))
        {
            return TypedResults.Problem($"You have no live API key {id}.", statusCode: StatusCodes.Status404NotFound, title: "API key not found");
        }

        cache.Clear();
        return TypedResults.NoContent();
    }

    public static async Task<Ok<IReadOnlyList<UserAccount>>> ListUsersAsync(AccountStore accounts, CancellationToken cancellationToken) =>
        TypedResults.Ok(await accounts.ListUsersAsync(cancellationToken));

    public static async Task<Results<Created<UserAccount>, ValidationProblem, ProblemHttpResult>> CreateUserAsync(
        CreateUserRequest? request, AccountStore accounts, IOptions<SecurityOptions> options, CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>();
        if (request?.UserName is not { } userName || !System.Text.RegularExpressions.Regex.IsMatch(userName, SecurityOptions.UserNamePattern))
        {
            errors["userName"] = ["A user name is 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit."];
        }

        if (request?.Password is not { } password || password.Length < options.Value.MinPasswordLength || password.Length > 256)
        {
            errors["password"] = [$"A password has {options.Value.MinPasswordLength} to 256 characters."];
        }

        var roles = request?.Roles ?? [];
        if (roles.Any(role => role != SecurityOptions.OpsRole))
        {
            errors["roles"] = [$"The only role is '{SecurityOptions.OpsRole}'."];
        }

        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors);
        }

        var user = await accounts.CreateUserAsync(request!.UserName!, request.Password!, roles.Distinct().ToList(), cancellationToken);
        return user is null
            ? TypedResults.Problem($"The user name '{request.UserName}' is taken.", statusCode: StatusCodes.Status409Conflict, title: "User exists")
            : TypedResults.Created($"/api/users/{user.Id}", user);
    }

    /// <summary>Only local paths: a sign-in form must not become an open redirect.</summary>
    public static string SafeReturnUrl(string? returnUrl) =>
        !string.IsNullOrEmpty(returnUrl) && returnUrl.StartsWith('/') && !returnUrl.StartsWith("//", StringComparison.Ordinal)
            && !returnUrl.StartsWith("/\\", StringComparison.Ordinal) && !returnUrl.Contains('\n') && !returnUrl.Contains('\r')
            ? returnUrl
            : "/";

    private static Task RedirectOrStatus(RedirectContext<CookieAuthenticationOptions> context, int status)
    {
        var path = context.Request.Path;
        if (path.StartsWithSegments("/api") || path.StartsWithSegments("/hubs") || context.Request.Headers.Accept.ToString().Contains("text/event-stream"))
        {
            context.Response.StatusCode = status;
        }
        else
        {
            context.Response.Redirect(context.RedirectUri);
        }

        return Task.CompletedTask;
    }

    private static bool IsKey(string value)
    {
        var buffer = new byte[value.Length];
        return Convert.TryFromBase64String(value, buffer, out var length) && length >= 32;
    }
}

public sealed record CreateApiKeyRequest(string? Name);

/// <param name="Key">The key itself: shown this once, never again.</param>
public sealed record CreatedApiKey(ApiKeyInfo Info, string Key);

public sealed record CreateUserRequest(string? UserName, string? Password, string[]? Roles);

/// <summary>After migrations: the first admin when there are no users, and the download signing key.</summary>
internal sealed class SecurityStartup(AccountStore accounts, DownloadLinks links, IOptions<SecurityOptions> options, ILogger<SecurityStartup> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await links.InitializeAsync(cancellationToken);
        var configured = options.Value.AdminPassword;
        var password = string.IsNullOrEmpty(configured) ? Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(15)) : configured;
        if (await accounts.CreateFirstUserAsync(options.Value.AdminUserName, password, [SecurityOptions.OpsRole], cancellationToken))
        {
            if (string.IsNullOrEmpty(configured))
            {
                // Shown once: it is stored only as a hash.
                Console.WriteLine($"First start: created user '{options.Value.AdminUserName}' (role ops) with password: {password}");
            }

            logger.LogInformation("Created the first user {UserName} with role ops", options.Value.AdminUserName);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
