using System.Net.Http.Json;
using TaskDashboard.Jobs.Webhooks;
using TaskDashboard.Tests.Infrastructure;

namespace TaskDashboard.Tests.Webhooks;

/// <summary>Deliveries survive the death of the worker process that was sending them.</summary>
[Collection(AppCollection.Name)]
public sealed class WebhookCrashTests(TaskDashboardApp app) : IClassFixture<TaskDashboardApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task WorkerKilledDuringDelivery_StillDelivers_WithTheSameWebhookIdAndBody()
    {
        var release = new TaskCompletionSource<int>();
        await using var receiver = new WebhookReceiver(n => n == 1 ? release.Task : Task.FromResult(200));
        await using var first = WorkerProcess.Start(app);
        var client = app.CreateClient();

        var task = await client.SubmitAsync("/api/exports", $$"""{"parameters":{"region":"west"},"callbackUrl":"{{receiver.Url}}"}""", Ct);
        var interrupted = await receiver.NextAsync(Ct);
        first.Kill();
        await using var second = WorkerProcess.Start(app);
        var retried = await receiver.NextAsync(Ct);
        release.TrySetResult(200);
        IReadOnlyList<WebhookDelivery> deliveries = [];
        await TaskDashboardApp.WaitUntilAsync(async () =>
        {
            deliveries = (await client.GetFromJsonAsync<List<WebhookDelivery>>($"/api/tasks/{task.Id}/webhooks", TaskDashboardApp.Json, Ct))!;
            return deliveries is [{ Status: "Delivered" }];
        }, "the delivery to succeed on the second worker", Ct);

        Assert.Equal(interrupted.Id, retried.Id);
        Assert.Equal(interrupted.Body, retried.Body);
        Assert.Equal(200, Assert.Single(deliveries).AttemptLog[^1].StatusCode);
    }
}
