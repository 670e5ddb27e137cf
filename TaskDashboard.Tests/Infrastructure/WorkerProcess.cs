using System.Diagnostics;

namespace TaskDashboard.Tests.Infrastructure;

/// <summary>
/// A real worker-only process (<c>TaskDashboard.Web.dll --role worker</c>) on a test database, for
/// tests that kill workers. Its output goes to a log file next to the artifacts.
/// </summary>
public sealed class WorkerProcess : IAsyncDisposable
{
    private readonly Process process;
    private string? home;

    private WorkerProcess(Process process, string logPath)
    {
        this.process = process;
        LogPath = logPath;
    }

    public string LogPath { get; }

    public bool HasExited => process.HasExited;

    /// <summary>
    /// A web node (HTTP, no Hangfire workers) on a free loopback port; see <see cref="BaseAddress"/>.
    /// <paramref name="asRunStartsIt"/>: the web project's own build with its source folder as content
    /// root, exactly as <c>./run</c> starts it (not the copy in the test output).
    /// </summary>
    public static WorkerProcess StartWeb(TaskDashboardApp app, bool asRunStartsIt = false)
    {
        var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        probe.Start();
        var port = ((System.Net.IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        var web = Start(app, new Dictionary<string, string> { ["Jobs:RunServer"] = "false", ["Urls"] = $"http://127.0.0.1:{port}" }, role: null, asRunStartsIt);
        web.BaseAddress = new Uri($"http://127.0.0.1:{port}");
        return web;
    }

    public Uri? BaseAddress { get; private set; }

    /// <summary>Waits until the node answers /health.</summary>
    public async Task WaitHealthyAsync(CancellationToken cancellationToken)
    {
        using var client = new HttpClient { BaseAddress = BaseAddress };
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            try
            {
                if ((await client.GetAsync("/health", cancellationToken)).IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException) when (DateTime.UtcNow < deadline)
            {
            }

            if (DateTime.UtcNow > deadline || HasExited)
            {
                throw new TimeoutException($"The web node did not become healthy; see {LogPath}.");
            }

            await Task.Delay(200, cancellationToken);
        }
    }

    public static WorkerProcess Start(TaskDashboardApp app, IDictionary<string, string>? settings = null) => Start(app, settings, role: "worker");

    private static WorkerProcess Start(TaskDashboardApp app, IDictionary<string, string>? settings, string? role, bool asRunStartsIt = false)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "TaskDashboard.Web.dll");
        string? contentRoot = null;
        if (asRunStartsIt)
        {
            // bin/<Configuration>/<framework>/ of the tests, and the same of the web project.
            var framework = new DirectoryInfo(AppContext.BaseDirectory);
            var root = Deployment.ComposeFileTests.RepositoryRoot();
            contentRoot = Path.Combine(root, "TaskDashboard.Web");
            dll = Path.Combine(contentRoot, "bin", framework.Parent!.Name, framework.Name, "TaskDashboard.Web.dll");
        }

        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        start.ArgumentList.Add(dll);
        if (contentRoot is not null)
        {
            start.ArgumentList.Add("--contentRoot");
            start.ArgumentList.Add(contentRoot);
        }

        if (role is not null)
        {
            start.ArgumentList.Add("--role");
            start.ArgumentList.Add(role);
        }
        foreach (var (key, value) in TaskDashboardApp.EngineSettings(app).Concat(settings ?? new Dictionary<string, string>()))
        {
            start.Environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
        }

        start.Environment["Logging__LogLevel__Default"] = "Information";
        // A home of its own, as each container has: nothing is shared through ~/.aspnet (Data Protection keys).
        var home = Directory.CreateTempSubdirectory("taskdashboard-node-home-").FullName;
        start.Environment["HOME"] = home;
        var logPath = Path.Combine(app.ArtifactsPath, $"worker-{Guid.NewGuid():N}.log");
        var log = new StreamWriter(logPath) { AutoFlush = true };
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, e) => Write(log, e.Data);
        process.ErrorDataReceived += (_, e) => Write(log, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new WorkerProcess(process, logPath) { home = home };
    }

    private static void Write(StreamWriter log, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (log)
        {
            log.WriteLine(line);
        }
    }

    /// <summary>SIGKILL: no shutdown, no cleanup, leases left to expire.</summary>
    public void Kill()
    {
        process.Kill(entireProcessTree: true);
        process.WaitForExit();
    }

    /// <summary>SIGTERM: the graceful shutdown a container orchestrator sends.</summary>
    public async Task StopAsync(TimeSpan timeout)
    {
        if (!process.HasExited)
        {
            Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]).WaitForExit();
            using var cancel = new CancellationTokenSource(timeout);
            try
            {
                await process.WaitForExitAsync(cancel.Token);
            }
            catch (OperationCanceledException)
            {
                Kill();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!process.HasExited)
        {
            Kill();
        }

        await Task.CompletedTask;
        process.Dispose();
        if (home is not null && Directory.Exists(home))
        {
            Directory.Delete(home, recursive: true);
        }
    }
}
