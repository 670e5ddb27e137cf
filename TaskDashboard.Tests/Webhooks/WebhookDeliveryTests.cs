using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Jobs.Webhooks;
using TaskDashboard.Tests.Infrastructure;
using TaskDashboard.Web.Tasks;

namespace TaskDashboard.Tests.Webhooks;

/// <summary>Real receivers on loopback, the real app with workers: signatures, retries, timeouts, 410, refusals.</summary>
[Collection(AppCollection.Name)]
public sealed class WebhookDeliveryTests(WorkerApp app) : IClassFixture<WorkerApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Delivery_IsSignedTheStandardWebhooksWay_AndTellsHowTheTaskEnded()
    {
        await using var receiver = new WebhookReceiver();
        var client = app.CreateClient();

        var task = await client.SubmitAsync("/api/exports", $$"""{"parameters":{"region":"west"},"callbackUrl":"{{receiver.Url}}"}""", Ct);
        var webhook = await receiver.NextAsync(Ct);
        var deliveries = await WaitForDeliveriesAsync(client, task.Id, d => d.Status == "Delivered");

        Assert.Equal(ExpectedSignature(webhook), webhook.Signature);
        Assert.StartsWith("msg_", webhook.Id);
        Assert.InRange(long.Parse(webhook.Timestamp), DateTimeOffset.UtcNow.AddMinutes(-1).ToUnixTimeSeconds(), DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 1);
        var body = JsonDocument.Parse(webhook.Body).RootElement;
        Assert.Equal("task.succeeded", body.GetProperty("type").GetString());
        Assert.Equal(task.Id, body.GetProperty("data").GetProperty("taskId").GetGuid());
        Assert.Equal("Succeeded", body.GetProperty("data").GetProperty("status").GetString());
        Assert.Equal($"http://tasks.example/api/tasks/{task.Id}/result", body.GetProperty("data").GetProperty("resultUrl").GetString());
        var delivery = Assert.Single(deliveries);
        Assert.Equal(webhook.Id, delivery.WebhookId);
        Assert.Equal(200, Assert.Single(delivery.AttemptLog).StatusCode);
        Assert.Single(receiver.Received);
    }

    [Fact]
    public async Task FailingReceiver_GetsTheEventOnceSuccessfully_AndTheLogShowsEveryAttempt()
    {
        await using var receiver = new WebhookReceiver(n => Task.FromResult(n <= 2 ? 500 : 200));
        var client = app.CreateClient();

        var task = await client.SubmitAsync("/api/exports", $$"""{"parameters":{"region":"east"},"callbackUrl":"{{receiver.Url}}"}""", Ct);
        var delivery = Assert.Single(await WaitForDeliveriesAsync(client, task.Id, d => d.Status == "Delivered"));
        await Task.Delay(500, Ct);

        Assert.Equal([500, 500, 200], delivery.AttemptLog.Select(a => a.StatusCode));
        Assert.Equal(3, receiver.Received.Count);
        Assert.Single(receiver.Received.Select(r => r.Id).Distinct());
        Assert.Single(receiver.Received.Select(r => r.Body).Distinct());
        Assert.Contains("500", delivery.AttemptLog[0].Error);
    }

    [Fact]
    public async Task HangingReceiver_HitsTheTimeout_AndIsTriedAgain()
    {
        await using var receiver = new WebhookReceiver(async n =>
        {
            if (n == 1)
            {
                await Task.Delay(3000);
            }

            return 204;
        });
        var client = app.CreateClient();

        var task = await client.SubmitAsync("/api/exports", $$"""{"parameters":{"region":"south"},"callbackUrl":"{{receiver.Url}}"}""", Ct);
        var delivery = Assert.Single(await WaitForDeliveriesAsync(client, task.Id, d => d.Status == "Delivered"));

        Assert.Equal(2, delivery.AttemptLog.Count);
        Assert.Null(delivery.AttemptLog[0].StatusCode);
        Assert.Contains("No answer within 1 s", delivery.AttemptLog[0].Error);
        Assert.InRange(delivery.AttemptLog[0].DurationMs, 900, 2500);
        Assert.Equal(204, delivery.AttemptLog[1].StatusCode);
    }

    [Fact]
    public async Task Gone_StopsRetrying()
    {
        await using var receiver = new WebhookReceiver(_ => Task.FromResult(410));
        var client = app.CreateClient();

        var task = await client.SubmitAsync("/api/exports", $$"""{"parameters":{"region":"north"},"callbackUrl":"{{receiver.Url}}"}""", Ct);
        var delivery = Assert.Single(await WaitForDeliveriesAsync(client, task.Id, d => d.Status == "Gone"));
        await Task.Delay(1000, Ct);

        Assert.Single(delivery.AttemptLog);
        Assert.Single(receiver.Received);
    }

    [Fact]
    public async Task ReceiverThatAlwaysFails_IsGivenUpOn_AfterTheLastScheduledAttempt()
    {
        await using var receiver = new WebhookReceiver(_ => Task.FromResult(503));
        var client = app.CreateClient();

        var task = await client.SubmitAsync("/api/exports", $$"""{"parameters":{"region":"central"},"callbackUrl":"{{receiver.Url}}"}""", Ct);
        var delivery = Assert.Single(await WaitForDeliveriesAsync(client, task.Id, d => d.Status == "Failed"));
        await Task.Delay(1000, Ct);

        // The test schedule has three delays: four attempts in all.
        Assert.Equal(4, delivery.AttemptLog.Count);
        Assert.Equal(4, receiver.Received.Count);
    }

    [Fact]
    public async Task CancelledTask_SendsTheCancelledEvent_ThroughTheHeader()
    {
        await using var receiver = new WebhookReceiver();
        var client = app.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/exports") { Content = ApiClientExtensions.Json("""{"parameters":{"throttleMs":1000}}""") };
        request.Headers.Add("X-Callback-URL", receiver.Url);
        var task = (await (await client.SendAsync(request, Ct)).Content.ReadFromJsonAsync<TaskResponse>(TaskDashboardApp.Json, Ct))!;

        await client.PostAsync($"/api/tasks/{task.Id}/cancel", null, Ct);
        var webhook = await receiver.NextAsync(Ct);

        Assert.Equal(receiver.Url, task.CallbackUrl);
        var body = JsonDocument.Parse(webhook.Body).RootElement;
        Assert.Equal("task.cancelled", body.GetProperty("type").GetString());
        Assert.Equal(JsonValueKind.Null, body.GetProperty("data").GetProperty("resultUrl").ValueKind);
    }

    [Fact]
    public async Task Ops_Redelivers_WithTheSameWebhookIdAndBody()
    {
        await using var receiver = new WebhookReceiver();
        var client = app.CreateClient();
        var (_, opsKey) = await app.CreateUserAsync("ops", ops: true, Ct);
        var task = await client.SubmitAsync("/api/exports", $$"""{"parameters":{"region":"north"},"callbackUrl":"{{receiver.Url}}"}""", Ct);
        var original = Assert.Single(await WaitForDeliveriesAsync(client, task.Id, d => d.Status == "Delivered"));

        var redeliver = await app.CreateClientWithKey(opsKey).PostAsync($"/api/tasks/{task.Id}/webhooks/{original.Id}/redeliver", null, Ct);
        var unknown = await app.CreateClientWithKey(opsKey).PostAsync($"/api/tasks/{task.Id}/webhooks/{Guid.NewGuid()}/redeliver", null, Ct);
        var deliveries = await WaitForDeliveriesAsync(client, task.Id, d => d.Status == "Delivered", count: 2);

        Assert.Equal(HttpStatusCode.Accepted, redeliver.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal(2, receiver.Received.Count);
        Assert.Equal(receiver.Received[0].Id, receiver.Received[1].Id);
        Assert.Equal(receiver.Received[0].Body, receiver.Received[1].Body);
        Assert.Equal(2, deliveries.Count);
    }

    [Theory]
    [InlineData("http://10.1.2.3/hook")]
    [InlineData("http://192.168.0.10/hook")]
    [InlineData("http://169.254.169.254/latest/meta-data")]
    [InlineData("http://[fd00:ec2::254]/")]
    [InlineData("ftp://127.0.0.1/hook")]
    [InlineData("http://user:secret@127.0.0.1/hook")]
    [InlineData("/relative/hook")]
    public async Task RefusedCallbackUrl_Gets400_AndNothingIsWritten(string url)
    {
        var before = await app.CountTasksAsync(Ct);

        var response = await app.CreateClient().PostAsync("/api/exports", ApiClientExtensions.Json($$"""{"parameters":{},"callbackUrl":"{{url}}"}"""), Ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var errors = (await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("errors");
        Assert.True(errors.TryGetProperty("callbackUrl", out _));
        Assert.Equal(before, await app.CountTasksAsync(Ct));
    }

    [Fact]
    public async Task DifferentHeaderAndBodyCallbacks_Get400()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/exports") { Content = ApiClientExtensions.Json("""{"parameters":{},"callbackUrl":"http://127.0.0.1:1/a"}""") };
        request.Headers.Add("X-Callback-URL", "http://127.0.0.1:1/b");

        var response = await app.CreateClient().SendAsync(request, Ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }

    private async Task<IReadOnlyList<WebhookDelivery>> WaitForDeliveriesAsync(HttpClient client, Guid taskId, Func<WebhookDelivery, bool> done, int count = 1)
    {
        IReadOnlyList<WebhookDelivery> deliveries = [];
        await TaskDashboardApp.WaitUntilAsync(async () =>
        {
            deliveries = (await client.GetFromJsonAsync<List<WebhookDelivery>>($"/api/tasks/{taskId}/webhooks", TaskDashboardApp.Json, Ct))!;
            return deliveries.Count >= count && deliveries.All(done);
        }, $"the webhook deliveries of task {taskId}", Ct);
        return deliveries;
    }

    // Computed here from the Standard Webhooks recipe, not with the app's signer.
    private static string ExpectedSignature(ReceivedWebhook webhook)
    {
        var key = Convert.FromBase64String(TaskDashboardApp.WebhookSecret["whsec_".Length..]);
        var mac = HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"{webhook.Id}.{webhook.Timestamp}.{webhook.Body}"));
        return "v1," + Convert.ToBase64String(mac);
    }
}
