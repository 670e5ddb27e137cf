using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http.Features;
using TaskDashboard.Jobs.Progress;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Web.Tasks;

namespace TaskDashboard.Web.Progress;

/// <summary>
/// The data of every SSE event of a task, and of every hub message. <see cref="Position"/> is set
/// only on a hub watch of all of a caller's tasks: where that watch resumes after this event.
/// </summary>
public sealed record TaskEventData(
    Guid TaskId, long Seq, string Type, TaskState Status, int Progress, string? Stage, string? Message, DateTimeOffset At, string? ResultUrl,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Position = null);

/// <summary>
/// Writes a task's events as Server-Sent Events. Written by hand rather than with
/// TypedResults.ServerSentEvents because the stream needs <c>:</c> keep-alive comments and a
/// <c>retry:</c> field, which that API cannot write.
/// </summary>
public sealed class TaskEventStream(TaskItem task, long? after, TaskStore store, TaskEventBus bus, ProgressOptions options) : IResult
{
    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() } };

    public async Task ExecuteAsync(HttpContext context)
    {
        var response = context.Response;
        var cancellationToken = context.RequestAborted;
        StartStream(context);

        // Subscribe before reading the log, so nothing logged in between is missed; live events
        // already replayed are skipped by their sequence number.
        using var subscription = bus.Subscribe(task.Id, task.LastEventSeq);
        var delivered = after ?? task.LastEventSeq;
        await WriteAsync(response, $"retry: {(int)options.SseRetry.TotalMilliseconds}\n\n", cancellationToken);
        if (after is null)
        {
            await WriteEventAsync(response, "snapshot", Snapshot(task), cancellationToken);
            if (task.IsFinal)
            {
                return;
            }
        }

        try
        {
            foreach (var taskEvent in await store.GetEventsAsync(task.Id, delivered, cancellationToken))
            {
                delivered = taskEvent.Seq;
                if (await WriteTaskEventAsync(response, taskEvent, cancellationToken))
                {
                    return;
                }
            }

            while (true)
            {
                using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                wait.CancelAfter(options.SseKeepAlive);
                bool ready;
                try
                {
                    ready = await subscription.Reader.WaitToReadAsync(wait.Token);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    await WriteAsync(response, ": keep-alive\n\n", cancellationToken);
                    continue;
                }

                if (!ready)
                {
                    return;
                }

                while (subscription.Reader.TryRead(out var taskEvent))
                {
                    if (taskEvent.Seq <= delivered)
                    {
                        continue;
                    }

                    delivered = taskEvent.Seq;
                    if (await WriteTaskEventAsync(response, taskEvent, cancellationToken))
                    {
                        return;
                    }
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The client went away.
        }
    }

    /// <summary>
    /// The task's last event when <paramref name="after"/> is past it, else null. No client can have
    /// received such an event: events are announced only once they are in the log. The task row's
    /// number may be behind the log while the task runs (live progress events do not touch the
    /// row), so the log decides then; an ended task's row has its final event.
    /// </summary>
    internal static async Task<long?> PastTheLastEventAsync(TaskItem task, long after, TaskStore store, CancellationToken cancellationToken)
    {
        if (after <= task.LastEventSeq)
        {
            return null;
        }

        var last = task.IsFinal ? task.LastEventSeq : await store.GetLastEventSeqAsync(task.Id, cancellationToken);
        return after > last ? last : null;
    }

    internal static void StartStream(HttpContext context)
    {
        context.Response.ContentType = "text/event-stream; charset=utf-8";
        context.Response.Headers.CacheControl = "no-cache, no-store";
        context.Response.Headers["X-Accel-Buffering"] = "no";
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
    }

    internal static string EventName(TaskEvent taskEvent) =>
        TaskTransitions.IsFinal(taskEvent.State) && taskEvent.Type is "succeeded" or "failed" or "cancelled" ? taskEvent.Type
        : taskEvent.Type == "progress" ? "progress" : "stage";

    /// <summary>Whether this is a task's final event (<c>succeeded</c>, <c>failed</c> or <c>cancelled</c>).</summary>
    internal static bool IsFinalEvent(TaskEvent taskEvent) => EventName(taskEvent) is "succeeded" or "failed" or "cancelled";

    // The broadcaster hands the same TaskEvent instance to every stream of a task, so its SSE frame
    // is formatted once however many clients watch (entries go when the event is collected).
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<TaskEvent, byte[]> Frames = [];

    private static async Task<bool> WriteTaskEventAsync(HttpResponse response, TaskEvent taskEvent, CancellationToken cancellationToken)
    {
        var frame = Frames.GetValue(taskEvent, e =>
            Encoding.UTF8.GetBytes($"id: {e.Seq}\nevent: {EventName(e)}\ndata: {JsonSerializer.Serialize(ToData(e), Json)}\n\n"));
        // PipeWriter.WriteAsync writes and flushes in one go (one send per frame).
        await response.BodyWriter.WriteAsync(frame, cancellationToken);
        return IsFinalEvent(taskEvent);
    }

    internal static TaskEventData ToData(TaskEvent taskEvent, string? position = null) =>
        new(taskEvent.TaskId, taskEvent.Seq, taskEvent.Type, taskEvent.State, taskEvent.Progress, taskEvent.Stage, taskEvent.Message, taskEvent.CreatedAt,
            taskEvent.Type == "succeeded" ? $"{TaskResponseMapping.SelfUrl(taskEvent.TaskId)}/result" : null, position);

    internal static TaskEventData Snapshot(TaskItem task) =>
        new(task.Id, task.LastEventSeq, "snapshot", task.State, task.Progress, task.Stage, task.Message, task.UpdatedAt,
            task is { State: TaskState.Succeeded, Result: not null } ? $"{TaskResponseMapping.SelfUrl(task.Id)}/result" : null);

    private static Task WriteEventAsync(HttpResponse response, string name, TaskEventData data, CancellationToken cancellationToken) =>
        WriteAsync(response, $"id: {data.Seq}\nevent: {name}\ndata: {JsonSerializer.Serialize(data, Json)}\n\n", cancellationToken);

    internal static async Task WriteAsync(HttpResponse response, string text, CancellationToken cancellationToken) =>
        await response.BodyWriter.WriteAsync(Encoding.UTF8.GetBytes(text), cancellationToken);
}
