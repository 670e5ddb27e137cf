using System.Globalization;
using Hangfire;
using Hangfire.AspNetCore;
using Hangfire.PostgreSql;
using Hangfire.PostgreSql.Factories;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Npgsql;
using TaskDashboard.Jobs.Database;
using TaskDashboard.Jobs.DemoData;
using TaskDashboard.Jobs.Execution;
using TaskDashboard.Jobs.Kinds;
using TaskDashboard.Jobs.Kinds.Export;
using TaskDashboard.Jobs.Kinds.Report;
using TaskDashboard.Jobs.Progress;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Jobs.Schedules;
using TaskDashboard.Jobs.Webhooks;

namespace TaskDashboard.Jobs;

public static class JobsExtensions
{
    /// <summary>The one connection string, <c>ConnectionStrings:Postgres</c>.</summary>
    public const string ConnectionStringName = "Postgres";

    /// <summary>
    /// Registers the task store, migrations, the built-in task kinds, the dispatcher and Hangfire
    /// (client always; server when <see cref="JobsOptions.RunServer"/>).
    /// </summary>
    public static IHostApplicationBuilder AddJobs(this IHostApplicationBuilder builder)
    {
        var connectionString = builder.Configuration.GetConnectionString(ConnectionStringName)
            ?? throw new InvalidOperationException(
                $"Connection string '{ConnectionStringName}' is missing: set ConnectionStrings__{ConnectionStringName}.");

        builder.Services.AddOptions<JobsOptions>()
            .BindConfiguration(JobsOptions.SectionName)
            .ValidateDataAnnotations()
            .Validate(o => o.ConcurrencyLimits.Values.All(limit => limit is >= 1 and <= 100_000), "Jobs:ConcurrencyLimits values must be from 1 to 100000.")
            .ValidateOnStart();
        var options = builder.Configuration.GetSection(JobsOptions.SectionName).Get<JobsOptions>() ?? new JobsOptions();

        // The listeners' settings (keep-alive, reconnect backoff) apply to every LISTEN connection.
        builder.Services.AddOptions<ProgressOptions>().BindConfiguration(ProgressOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddSingleton(_ => NpgsqlDataSource.Create(WithPoolForWorkers(WithAutoPrepare(connectionString), options)));
        builder.Services.AddKeyedSingleton(TaskStore.ProgressBatchesKey, (_, _) => NpgsqlDataSource.Create(ForProgressBatches(connectionString)));
        builder.Services.AddSingleton<DatabasePools>();
        builder.Services.AddSingleton<MigrationRunner>();
        builder.Services.AddSingleton<SharedSecrets>();
        // Registered before Hangfire's server so that the schema exists before any job runs.
        builder.Services.AddHostedService<MigrationHostedService>();

        builder.Services.AddOptions<DemoDataOptions>().BindConfiguration(DemoDataOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddOptions<ExportOptions>().BindConfiguration(ExportOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddOptions<ReportOptions>().BindConfiguration(ReportOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddSingleton<DemoOrders>();
        builder.Services.AddSingleton<WorkerIdentity>();
        builder.Services.AddHostedService<LeaseReaper>();
        builder.Services.AddSingleton<LeaseChecks>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<LeaseChecks>());
        builder.Services.AddSingleton<TaskStore>();
        builder.Services.AddSingleton<TaskInsertBatcher>();
        builder.Services.AddSingleton<TaskSubmitter>();
        builder.Services.AddSingleton<TaskKindRegistry>();
        builder.Services.AddSingleton<ArtifactStore>();
        builder.Services.AddSingleton<ProgressEventWriter>();
        builder.Services.AddTransient<TaskJob>();
        builder.Services.AddSingleton<TaskDispatcher>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<TaskDispatcher>());
        builder.Services.AddTaskKind<ExportTaskKind>();
        builder.Services.AddTaskKind<ReportTaskKind>();

        // Webhooks: signed callbacks when a task ends, each attempt a Hangfire job.
        builder.Services.AddOptions<WebhookOptions>()
            .BindConfiguration(WebhookOptions.SectionName)
            .ValidateDataAnnotations()
            .Validate(o => string.IsNullOrEmpty(o.Secret) || WebhookSigner.IsValidSecret(o.Secret), "Webhooks:Secret must be whsec_ followed by base64 of at least 24 bytes.")
            .Validate(o => o.GetRetryDelays() is not null, "Webhooks:RetrySchedule must be comma-separated delays (hh:mm:ss), each between 0 and 7 days.")
            .Validate(o => string.IsNullOrEmpty(o.PublicBaseUrl) || Uri.TryCreate(o.PublicBaseUrl, UriKind.Absolute, out _), "Webhooks:PublicBaseUrl must be an absolute URL.")
            .ValidateOnStart();
        builder.Services.AddSingleton<CallbackUrlPolicy>();
        builder.Services.AddSingleton<WebhookSigner>();
        builder.Services.AddSingleton<WebhookSender>();
        builder.Services.AddSingleton<WebhookStore>();
        builder.Services.AddTransient<WebhookDeliveryJob>();
        builder.Services.AddHostedService<WebhookDispatcher>();

        // Recurring schedules: Hangfire's recurring jobs submit normal tasks.
        builder.Services.AddSingleton<ScheduleStore>();
        builder.Services.AddSingleton<ScheduleService>();
        builder.Services.AddTransient<ScheduleRunJob>();

        // Npgsql drops the password from a connection string after Open unless told to keep it, and
        // Hangfire.PostgreSql's LISTEN reconnect clones that string: keep it so reconnects work.
        var hangfireConnection = new NpgsqlConnectionStringBuilder(WithAutoPrepare(connectionString)) { PersistSecurityInfo = true }.ConnectionString;
        var storageOptions = new PostgreSqlStorageOptions
        {
            SchemaName = "hangfire",
            QueuePollInterval = options.QueuePollInterval,
            // Hangfire's own long polling leaves LISTEN on pooled connections; JobQueueWakeUp replaces it.
            EnableLongPolling = false,
            UseSlidingInvisibilityTimeout = true,
        };

        // The storage and the job activator are registered here, per host, rather than taken from
        // Hangfire's process-wide statics (JobStorage.Current, JobActivator.Current), so that two
        // hosts in one process (tests) never run each other's jobs or use each other's database.
        builder.Services.AddSingleton<JobQueueWakeUp>();
        builder.Services.AddSingleton<JobStorage>(sp =>
        {
            var storage = new PostgreSqlStorage(new NpgsqlConnectionFactory(hangfireConnection, storageOptions), storageOptions);
            sp.GetRequiredService<JobQueueWakeUp>().Install(storage, storageOptions, TaskPriorities.QueueNames);
            return storage;
        });
        builder.Services.AddSingleton<JobActivator>(sp => new AspNetCoreJobActivator(sp.GetRequiredService<IServiceScopeFactory>()));
        builder.Services.AddHangfire(configuration => configuration
            .SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
            .UseSimpleAssemblyNameTypeSerializer()
            .UseRecommendedSerializerSettings()
            // Jobs format nothing culture-dependent; not storing the culture saves two job
            // parameters (rows) per task on the dispatch path.
            .UseDefaultCulture(CultureInfo.CurrentCulture, CultureInfo.CurrentUICulture, captureDefault: false));

        if (options.RunServer)
        {
            if (options.LongPolling)
            {
                builder.Services.AddKeyedSingleton(JobWakeListener.ListenDataSourceKey, (_, _) => ListenDataSource(connectionString, JobWakeListener.ApplicationName));
                builder.Services.AddHostedService<JobWakeListener>();
            }

            builder.Services.AddHangfireServer(server =>
            {
                server.WorkerCount = options.WorkerCount;
                server.ShutdownTimeout = options.ShutdownTimeout;
                // Retries are scheduled by our dispatcher; Hangfire's delayed jobs are unused but
                // poll no slower than our own interval.
                server.SchedulePollingInterval = options.DispatchInterval;
                server.Queues = TaskPriorities.QueueNames;
            });
        }

        return builder;
    }

    // A running job may hold a connection for its whole run (an export streams its rows) while its
    // progress, lease renewals and cancellation checks need another: with Npgsql's default pool of
    // 100 and 100 workers, those writes waited for a free connection (measured in bench/live: median
    // 31 ms, p99 15 s, the pool's timeout). A connection string that sets a maximum pool size keeps it.
    internal static string WithPoolForWorkers(string connectionString, JobsOptions options)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        if (options.RunServer && !System.Text.RegularExpressions.Regex.IsMatch(connectionString, @"max(imum)?\s*pool\s*size", System.Text.RegularExpressions.RegexOptions.IgnoreCase))
        {
            builder.MaxPoolSize = Math.Max(builder.MaxPoolSize, 2 * options.WorkerCount + 20);
        }

        return builder.ConnectionString;
    }

    // Our statements are few and repeated on every request: letting Npgsql prepare them saves
    // PostgreSQL the parse and plan of the task CTEs each time, and since our code leaves no session
    // state behind, skipping the reset on each return to the pool saves a round of work per request.
    // A connection string that sets either keeps its own value.
    private static string WithAutoPrepare(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        if (!connectionString.Contains("Auto Prepare", StringComparison.OrdinalIgnoreCase))
        {
            builder.MaxAutoPrepare = 32;
            builder.AutoPrepareMinUsages = 2;
        }

        if (!connectionString.Contains("Reset On Close", StringComparison.OrdinalIgnoreCase))
        {
            builder.NoResetOnClose = true;
        }

        return builder.ConnectionString;
    }

    // The progress batches' own pool (see TaskStore.ProgressBatchesKey): a handful of connections
    // (one per batch in flight) that keep the two statements prepared and planned once.
    internal static string ForProgressBatches(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(WithAutoPrepare(connectionString)) { ApplicationName = ProgressBatchesApplicationName };
        builder.Options = $"{builder.Options} -c plan_cache_mode=force_generic_plan".Trim();
        return builder.ConnectionString;
    }

    /// <summary>How the progress batches' connections show in <c>pg_stat_activity</c>.</summary>
    public const string ProgressBatchesApplicationName = "taskdashboard-progress";

    /// <summary>
    /// Registers the live event feed of a node that serves watchers: one LISTEN connection and the
    /// in-process broadcaster. Worker-only processes do not need it.
    /// </summary>
    public static IHostApplicationBuilder AddTaskEvents(this IHostApplicationBuilder builder)
    {
        var connectionString = builder.Configuration.GetConnectionString(ConnectionStringName)!;
        builder.Services.AddKeyedSingleton(TaskEventListener.ListenDataSourceKey, (_, _) => ListenDataSource(connectionString, TaskEventListener.ApplicationName));
        builder.Services.AddSingleton<TaskEventBus>();
        builder.Services.AddSingleton<TaskEventListener>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<TaskEventListener>());
        return builder;
    }

    // LISTEN needs a connection of its own, outside the pool (a pooled one would be reset).
    private static NpgsqlDataSource ListenDataSource(string connectionString, string applicationName) => NpgsqlDataSource.Create(
        new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false, KeepAlive = 10, ApplicationName = applicationName }.ConnectionString);

    /// <summary>The one registration point for a task kind.</summary>
    public static IServiceCollection AddTaskKind<TKind>(this IServiceCollection services) where TKind : class, ITaskKind
    {
        services.AddSingleton<ITaskKind, TKind>();
        return services;
    }
}
