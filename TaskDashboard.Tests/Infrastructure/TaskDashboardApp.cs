using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Serialization;
using Hangfire;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Web.Security;
using TaskDashboard.Web.Tasks;

namespace TaskDashboard.Tests.Infrastructure;

/// <summary>
/// The real web app on a database of its own. API tests use it without a Hangfire server (jobs are
/// only enqueued); <see cref="WorkerApp"/> runs jobs too.
/// </summary>
public class TaskDashboardApp : WebApplicationFactory<Program>, IAsyncLifetime
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { Converters = { new JsonStringEnumConverter() } };

    protected virtual bool RunServer => false;

    /// <summary>Demo orders seeded in each test database: a year of data, small enough to seed in a blink.</summary>
    public const int DemoRows = 20_000;

    public string ConnectionString { get; private set; } = "";

    public string ArtifactsPath { get; } = Directory.CreateTempSubdirectory("taskdashboard-artifacts-").FullName;

    public NpgsqlDataSource Database { get; private set; } = null!;

    /// <summary>The user every client from <c>CreateClient()</c> acts as (no ops role).</summary>
    public UserAccount User { get; private set; } = null!;

    /// <summary><see cref="User"/>'s API key, sent by <c>CreateClient()</c>, the hub client and worker-process clients.</summary>
    public string ApiKey { get; private set; } = "";

    public TaskScope UserScope => new(User.Id);

    public virtual async ValueTask InitializeAsync()
    {
        ConnectionString = await TestPostgres.CreateDatabaseAsync();
        Database = NpgsqlDataSource.Create(ConnectionString);
        // Start the host now: migrations run while it starts.
        StartServer();
        (User, ApiKey) = await CreateUserAsync("tester", ops: false);
    }

    /// <summary>A new user (the name made unique) with an API key of their own.</summary>
    public async Task<(UserAccount User, string ApiKey)> CreateUserAsync(string name, bool ops, CancellationToken cancellationToken = default)
    {
        var accounts = Services.GetRequiredService<AccountStore>();
        var user = await accounts.CreateUserAsync($"{name}-{Guid.NewGuid():N}"[..(name.Length + 9)], UserPassword, ops ? [SecurityOptions.OpsRole] : [], cancellationToken)
            ?? throw new InvalidOperationException("User name taken.");
        var (_, key) = await accounts.CreateApiKeyAsync(user.Id, "tests", cancellationToken);
        return (user, key);
    }

    /// <summary>The password of every user that <see cref="CreateUserAsync"/> makes.</summary>
    public const string UserPassword = "correct horse battery staple";

    /// <summary>The webhook signing secret every test app signs with (receivers in tests verify with it).</summary>
    public const string WebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    /// <summary>The first admin's password (from configuration, as ./run passes it).</summary>
    public const string AdminPassword = "admin password for tests";

    /// <summary>A client of the test server acting with <paramref name="apiKey"/> (none: anonymous).</summary>
    public HttpClient CreateClientWithKey(string? apiKey)
    {
        var client = CreateClient();
        client.DefaultRequestHeaders.Authorization = apiKey is null ? null : new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", apiKey);
        return client;
    }

    protected override void ConfigureClient(HttpClient client)
    {
        base.ConfigureClient(client);
        if (ApiKey.Length > 0)
        {
            client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", ApiKey);
        }
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        foreach (var (key, value) in EngineSettings(this))
        {
            builder.UseSetting(key, value);
        }

        builder.UseSetting("Jobs:RunServer", RunServer.ToString());
        builder.ConfigureTestServices(ConfigureTestServices);
        if (Environment.GetEnvironmentVariable("TASKDASHBOARD_TEST_LOG_DIR") is { Length: > 0 } logDirectory)
        {
            var file = Path.Combine(Directory.CreateDirectory(logDirectory).FullName, $"{GetType().Name}-{Guid.NewGuid():N}.log");
            builder.UseSetting("Logging:LogLevel:TaskDashboard", "Debug");
            builder.UseSetting("Logging:LogLevel:Hangfire", "Information");
            builder.ConfigureLogging(logging => logging.AddProvider(new FileLoggerProvider(file)));
        }
    }

    /// <summary>The settings every test host and worker process of this fixture shares: fast timings, small data.</summary>
    public static IEnumerable<KeyValuePair<string, string>> EngineSettings(TaskDashboardApp app) => new Dictionary<string, string>
    {
        ["ConnectionStrings:Postgres"] = app.ConnectionString,
        ["Jobs:ArtifactsPath"] = app.ArtifactsPath,
        ["Jobs:QueuePollInterval"] = "00:00:00.200",
        ["Jobs:DispatchInterval"] = "00:00:00.200",
        ["Jobs:CancellationCheckInterval"] = "00:00:00.200",
        ["Jobs:WorkerCount"] = "2",
        ["Jobs:LeaseDuration"] = "00:00:02",
        ["Jobs:LeaseRenewInterval"] = "00:00:00.500",
        ["Jobs:LeaseCheckInterval"] = "00:00:00.500",
        ["Jobs:RetryBaseDelay"] = "00:00:00.200",
        ["Jobs:LostJobAfter"] = "00:00:03",
        ["DemoData:Rows"] = DemoRows.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Export:BatchRows"] = "2000",
        ["Security:AdminPassword"] = AdminPassword,
        ["Webhooks:Secret"] = WebhookSecret,
        ["Tasks:SubmissionsPerSecond"] = "10000",
        ["Tasks:SubmissionBurst"] = "10000",
        ["Webhooks:AllowLoopback"] = "true",
        ["Webhooks:Timeout"] = "00:00:01",
        ["Webhooks:DispatchInterval"] = "00:00:00.100",
        ["Webhooks:InFlightTimeout"] = "00:00:04",
        ["Webhooks:RetrySchedule"] = "00:00:00.200, 00:00:00.200, 00:00:00.200",
        ["Webhooks:PublicBaseUrl"] = "http://tasks.example",
    };

    protected virtual void ConfigureTestServices(IServiceCollection services)
    {
    }

    public JobStorage JobStorage => Services.GetRequiredService<JobStorage>();

    public async Task<long> CountTasksAsync(CancellationToken cancellationToken)
    {
        await using var command = Database.CreateCommand("SELECT count(*) FROM dashboard.tasks");
        return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    public async Task<TaskResponse> GetTaskAsync(HttpClient client, Guid id, CancellationToken cancellationToken) =>
        (await client.GetFromJsonAsync<TaskResponse>($"/api/tasks/{id}", Json, cancellationToken))!;

    /// <summary>Polls the API until the task is in <paramref name="state"/> (or fails the test after the timeout).</summary>
    public async Task<TaskResponse> WaitForStateAsync(HttpClient client, Guid id, TaskState state, CancellationToken cancellationToken, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        while (true)
        {
            var task = await GetTaskAsync(client, id, cancellationToken);
            if (task.Status == state)
            {
                return task;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Task {id} is {task.Status} ({task.Message}), not {state}, after {timeout ?? TimeSpan.FromSeconds(30)}. {await DescribeAsync(id, cancellationToken)}");
            }

            await Task.Delay(50, cancellationToken);
        }
    }

    /// <summary>Polls <paramref name="condition"/> every 50 ms until it holds; fails the test after 20 s.</summary>
    public static async Task WaitUntilAsync(Func<Task<bool>> condition, string what, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Waited 20 s in vain for {what}.");
            }

            await Task.Delay(50, cancellationToken);
        }
    }

    /// <summary>Waits until the dispatcher has given the task a Hangfire job, and returns the job's id.</summary>
    public async Task<string> WaitForJobIdAsync(Guid taskId, CancellationToken cancellationToken)
    {
        var store = Services.GetRequiredService<TaskStore>();
        string? jobId = null;
        await WaitUntilAsync(async () => (jobId = (await store.GetForExecutionAsync(taskId, cancellationToken))!.HangfireJobId) is not null, $"task {taskId} to be dispatched", cancellationToken);
        return jobId!;
    }

    /// <summary>Submits an export and, once it is dispatched, claims it as worker <paramref name="owner"/> would: the test plays the worker through the store.</summary>
    public async Task<TaskLease> ClaimNewExportAsync(string owner, CancellationToken cancellationToken)
    {
        var store = Services.GetRequiredService<TaskStore>();
        var task = await CreateClient().SubmitAsync("/api/exports", """{"parameters":{}}""", cancellationToken);
        await WaitForJobIdAsync(task.Id, cancellationToken);
        var running = await store.TryClaimAsync(task.Id, owner, TimeSpan.FromMinutes(5), cancellationToken);
        return new TaskLease(task.Id, owner, running!.Attempt);
    }

    // What a timeout message needs to explain a stuck task: its row and its Hangfire job.
    private async Task<string> DescribeAsync(Guid id, CancellationToken cancellationToken)
    {
        await using var command = Database.CreateCommand("""
            SELECT format('job %s, scheduled_at %s, lease %s until %s, updated %s, db now %s',
                hangfire_job_id, scheduled_at, lease_owner, lease_expires_at, updated_at, now())
            FROM dashboard.tasks WHERE id = $1
            """);
        command.Parameters.AddWithValue(id);
        var row = await command.ExecuteScalarAsync(cancellationToken) as string;
        var jobId = row?.Split(',')[0]["job ".Length..];
        using var connection = JobStorage.GetConnection();
        var job = string.IsNullOrEmpty(jobId) ? null : connection.GetJobData(jobId);
        return $"Row: {row}; Hangfire job state: {job?.State ?? "none"}.";
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        if (Database is not null)
        {
            await Database.DisposeAsync();
        }

        // The exports' files, once the app (and every process a fixture started) has stopped.
        try
        {
            Directory.Delete(ArtifactsPath, recursive: true);
        }
        catch (IOException)
        {
            // A process of a test still writing there: the directory is left behind.
        }

        GC.SuppressFinalize(this);
    }
}

/// <summary>
/// Test classes that start the app. WebApplicationFactory intercepts the host that Program builds
/// through a process-wide DiagnosticListener, so two live factories can apply their settings to
/// each other's host (seen: one fixture's test services landing in another's app). The classes of
/// this collection therefore run one at a time, and each fixture is disposed when its class ends.
/// </summary>
[CollectionDefinition(Name)]
public sealed class AppCollection
{
    public const string Name = "App";
}

/// <summary>The app with an in-process Hangfire server that runs jobs.</summary>
public class WorkerApp : TaskDashboardApp
{
    protected override bool RunServer => true;
}
