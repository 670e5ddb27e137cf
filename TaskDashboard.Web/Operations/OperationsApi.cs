using Hangfire;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;
using TaskDashboard.Web.Security;

namespace TaskDashboard.Web.Operations;

public static class OperationsApi
{
    public static IHostApplicationBuilder AddOperations(this IHostApplicationBuilder builder)
    {
        builder.Services.AddHealthChecks().AddCheck<PostgresHealthCheck>("postgres");
        return builder;
    }

    public static IEndpointRouteBuilder MapOperations(this IEndpointRouteBuilder app)
    {
        app.MapHealthChecks("/health").AllowAnonymous();
        // Ops only, through the same sign-in as the rest (Hangfire's own filter would allow only local requests).
        app.MapHangfireDashboard("/hangfire", new DashboardOptions { Authorization = [], AppPath = "/", DashboardTitle = "TaskDashboard jobs" })
            .RequireAuthorization(SecurityApi.OpsPolicy);
        return app;
    }
}

internal sealed class PostgresHealthCheck(NpgsqlDataSource dataSource) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            await using var command = dataSource.CreateCommand("SELECT 1");
            await command.ExecuteScalarAsync(cancellationToken);
            return HealthCheckResult.Healthy();
        }
        catch (Exception exception) when (exception is NpgsqlException or TimeoutException)
        {
            return HealthCheckResult.Unhealthy("PostgreSQL is unreachable.", exception);
        }
    }
}
