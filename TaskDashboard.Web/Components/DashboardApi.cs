using MudBlazor.Services;

namespace TaskDashboard.Web.Components;

public static class DashboardApi
{
    public static IHostApplicationBuilder AddDashboard(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<DashboardOptions>()
            .BindConfiguration(DashboardOptions.SectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        builder.Services.AddRazorComponents().AddInteractiveServerComponents();
        if (builder is WebApplicationBuilder web)
        {
            // Outside Development, a build (as ./run starts it, not a publish) finds package and
            // framework assets (MudBlazor's CSS, blazor.web.js) only through this manifest; in a
            // published app there is no such manifest and this does nothing.
            web.WebHost.UseStaticWebAssets();
        }

        builder.Services.AddCascadingAuthenticationState();
        builder.Services.AddMudServices();
        return builder;
    }

    public static RazorComponentsEndpointConventionBuilder MapDashboard(this WebApplication app)
    {
        app.MapStaticAssets().AllowAnonymous();
        // SecurityHeaders already sends frame-ancestors 'none' in its Content-Security-Policy.
        return app.MapRazorComponents<App>().AddInteractiveServerRenderMode(o => o.ContentSecurityFrameAncestorsPolicy = null);
    }
}
