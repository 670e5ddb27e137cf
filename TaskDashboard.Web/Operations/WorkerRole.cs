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
        AddDefaults(builder.Configuration);
        builder.AddJobs();
        await builder.Build().RunAsync();
    }

    /// <summary>
    /// The worker role's own defaults, for settings the configuration leaves unset: delayed tasks and
    /// retries that fall due are left to the web nodes' dispatchers for a second
    /// (<see cref="JobsOptions.DispatchStandby"/>).
    /// </summary>
    public static void AddDefaults(IConfigurationManager configuration)
    {
        const string standby = $"{JobsOptions.SectionName}:{nameof(JobsOptions.DispatchStandby)}";
        if (configuration[standby] is null)
        {
            configuration.AddInMemoryCollection([new(standby, "00:00:01")]);
        }
    }
}
