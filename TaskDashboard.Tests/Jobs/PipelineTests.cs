using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using Microsoft.Extensions.DependencyInjection;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;
using TaskDashboard.Web.Tasks;

namespace TaskDashboard.Tests.Jobs;

[Collection(AppCollection.Name)]
public sealed class PipelineTests(WorkerApp app) : IClassFixture<WorkerApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task SubmittedExport_RunsToSucceeded_AndItsResultDownloadsWithEtagAndRanges()
    {
        var client = app.CreateClient();
        var created = await client.SubmitAsync("/api/exports", """{"parameters":{"from":"2025-01-01","to":"2025-03-31","format":"csv"}}""", Ct);

        var done = await app.WaitForStateAsync(client, created.Id, TaskState.Succeeded, Ct);
        var file = await client.GetAsync(done.ResultUrl, Ct);
        var bytes = await file.Content.ReadAsByteArrayAsync(Ct);
        var range = new HttpRequestMessage(HttpMethod.Get, done.ResultUrl) { Headers = { Range = new RangeHeaderValue(0, 9) } };
        var partial = await client.SendAsync(range, Ct);

        Assert.Equal(1, done.Attempt);
        Assert.Equal(100, done.Progress);
        Assert.Equal(await CountOrdersAsync("2025-01-01", "2025-04-01"), done.Result!.RowCount);
        Assert.Equal(HttpStatusCode.OK, file.StatusCode);
        Assert.Equal("text/csv", file.Content.Headers.ContentType?.MediaType);
        Assert.Equal(done.Result.FileName, file.Content.Headers.ContentDisposition?.FileNameStar ?? file.Content.Headers.ContentDisposition?.FileName);
        Assert.Equal($"\"{done.Result.Sha256}\"", file.Headers.ETag?.Tag);
        Assert.Equal(done.Result.Sha256, Convert.ToHexStringLower(SHA256.HashData(bytes)));
        Assert.StartsWith("id,created_at,region,product,quantity,amount\n1,2025-01-01T00:00:00Z,", System.Text.Encoding.UTF8.GetString(bytes));
        Assert.Equal(done.Result.RowCount + 1, bytes.Count(b => b == (byte)'\n'));
        Assert.Equal(HttpStatusCode.PartialContent, partial.StatusCode);
        Assert.Equal(bytes[..10], await partial.Content.ReadAsByteArrayAsync(Ct));
        var events = await app.Services.GetRequiredService<TaskStore>().GetEventsAsync(created.Id, 0, Ct);
        Assert.Equal("created", events[0].Type);
        Assert.Equal("started", events[1].Type);
        Assert.Equal("succeeded", events[^1].Type);
        Assert.Equal(Enumerable.Range(1, events.Count).Select(i => (long)i), events.Select(e => e.Seq));
    }

    [Fact]
    public async Task ReportCsv_HoldsTheSameTotalsAsSql()
    {
        var client = app.CreateClient();

        var task = await client.SubmitAsync("/api/reports", """{"parameters":{"from":"2025-02-10","to":"2025-05-20","groupBy":"region","format":"csv"}}""", Ct);
        var done = await app.WaitForStateAsync(client, task.Id, TaskState.Succeeded, Ct);
        var csv = await client.GetStringAsync(done.ResultUrl, Ct);

        await using var command = app.Database.CreateCommand("""
            SELECT string_agg(format('%s,%s,%s,%s', region, n, q, to_char(a, 'FM999999999990.00')), E'\n' ORDER BY region)
            FROM (SELECT region, count(*) n, sum(quantity) q, sum(amount) a FROM dashboard.orders
                  WHERE created_at >= '2025-02-10 00:00:00+00' AND created_at < '2025-05-21 00:00:00+00' GROUP BY region) t
            """);
        var expected = "region,orders,quantity,amount\n" + await command.ExecuteScalarAsync(Ct) + "\n";
        Assert.Equal(expected, csv);
        Assert.Equal(5, done.Result!.RowCount);
        Assert.Equal("text/csv; charset=utf-8", done.Result.ContentType);
    }

    [Fact]
    public async Task ReportHtml_IsSelfContainedWithChartAndTable()
    {
        var client = app.CreateClient();

        var task = await client.SubmitAsync("/api/reports", """{"parameters":{"from":"2025-01-01","to":"2025-12-31","groupBy":"month"}}""", Ct);
        var done = await app.WaitForStateAsync(client, task.Id, TaskState.Succeeded, Ct);
        var html = await client.GetStringAsync(done.ResultUrl, Ct);

        Assert.StartsWith("<!DOCTYPE html>", html);
        Assert.Contains("<svg", html);
        Assert.Equal(12, System.Text.RegularExpressions.Regex.Count(html, "<rect "));
        Assert.Contains("<td>2025-12</td>", html);
        Assert.DoesNotContain("http://", html.Replace("http://www.w3.org/2000/svg", "", StringComparison.Ordinal));
        Assert.Equal(12, done.Result!.RowCount);
    }

    [Fact]
    public async Task GzippedNdjsonExport_OfOneRegion_DecompressesToOneJsonObjectPerOrder()
    {
        var client = app.CreateClient();

        var task = await client.SubmitAsync("/api/exports", """{"parameters":{"from":"2025-03-01","to":"2025-03-31","region":"north","format":"ndjson","gzip":true}}""", Ct);
        var done = await app.WaitForStateAsync(client, task.Id, TaskState.Succeeded, Ct);
        var compressed = await client.GetByteArrayAsync(done.ResultUrl, Ct);
        using var gzip = new System.IO.Compression.GZipStream(new MemoryStream(compressed), System.IO.Compression.CompressionMode.Decompress);
        var lines = (await new StreamReader(gzip).ReadToEndAsync(Ct)).Split('\n', StringSplitOptions.RemoveEmptyEntries);

        await using var command = app.Database.CreateCommand("""
            SELECT count(*) FROM dashboard.orders
            WHERE region = 'north' AND created_at >= '2025-03-01 00:00:00+00' AND created_at < '2025-04-01 00:00:00+00'
            """);
        Assert.Equal((long)(await command.ExecuteScalarAsync(Ct))!, lines.Length);
        Assert.Equal(lines.Length, done.Result!.RowCount);
        Assert.Equal("application/gzip", done.Result.ContentType);
        Assert.All(lines, line =>
        {
            var order = System.Text.Json.JsonDocument.Parse(line).RootElement;
            Assert.Equal("north", order.GetProperty("region").GetString());
            Assert.StartsWith("2025-03-", order.GetProperty("createdAt").GetString());
        });
    }

    private async Task<long> CountOrdersAsync(string from, string to)
    {
        await using var command = app.Database.CreateCommand("SELECT count(*) FROM dashboard.orders WHERE created_at >= $1::date AND created_at < $2::date");
        command.Parameters.AddWithValue(from);
        command.Parameters.AddWithValue(to);
        return (long)(await command.ExecuteScalarAsync(Ct))!;
    }

    [Fact]
    public async Task RunningTask_EndsCancelled_AndLeavesNoArtifact_WhenCancelled()
    {
        var client = app.CreateClient();
        var created = await client.SubmitAsync("/api/exports", """{"parameters":{"throttleMs":300}}""", Ct);
        await app.WaitForStateAsync(client, created.Id, TaskState.Running, Ct);

        var cancel = await client.PostAsync($"/api/tasks/{created.Id}/cancel", null, Ct);
        var cancelled = await app.WaitForStateAsync(client, created.Id, TaskState.Cancelled, Ct, TimeSpan.FromSeconds(10));

        Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        Assert.True(cancelled.CancelRequested);
        Assert.False(Directory.Exists(Path.Combine(app.ArtifactsPath, created.Id.ToString("N"))));
        Assert.Equal(HttpStatusCode.Conflict, (await client.PostAsync($"/api/tasks/{created.Id}/cancel", null, Ct)).StatusCode);
    }
}
