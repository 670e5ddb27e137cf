using System.Globalization;
using Microsoft.Extensions.Options;
using TaskDashboard.Jobs;
using TaskDashboard.Jobs.Progress;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Web.Security;
using TaskDashboard.Web.Tasks;

namespace TaskDashboard.Web.Progress;

public static class ProgressApi
{
    public static IHostApplicationBuilder AddProgress(this IHostApplicationBuilder builder)
    {
        builder.AddTaskEvents();
        // Statuses travel as names ("Running"), as in the API and SSE.
        builder.Services.AddSignalR().AddJsonProtocol(o => o.PayloadSerializerOptions.Converters.Add(new System.Text.Json.Serialization.JsonStringEnumConverter()));
        builder.Services.AddSingleton<HubTaskForwarder>();
        return builder;
    }

    public static RouteGroupBuilder MapProgress(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/tasks").WithTags("Progress");
        group.MapGet("/{id:guid}/events", StreamTaskEventsAsync).WithName("TaskEvents");
        app.MapGet("/api/events", StreamOwnerEventsAsync).WithTags("Progress").WithName("MyTaskEvents");
        var progress = app.ServiceProvider.GetRequiredService<IOptions<ProgressOptions>>().Value;
        app.MapHub<ProgressHub>("/hubs/tasks", o => o.TransportSendTimeout = progress.HubSendTimeout);
        return group;
    }

    /// <summary>
    /// <c>text/event-stream</c> of every task of the caller, live; from a <c>Last-Event-ID</c> (header,
    /// or the <c>lastEventId</c> query parameter), exactly the events after it.
    /// </summary>
    public static async Task<IResult> StreamOwnerEventsAsync(
        HttpContext context, TaskStore store, TaskEventBus bus, IOptions<ProgressOptions> options, string? lastEventId, CancellationToken cancellationToken)
    {
        OwnerStreamPosition? resumeFrom = null;
        if (ResumeFrom(context, lastEventId) is { } text)
        {
            if (!OwnerStreamPosition.TryParse(text, out var position))
            {
                return LastEventIdProblem("Last-Event-ID must be the id of an event of this stream.");
            }

            if (await PastTheLogAsync(position, store, cancellationToken) is { } now)
            {
                return LastEventIdProblem($"Last-Event-ID {text} is past the event log's position ({now.ToCompact()}); connect without it for a snapshot.");
            }

            resumeFrom = position;
        }

        return new OwnerEventStream(context.User.Id(), resumeFrom, store, bus, options.Value);
    }

    /// <summary>
    /// The event log's position now, when <paramref name="position"/> is past it. A position can only
    /// come from the log: one past where it is now was made up (or comes from another database).
    /// </summary>
    internal static async Task<LogSnapshot?> PastTheLogAsync(OwnerStreamPosition position, TaskStore store, CancellationToken cancellationToken)
    {
        var now = await store.GetLogPositionAsync(cancellationToken);
        return (position.UpTo ?? position.After).Xmax > now.Xmax ? now : null;
    }

    private static Microsoft.AspNetCore.Http.HttpResults.ValidationProblem LastEventIdProblem(string error) =>
        TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["Last-Event-ID"] = [error] });

    private static string? ResumeFrom(HttpContext context, string? lastEventId)
    {
        var value = context.Request.Headers["Last-Event-ID"] is { Count: > 0 } header ? header.ToString() : lastEventId;
        return string.IsNullOrEmpty(value) ? null : value;
    }

    /// <summary>
    /// <c>text/event-stream</c> of one task: a snapshot, then every event with <c>id:</c> = its
    /// sequence number, closing after the final one. <c>Last-Event-ID</c> (header, or the
    /// <c>lastEventId</c> query parameter) replays exactly the events after it instead.
    /// </summary>
    public static async Task<IResult> StreamTaskEventsAsync(
        Guid id,
        HttpContext context,
        TaskStore store,
        TaskEventBus bus,
        IOptions<ProgressOptions> options,
        string? lastEventId,
        CancellationToken cancellationToken)
    {
        var resumeFrom = ResumeFrom(context, lastEventId);
        long? after = null;
        if (resumeFrom is not null)
        {
            if (!long.TryParse(resumeFrom, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed))
            {
                return LastEventIdProblem("Last-Event-ID must be the non-negative whole number of the last event received.");
            }

            after = parsed;
        }

        var task = await store.GetAsync(context.User.TaskScope(), id, cancellationToken);
        if (task is null)
        {
            return TasksApi.TaskNotFound(id);
        }

        if (after is { } seen && await TaskEventStream.PastTheLastEventAsync(task, seen, store, cancellationToken) is { } last)
        {
            return LastEventIdProblem($"Last-Event-ID {seen} is past the task's last event ({last}); connect without it for a snapshot.");
        }

        // The client has every event of a task that has ended: nothing to stream. A 204 also tells
        // a browser's EventSource to stop reconnecting.
        if (after == task.LastEventSeq && task.IsFinal)
        {
            return TypedResults.NoContent();
        }

        return new TaskEventStream(task, after, store, bus, options.Value);
    }
}
