using System.Security.Claims;
using Microsoft.AspNetCore.Http.HttpResults;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Jobs.Webhooks;
using TaskDashboard.Web.Security;
using TaskDashboard.Web.Tasks;

namespace TaskDashboard.Web.Webhooks;

public static class WebhooksApi
{
    public static RouteGroupBuilder MapWebhooks(this IEndpointRouteBuilder app)
    {
        var tasks = app.MapGroup("/api/tasks/{id:guid}/webhooks").WithTags("Webhooks");
        tasks.MapGet("/", ListAsync).WithName("ListTaskWebhooks");
        tasks.MapPost("/{deliveryId:guid}/redeliver", RedeliverAsync).WithName("RedeliverWebhook").RequireAuthorization(SecurityApi.OpsPolicy);

        var webhooks = app.MapGroup("/api/webhooks").WithTags("Webhooks").RequireAuthorization(SecurityApi.OpsPolicy);
        webhooks.MapGet("/secret", GetSecretAsync).WithName("GetWebhookSecret");
        return tasks;
    }

    /// <summary>The task's webhook deliveries with every attempt (time, status code, duration, error).</summary>
    public static async Task<Results<Ok<IReadOnlyList<WebhookDelivery>>, ProblemHttpResult>> ListAsync(
        Guid id, ClaimsPrincipal user, TaskStore tasks, WebhookStore webhooks, CancellationToken cancellationToken)
    {
        if (await tasks.GetAsync(user.TaskScope(), id, cancellationToken) is null)
        {
            return TasksApi.TaskNotFound(id);
        }

        return TypedResults.Ok(await webhooks.ListForTaskAsync(id, cancellationToken));
    }

    /// <summary>Sends a delivery again (ops): a new delivery with the same webhook-id and body.</summary>
    public static async Task<Results<Accepted, ProblemHttpResult>> RedeliverAsync(
        Guid id, Guid deliveryId, ClaimsPrincipal user, TaskStore tasks, WebhookStore webhooks, CancellationToken cancellationToken)
    {
        if (await tasks.GetAsync(user.TaskScope(), id, cancellationToken) is null)
        {
            return TasksApi.TaskNotFound(id);
        }

        return await webhooks.RedeliverAsync(id, deliveryId, cancellationToken) is { } created
            ? TypedResults.Accepted($"/api/tasks/{id}/webhooks#{created}")
            : TypedResults.Problem($"Task {id} has no webhook delivery {deliveryId}.", statusCode: StatusCodes.Status404NotFound, title: "Delivery not found");
    }

    /// <summary>The signing secret receivers verify with (ops only).</summary>
    public static async Task<Ok<WebhookSecretResponse>> GetSecretAsync(WebhookSigner signer, CancellationToken cancellationToken) =>
        TypedResults.Ok(new WebhookSecretResponse(await signer.GetSecretAsync(cancellationToken)));
}

public sealed record WebhookSecretResponse(string Secret);
