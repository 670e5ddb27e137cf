using TaskDashboard.Jobs;

namespace TaskDashboard.Web.Operations;

/// <summary>
/// The worker-only role: the same binary started with <c>--role worker</c> (or <c>Role=worker</c>)
/// runs migrations, the dispatcher, the lease reaper and Hangfire workers, and serves no HTTP.
/// </summary>
public static class WorkerRole
{
    public static bool IsRequested(string[] args) =>
        string.Equals(
            new ConfigurationBuilder().AddEnvironmentVariables().AddCommandLine(args).Build()["Role"],
            "worker",
            StringComparison.OrdinalIgnoreCase);

    public static async Task RunAsync(string[] args)
    {
        var builder = Host.CreateApplicationBuilder(args);
        builder.AddJobs();
        await builder.Build().RunAsync();
    }
}
