using System.Security.Claims;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using TaskDashboard.Jobs.Execution;
using TaskDashboard.Jobs.Kinds;
using TaskDashboard.Jobs.Kinds.Export;
using TaskDashboard.Jobs.Kinds.Report;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Web.Security;

namespace TaskDashboard.Web.Tasks;

public static class TasksApi
{
    /// <summary>Longest accepted <c>delay</c> (a year, as for <c>runAt</c>).</summary>
    public const int MaxDelaySeconds = 365 * 24 * 3600;

    public const string SubmitRateLimit = "submissions";

    public static IHostApplicationBuilder AddTasks(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<TasksOptions>()
            .BindConfiguration(TasksOptions.SectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        builder.Services.AddSingleton<TaskCanceller>();
        // Each user's submissions through a token bucket of their own.
        builder.Services.AddRateLimiter(o => o.AddPolicy(SubmitRateLimit, context =>
        {
            var options = context.RequestServices.GetRequiredService<IOptions<TasksOptions>>().Value;
            return RateLimitPartition.GetTokenBucketLimiter(context.User.Id(), _ => new TokenBucketRateLimiterOptions
            {
                TokenLimit = options.SubmissionBurst,
                TokensPerPeriod = options.SubmissionsPerSecond,
                ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                QueueLimit = 0,
                AutoReplenishment = true,
            });
        }));
        return builder;
    }

    public static RouteGroupBuilder MapTasks(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api").WithTags("Tasks");

        api.MapPost("/tasks", SubmitAsync).WithName("SubmitTask").RequireRateLimiting(SubmitRateLimit);
        api.MapPost("/reports", (HttpContext context, TaskSubmitter submitter, IOptions<TasksOptions> options, CancellationToken ct) =>
            SubmitKindAsync(ReportTaskKind.KindName, context, submitter, options, ct)).WithName("SubmitReport").RequireRateLimiting(SubmitRateLimit);
        api.MapPost("/exports", (HttpContext context, TaskSubmitter submitter, IOptions<TasksOptions> options, CancellationToken ct) =>
            SubmitKindAsync(ExportTaskKind.KindName, context, submitter, options, ct)).WithName("SubmitExport").RequireRateLimiting(SubmitRateLimit);

        var tasks = api.MapGroup("/tasks");
        tasks.MapGet("/", ListAsync).WithName("ListTasks");
        tasks.MapGet("/{id:guid}", GetAsync).WithName("GetTask");
        tasks.MapPost("/{id:guid}/cancel", CancelAsync).WithName("CancelTask");
        // Open to a signed link without a key (see DownloadLinks); otherwise the caller's own tasks only.
        tasks.MapGet("/{id:guid}/result", GetResultAsync).WithName("GetTaskResult").AllowAnonymous();
        return api;
    }

    public static async Task<IResult> SubmitAsync(HttpContext context, TaskSubmitter submitter, IOptions<TasksOptions> options, CancellationToken cancellationToken)
    {
        var (body, error) = await JsonBody.ReadAsync<SubmitTaskRequest>(context.Request, options.Value.MaxRequestBodyBytes, cancellationToken);
        return error ?? await SubmitCoreAsync(context, submitter, options.Value, body!.Kind, body.Parameters, body.Priority, body.Timeout, body.CallbackUrl, body.RunAt, body.Delay, cancellationToken);
    }

    public static async Task<IResult> SubmitKindAsync(string kind, HttpContext context, TaskSubmitter submitter, IOptions<TasksOptions> options, CancellationToken cancellationToken)
    {
        var (body, error) = await JsonBody.ReadAsync<SubmitKindRequest>(context.Request, options.Value.MaxRequestBodyBytes, cancellationToken);
        return error ?? await SubmitCoreAsync(context, submitter, options.Value, kind, body!.Parameters, body.Priority, body.Timeout, body.CallbackUrl, body.RunAt, body.Delay, cancellationToken);
    }

    private static async Task<IResult> SubmitCoreAsync(
        HttpContext context,
        TaskSubmitter submitter,
        TasksOptions options,
        string? kind,
        System.Text.Json.JsonElement? parameters,
        string? priority,
        int? timeout,
        string? callbackUrl,
        DateTimeOffset? runAt,
        int? delay,
        CancellationToken cancellationToken)
    {
        if (delay is not null)
        {
            if (runAt is not null || delay is < 0 or > MaxDelaySeconds)
            {
                return TypedResults.ValidationProblem(new Dictionary<string, string[]>
                {
                    ["delay"] = [runAt is not null ? "Send 'runAt' or 'delay', not both." : $"'delay' is in seconds, from 0 to {MaxDelaySeconds}."],
                });
            }

            runAt = context.RequestServices.GetRequiredService<TimeProvider>().GetUtcNow().AddSeconds(delay.Value);
        }

        var idempotencyKey = context.Request.Headers["Idempotency-Key"] is { Count: > 0 } values ? values.ToString() : null;
        if (context.Request.Headers["X-Callback-URL"] is { Count: > 0 } header)
        {
            if (callbackUrl is not null && callbackUrl != header.ToString())
            {
                return TypedResults.ValidationProblem(new Dictionary<string, string[]>
                {
                    ["callbackUrl"] = ["The X-Callback-URL header and callbackUrl in the body differ; send one of them."],
                });
            }

            callbackUrl = header.ToString();
        }

        var outcome = await submitter.SubmitAsync(
            new SubmitTask(context.User.Id(), kind, parameters, priority, timeout, idempotencyKey, callbackUrl, runAt), cancellationToken);

        switch (outcome.Status)
        {
            case SubmitStatus.Invalid:
                return TypedResults.ValidationProblem(outcome.Errors);
            case SubmitStatus.TooManyWaiting:
                context.Response.Headers.RetryAfter = options.BackpressureRetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
                return TypedResults.Problem(outcome.Reason, statusCode: StatusCodes.Status429TooManyRequests, title: "Too many tasks waiting");
            case SubmitStatus.IdempotencyKeyReused:
                return TypedResults.Problem(
                    "This Idempotency-Key was already used with a different request; use a new key for a new task.",
                    statusCode: StatusCodes.Status422UnprocessableEntity,
                    title: "Idempotency-Key reused");
        }

        var task = outcome.Task!;
        context.Response.Headers.RetryAfter = options.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        context.Response.Headers.Location = TaskResponseMapping.SelfUrl(task.Id);
        var links = context.RequestServices.GetRequiredService<DownloadLinks>();
        return outcome.Status == SubmitStatus.Created
            ? TypedResults.Accepted(TaskResponseMapping.SelfUrl(task.Id), task.AsResponse(links))
            : TypedResults.Ok(task.AsResponse(links));
    }

    public static async Task<Results<Ok<TaskResponse>, ProblemHttpResult>> GetAsync(
        Guid id, ClaimsPrincipal user, TaskStore store, DownloadLinks links, CancellationToken cancellationToken)
    {
        var task = await store.GetAsync(user.TaskScope(), id, cancellationToken);
        return task is null ? TaskNotFound(id) : TypedResults.Ok(task.AsResponse(links));
    }

    public static async Task<Results<Ok<TaskListResponse>, ValidationProblem>> ListAsync(
        ClaimsPrincipal user,
        TaskStore store,
        DownloadLinks links,
        TaskKindRegistry kinds,
        IOptions<TasksOptions> options,
        string? status,
        string? kind,
        string? page,
        string? pageSize,
        string? search,
        CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>();
        if (search is { Length: > 200 })
        {
            errors["search"] = ["'search' is at most 200 characters."];
        }

        TaskState? state = null;
        if (status is not null)
        {
            if (Enum.TryParse<TaskState>(status, ignoreCase: true, out var parsed) && Enum.IsDefined(parsed) && !int.TryParse(status, out _))
            {
                state = parsed;
            }
            else
            {
                errors["status"] = [$"Unknown status '{status}': use one of {string.Join(", ", Enum.GetNames<TaskState>())}."];
            }
        }

        if (kind is not null && !kinds.TryGet(kind, out _))
        {
            errors["kind"] = [$"Unknown kind '{kind}': use one of {string.Join(", ", kinds.Names.Order())}."];
        }

        var pageNumber = 1;
        if (page is not null && (!int.TryParse(page, out pageNumber) || pageNumber < 1))
        {
            errors["page"] = ["'page' must be a whole number from 1."];
        }

        var size = options.Value.DefaultPageSize;
        if (pageSize is not null && (!int.TryParse(pageSize, out size) || size < 1 || size > options.Value.MaxPageSize))
        {
            errors["pageSize"] = [$"'pageSize' must be a whole number from 1 to {options.Value.MaxPageSize}."];
        }

        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors);
        }

        var offset = (long)(pageNumber - 1) * size;
        if (offset > int.MaxValue)
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["page"] = ["'page' is too large."] });
        }

        var result = await store.ListAsync(user.TaskScope(), state, kind, (int)offset, size, cancellationToken, search);
        return TypedResults.Ok(new TaskListResponse(result.Items.Select(t => t.AsResponse(links)).ToList(), pageNumber, size, result.TotalCount));
    }

    public static async Task<Results<Accepted<TaskResponse>, Ok<TaskResponse>, ProblemHttpResult>> CancelAsync(
        Guid id, ClaimsPrincipal user, TaskCanceller canceller, DownloadLinks links, CancellationToken cancellationToken)
    {
        if (await canceller.CancelAsync(user.TaskScope(), id, cancellationToken) is not var (task, changed))
        {
            return TaskNotFound(id);
        }

        if (changed && task.State == TaskState.Cancelled)
        {
            return TypedResults.Ok(task.AsResponse(links));
        }

        if (task.IsFinal)
        {
            return TypedResults.Problem(
                $"The task already ended as {task.State}; there is nothing to cancel.",
                statusCode: StatusCodes.Status409Conflict,
                title: "Task already finished");
        }

        return TypedResults.Accepted(TaskResponseMapping.SelfUrl(id), task.AsResponse(links));
    }

    public static async Task<Results<PhysicalFileHttpResult, ProblemHttpResult, ChallengeHttpResult>> GetResultAsync(
        Guid id,
        string? expires,
        string? signature,
        HttpContext context,
        TaskStore store,
        ArtifactStore artifacts,
        DownloadLinks links,
        CancellationToken cancellationToken)
    {
        TaskItem? task;
        if (expires is not null || signature is not null)
        {
            switch (links.Check(id, expires, signature))
            {
                case DownloadLinks.Verdict.Expired:
                    return TypedResults.Problem("This download link has expired; ask the API for the task again to get a fresh one.", statusCode: StatusCodes.Status403Forbidden, title: "Link expired");
                case DownloadLinks.Verdict.BadSignature:
                    return TypedResults.Problem("This download link is not valid: its signature does not match.", statusCode: StatusCodes.Status403Forbidden, title: "Invalid link");
            }

            task = await store.GetForExecutionAsync(id, cancellationToken);
        }
        else if (context.User.Identity?.IsAuthenticated != true)
        {
            return TypedResults.Challenge();
        }
        else
        {
            task = await store.GetAsync(context.User.TaskScope(), id, cancellationToken);
        }

        if (task is null)
        {
            return TaskNotFound(id);
        }

        if (task is not { State: TaskState.Succeeded, Result: { } result })
        {
            return TypedResults.Problem(
                $"The task is {task.State}; a result exists only once it has succeeded.",
                statusCode: StatusCodes.Status409Conflict,
                title: "No result yet");
        }

        var path = artifacts.Resolve(result);
        if (path is null)
        {
            return TypedResults.Problem("The task's result file is no longer stored.", statusCode: StatusCodes.Status410Gone, title: "Result gone");
        }

        return TypedResults.PhysicalFile(
            path,
            result.ContentType,
            result.FileName,
            lastModified: task.CompletedAt,
            entityTag: new EntityTagHeaderValue($"\"{result.Sha256}\""),
            enableRangeProcessing: true);
    }

    /// <summary>The 404 for a task that does not exist or belongs to someone else (the two look alike).</summary>
    internal static ProblemHttpResult TaskNotFound(Guid id) =>
        TypedResults.Problem($"There is no task {id} that you can see.", statusCode: StatusCodes.Status404NotFound, title: "Task not found");
}
