using System.Globalization;
using System.Security.Claims;
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
        app.MapGet("/api/events", StreamOwnerEvents).WithTags("Progress").WithName("MyTaskEvents");
        var progress = app.ServiceProvider.GetRequiredService<IOptions<ProgressOptions>>().Value;
        app.MapHub<ProgressHub>("/hubs/tasks", o => o.TransportSendTimeout = progress.HubSendTimeout);
        return group;
    }

    /// <summary><c>text/event-stream</c> of every task of the caller, live.</summary>
    public static IResult StreamOwnerEvents(
        ClaimsPrincipal user, TaskStore store, TaskEventBus bus, IOptions<ProgressOptions> options) =>
        new OwnerEventStream(user.Id(), store, bus, options.Value);

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
        var resumeFrom = context.Request.Headers["Last-Event-ID"] is { Count: > 0 } header ? header.ToString() : lastEventId;
        long? after = null;
        if (!string.IsNullOrEmpty(resumeFrom))
        {
            if (!long.TryParse(resumeFrom, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed))
            {
                return TypedResults.ValidationProblem(new Dictionary<string, string[]>
                {
                    ["Last-Event-ID"] = ["Last-Event-ID must be the non-negative whole number of the last event received."],
                });
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
            return TypedResults.ValidationProblem(new Dictionary<string, string[]>
            {
                ["Last-Event-ID"] = [$"Last-Event-ID {seen} is past the task's last event ({last}); connect without it for a snapshot."],
            });
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
