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
