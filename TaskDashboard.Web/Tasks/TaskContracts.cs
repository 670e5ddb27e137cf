using System.Text.Json;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Web.Security;

namespace TaskDashboard.Web.Tasks;

/// <param name="Timeout">Seconds one attempt may run (1-86400); the kind's default when omitted.</param>
/// <param name="CallbackUrl">Where to POST a signed webhook when the task ends (or the <c>X-Callback-URL</c> header).</param>
/// <param name="RunAt">When to start (ISO 8601 with an offset); the task is Scheduled until then.</param>
/// <param name="Delay">Seconds to wait before starting (instead of <paramref name="RunAt"/>).</param>
public sealed record SubmitTaskRequest(string? Kind, JsonElement? Parameters, string? Priority, int? Timeout, string? CallbackUrl = null, DateTimeOffset? RunAt = null, int? Delay = null);

/// <summary>The body of <c>POST /api/reports</c> and <c>POST /api/exports</c>: the kind is in the path.</summary>
public sealed record SubmitKindRequest(JsonElement? Parameters, string? Priority, int? Timeout, string? CallbackUrl = null, DateTimeOffset? RunAt = null, int? Delay = null);

public sealed record TaskLinks(string Self, string Events, string Cancel, string Result, string Webhooks);

public sealed record TaskResultInfo(string FileName, string ContentType, long SizeBytes, long RowCount, string Sha256);

public sealed record TaskResponse(
    Guid Id,
    string Kind,
    TaskState Status,
    string Priority,
    int Progress,
    string? Stage,
    string? Message,
    int Attempt,
    int MaxAttempts,
    int? Timeout,
    JsonElement Parameters,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    DateTimeOffset? ScheduledAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? CompletedAt,
    bool CancelRequested,
    string? Error,
    string? CallbackUrl,
    string? ResultUrl,
    string? DownloadUrl,
    DateTimeOffset? DownloadUrlExpiresAt,
    TaskResultInfo? Result,
    TaskLinks Links);

public sealed record TaskListResponse(IReadOnlyList<TaskResponse> Items, int Page, int PageSize, long TotalCount);

public static class TaskResponseMapping
{
    public static string SelfUrl(Guid id) => $"/api/tasks/{id}";

    /// <summary>The API's view of a task; a succeeded one carries a signed download link from <paramref name="links"/>.</summary>
    public static TaskResponse AsResponse(this TaskItem task, DownloadLinks links)
    {
        var self = SelfUrl(task.Id);
        var resultUrl = $"{self}/result";
        var hasResult = task is { State: TaskState.Succeeded, Result: not null };
        var download = hasResult ? links.Create(task.Id) : default;
        return new TaskResponse(
            task.Id,
            task.Kind,
            task.State,
            task.Priority.ToApiName(),
            task.Progress,
            task.Stage,
            task.Message,
            task.Attempt,
            task.MaxAttempts,
            task.TimeoutSeconds,
            task.Parameters,
            task.CreatedAt,
            task.UpdatedAt,
            task.ScheduledAt,
            task.StartedAt,
            task.CompletedAt,
            task.CancelRequestedAt is not null,
            task.LastError,
            task.CallbackUrl,
            hasResult ? resultUrl : null,
            hasResult ? download.Url : null,
            hasResult ? download.ExpiresAt : null,
            task.Result is { } r ? new TaskResultInfo(r.FileName, r.ContentType, r.SizeBytes, r.RowCount, r.Sha256) : null,
            new TaskLinks(self, $"{self}/events", $"{self}/cancel", resultUrl, $"{self}/webhooks"));
    }
}
