using System.Security.Claims;
using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using TaskDashboard.Jobs.Schedules;
using TaskDashboard.Web.Security;

namespace TaskDashboard.Web.Schedules;

/// <summary><c>POST /api/schedules</c> and friends: recurring submissions, each run a normal task.</summary>
public sealed record CreateScheduleRequest(
    string? Name, string? Kind, JsonElement? Parameters, string? Priority, int? Timeout, string? CallbackUrl, string? Cron, string? TimeZone);

public sealed record ScheduleResponse(
    Guid Id,
    string Name,
    string Kind,
    JsonElement Parameters,
    string Priority,
    int? Timeout,
    string? CallbackUrl,
    string Cron,
    string TimeZone,
    bool Paused,
    DateTimeOffset? NextRunAt,
    int RunCount,
    DateTimeOffset? LastRunAt,
    Guid? LastTaskId,
    string? LastError,
    DateTimeOffset CreatedAt);

public static class SchedulesApi
{
    public static RouteGroupBuilder MapSchedules(this IEndpointRouteBuilder app)
    {
        var schedules = app.MapGroup("/api/schedules").WithTags("Schedules");
        schedules.MapGet("/", ListAsync).WithName("ListSchedules");
        schedules.MapPost("/", CreateAsync).WithName("CreateSchedule");
        schedules.MapGet("/{id:guid}", GetAsync).WithName("GetSchedule");
        schedules.MapPost("/{id:guid}/pause", (Guid id, ClaimsPrincipal user, ScheduleService service, TimeProvider time, CancellationToken ct) => SetPausedAsync(id, true, user, service, time, ct)).WithName("PauseSchedule");
        schedules.MapPost("/{id:guid}/resume", (Guid id, ClaimsPrincipal user, ScheduleService service, TimeProvider time, CancellationToken ct) => SetPausedAsync(id, false, user, service, time, ct)).WithName("ResumeSchedule");
        schedules.MapDelete("/{id:guid}", DeleteAsync).WithName("DeleteSchedule");
        return schedules;
    }

    public static async Task<Ok<IReadOnlyList<ScheduleResponse>>> ListAsync(ClaimsPrincipal user, ScheduleStore store, TimeProvider time, CancellationToken cancellationToken) =>
        TypedResults.Ok<IReadOnlyList<ScheduleResponse>>((await store.ListAsync(user.TaskScope(), cancellationToken)).Select(s => s.AsResponse(time.GetUtcNow())).ToList());

    public static async Task<Results<Ok<ScheduleResponse>, ProblemHttpResult>> GetAsync(Guid id, ClaimsPrincipal user, ScheduleStore store, TimeProvider time, CancellationToken cancellationToken) =>
        await store.GetAsync(user.TaskScope(), id, cancellationToken) is { } schedule ? TypedResults.Ok(schedule.AsResponse(time.GetUtcNow())) : NotFound(id);

    public static async Task<Results<Created<ScheduleResponse>, ValidationProblem>> CreateAsync(
        CreateScheduleRequest? request, ClaimsPrincipal user, ScheduleService service, TimeProvider time, CancellationToken cancellationToken)
    {
        var (schedule, errors) = await service.CreateAsync(
            new NewSchedule(user.Id(), request?.Name, request?.Kind, request?.Parameters, request?.Priority, request?.Timeout, request?.CallbackUrl, request?.Cron, request?.TimeZone),
            cancellationToken);
        return schedule is null
            ? TypedResults.ValidationProblem(errors)
            : TypedResults.Created($"/api/schedules/{schedule.Id}", schedule.AsResponse(time.GetUtcNow()));
    }

    public static async Task<Results<Ok<ScheduleResponse>, ProblemHttpResult>> SetPausedAsync(
        Guid id, bool paused, ClaimsPrincipal user, ScheduleService service, TimeProvider time, CancellationToken cancellationToken) =>
        await service.SetPausedAsync(user.TaskScope(), id, paused, cancellationToken) is { } schedule ? TypedResults.Ok(schedule.AsResponse(time.GetUtcNow())) : NotFound(id);

    public static async Task<Results<NoContent, ProblemHttpResult>> DeleteAsync(Guid id, ClaimsPrincipal user, ScheduleService service, CancellationToken cancellationToken) =>
        await service.DeleteAsync(user.TaskScope(), id, cancellationToken) ? TypedResults.NoContent() : NotFound(id);

    public static ScheduleResponse AsResponse(this Schedule s, DateTimeOffset now) => new(
        s.Id, s.Name, s.Kind, s.Parameters, s.Priority, s.TimeoutSeconds, s.CallbackUrl, s.Cron, s.TimeZone, s.Paused,
        s.NextRunAt(now), s.RunCount, s.LastRunAt, s.LastTaskId, s.LastError, s.CreatedAt);

    private static ProblemHttpResult NotFound(Guid id) =>
        TypedResults.Problem($"There is no schedule {id} that you can see.", statusCode: StatusCodes.Status404NotFound, title: "Schedule not found");
}
