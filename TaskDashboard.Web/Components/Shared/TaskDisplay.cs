using System.Globalization;
using System.Text.Json;
using MudBlazor;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Web.Components.Shared;

/// <summary>How tasks read on the dashboard: colours, a parameters summary, durations and the ETA.</summary>
public static class TaskDisplay
{
    public static Color ColorOf(TaskState state) => state switch
    {
        TaskState.Running => Color.Info,
        TaskState.Succeeded => Color.Success,
        TaskState.Failed => Color.Error,
        TaskState.Cancelled => Color.Dark,
        TaskState.Scheduled => Color.Warning,
        _ => Color.Default,
    };

    /// <summary>"2025-01-01 – 2025-03-31 · csv · gzip": the parameters a person cares about, in one line.</summary>
    public static string Summary(JsonElement parameters)
    {
        if (parameters.ValueKind != JsonValueKind.Object)
        {
            return "";
        }

        var parts = new List<string>();
        var from = Text(parameters, "from");
        var to = Text(parameters, "to");
        if (from is not null || to is not null)
        {
            parts.Add($"{from ?? "start"} – {to ?? "end"}");
        }

        foreach (var name in new[] { "region", "groupBy", "format" })
        {
            if (Text(parameters, name) is { } value)
            {
                parts.Add(name == "groupBy" ? $"by {value}" : value);
            }
        }

        if (parameters.TryGetProperty("gzip", out var gzip) && gzip.ValueKind == JsonValueKind.True)
        {
            parts.Add("gzip");
        }

        return string.Join(" · ", parts);
    }

    /// <summary>Time left, from the pace so far; null when it cannot be told yet.</summary>
    public static TimeSpan? Eta(TaskItem task, DateTimeOffset now)
    {
        if (task.State != TaskState.Running || task.StartedAt is not { } started || task.Progress is <= 0 or >= 100)
        {
            return null;
        }

        var elapsed = now - started;
        return elapsed <= TimeSpan.Zero ? null : elapsed * (100 - task.Progress) / task.Progress;
    }

    public static string Duration(TimeSpan span) => span.TotalHours >= 1
        ? span.ToString(@"h\:mm\:ss", CultureInfo.InvariantCulture)
        : span.TotalMinutes >= 1 ? $"{(int)span.TotalMinutes}m {span.Seconds:00}s" : $"{Math.Max(span.TotalSeconds, 0):0.0}s";

    /// <summary>How long it ran (so far, when still running).</summary>
    public static TimeSpan? RunTime(TaskItem task, DateTimeOffset now) =>
        task.StartedAt is { } started ? (task.CompletedAt ?? now) - started : null;

    public static string When(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", CultureInfo.InvariantCulture);

    /// <summary>The task as it stands after <paramref name="taskEvent"/> (the row is re-read for results and errors).</summary>
    public static TaskItem Apply(TaskItem task, TaskEvent taskEvent) => taskEvent.Seq <= task.LastEventSeq
        ? task
        : task with
        {
            State = taskEvent.State,
            Progress = taskEvent.Progress,
            Stage = taskEvent.Stage ?? task.Stage,
            Message = taskEvent.Message ?? task.Message,
            LastEventSeq = taskEvent.Seq,
            StartedAt = task.StartedAt ?? (taskEvent.Type == "started" ? taskEvent.CreatedAt : null),
            CancelRequestedAt = task.CancelRequestedAt ?? (taskEvent.Type == "cancel_requested" ? taskEvent.CreatedAt : null),
        };

    private static string? Text(JsonElement parameters, string name) =>
        parameters.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}
