using System.Net;
using System.Text.RegularExpressions;

namespace TaskDashboard.Tests.Infrastructure;

/// <summary>An HttpClient that behaves like a browser's form posts: keeps cookies, does not follow redirects.</summary>
public static partial class SignInClient
{
    public static HttpClient Create(Uri baseAddress) =>
        new(new HttpClientHandler { AllowAutoRedirect = false, UseCookies = true, CookieContainer = new CookieContainer() }) { BaseAddress = baseAddress };

    /// <summary>The antiforgery token of the form on <paramref name="path"/> (its cookie lands in the client).</summary>
    public static async Task<string> FormTokenAsync(this HttpClient browser, string path, CancellationToken cancellationToken)
    {
        var html = await browser.GetStringAsync(path, cancellationToken);
        var token = TokenField().Match(html).Groups[1].Value;
        Assert.NotEmpty(token);
        return token;
    }

    /// <summary>Signs in through the login form, as a person would; returns the answer (a redirect).</summary>
    public static async Task<HttpResponseMessage> SignInAsync(this HttpClient browser, string userName, string password, CancellationToken cancellationToken)
    {
        var token = await browser.FormTokenAsync("/account/login", cancellationToken);
        return await browser.PostAsync("/account/signin", Form(("userName", userName), ("password", password), ("__RequestVerificationToken", token)), cancellationToken);
    }

    public static FormUrlEncodedContent Form(params (string Key, string Value)[] fields) =>
        new(fields.Select(f => KeyValuePair.Create(f.Key, f.Value)));

    [GeneratedRegex("name=\"__RequestVerificationToken\"[^>]*value=\"([^\"]+)\"")]
    private static partial Regex TokenField();
}
