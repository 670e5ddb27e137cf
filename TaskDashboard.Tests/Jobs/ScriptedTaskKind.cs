using System.Collections.Concurrent;
using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.DependencyInjection;
using TaskDashboard.Jobs;
using TaskDashboard.Jobs.Execution;
using TaskDashboard.Jobs.Kinds;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;

namespace TaskDashboard.Tests.Jobs;

public sealed class ScriptedParameters
{
    /// <summary>The first this-many attempts fail.</summary>
    [Range(0, 10)]
    public int FailTimes { get; set; }

    /// <summary>How long a failing attempt works before it fails.</summary>
    [Range(0, 600_000)]
    public int FailAfterMs { get; set; }

    /// <summary>Fail with a permanent error instead of a transient one.</summary>
    public bool Permanent { get; set; }

    /// <summary>How long a successful attempt works, reporting progress as it goes.</summary>
    [Range(0, 600_000)]
    public int RunMs { get; set; }

    /// <summary>How often it reports progress while it works.</summary>
    [Range(10, 600_000)]
    public int ProgressEveryMs { get; set; } = 50;
}

/// <summary>
/// A task kind for engine tests, registered through the same AddTaskKind point as the real ones: it
/// fails on cue, works for a while, honours cancellation and writes a small artifact.
/// </summary>
public sealed class ScriptedTaskKind : TaskKind<ScriptedParameters>
{
    public override string Name => "scripted";

    public override TimeSpan DefaultTimeout => TimeSpan.FromSeconds(60);

    protected override async Task<TaskResult> ExecuteAsync(TaskExecutionContext context, ScriptedParameters parameters, CancellationToken cancellationToken)
    {
        if (context.Task.Attempt <= parameters.FailTimes)
        {
            await Task.Delay(parameters.FailAfterMs, cancellationToken);
            throw parameters.Permanent
                ? new PermanentTaskException($"scripted permanent failure on attempt {context.Task.Attempt}")
                : new IOException($"scripted transient failure on attempt {context.Task.Attempt}");
        }

        var path = context.WorkFilePath("txt");
        await File.WriteAllTextAsync(path, "partial", cancellationToken);
        var started = DateTime.UtcNow;
        while ((DateTime.UtcNow - started).TotalMilliseconds < parameters.RunMs)
        {
            var percent = (int)((DateTime.UtcNow - started).TotalMilliseconds * 100 / parameters.RunMs);
            await context.ReportProgressAsync(percent, "Working", null, cancellationToken);
            var left = parameters.RunMs - (int)(DateTime.UtcNow - started).TotalMilliseconds;
            await Task.Delay(Math.Clamp(left, 1, parameters.ProgressEveryMs), cancellationToken);
        }

        await File.WriteAllTextAsync(path, $"done on attempt {context.Task.Attempt}\n", cancellationToken);
        var result = await context.CompleteArtifactAsync(path, "scripted.txt", "text/plain", 1, cancellationToken);
        if (BeforeReturning.TryRemove(context.Task.Id, out var hook))
        {
            hook();
        }

        return result;
    }

    /// <summary>Runs once, by task id, just before the attempt returns its result (a test's cue).</summary>
    public static ConcurrentDictionary<Guid, Action> BeforeReturning { get; } = new();
}

/// <summary>The app with workers and the scripted kind; retries wait about a second, long enough to act in between.</summary>
public sealed class EngineApp : WorkerApp
{
    protected override void ConfigureWebHost(Microsoft.AspNetCore.Hosting.IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        builder.UseSetting("Jobs:RetryBaseDelay", "00:00:01");
    }

    protected override void ConfigureTestServices(IServiceCollection services) => services.AddTaskKind<ScriptedTaskKind>();
}

/// <summary>The app with workers and the scripted kind, plus the settings a test class names.</summary>
public abstract class ScriptedWorkerApp : WorkerApp
{
    protected abstract IReadOnlyDictionary<string, string> Settings { get; }

    protected override void ConfigureWebHost(Microsoft.AspNetCore.Hosting.IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        foreach (var (key, value) in Settings)
        {
            builder.UseSetting(key, value);
        }
    }

    protected override void ConfigureTestServices(IServiceCollection services) => services.AddTaskKind<ScriptedTaskKind>();
}
