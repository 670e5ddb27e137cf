namespace TaskDashboard.Web.Components;

public static class DashboardApi
{
    public static IHostApplicationBuilder AddDashboard(this IHostApplicationBuilder builder)
    {
        builder.Services.AddRazorComponents();
        return builder;
    }

    public static RazorComponentsEndpointConventionBuilder MapDashboard(this WebApplication app)
    {
        app.MapStaticAssets().AllowAnonymous();
        return app.MapRazorComponents<App>();
    }
}
