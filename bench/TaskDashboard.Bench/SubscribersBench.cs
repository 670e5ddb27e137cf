using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;

namespace TaskDashboard.Bench;

/// <summary>
/// How many concurrent SSE subscribers one web node holds: N streams on one task, the node's memory
/// per subscriber (RSS growth / N) and the delivery latency of the task's events to all of them.
/// </summary>
internal static class SubscribersBench
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    public static async Task RunAsync(string[] args)
    {
        var values = BenchArgs.Parse(args);
        var url = BenchArgs.LoopbackUrl(values["url"]);

        var count = int.Parse(values.GetValueOrDefault("count", "18000"), Invariant);
        var webPid = int.Parse(values["web-pid"], Invariant);
        var output = values.GetValueOrDefault("out", "bench/results/subscribers.json");
        // HTTP/2 (cleartext, prior knowledge) multiplexes the streams over few connections: the node
        // then needs a descriptor per connection, not per stream (--protocol http2 with --url pointing
        // at an HTTP/2 endpoint).
        var http2 = values.GetValueOrDefault("protocol", "http1.1") == "http2";
        using var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = count + 10,
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            EnableMultipleHttp2Connections = true,
        };
        using var http = new HttpClient(handler)
        {
            BaseAddress = url,
            Timeout = Timeout.InfiniteTimeSpan,
            DefaultRequestVersion = http2 ? System.Net.HttpVersion.Version20 : System.Net.HttpVersion.Version11,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        }.Authorize();

        // The task waits (no worker yet) while every subscriber connects.
        var submitted = await http.PostAsync("/api/exports", new StringContent(
            """{"parameters":{"from":"2025-01-01","to":"2025-01-31","throttleMs":1000}}""", System.Text.Encoding.UTF8, "application/json"));
        submitted.EnsureSuccessStatusCode();
        var id = (await submitted.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        GC.Collect();
        await Task.Delay(1000);
        var before = ExportBench.ReadStatusMb(webPid, "VmRSS");

        var latencies = new List<double>();
        var connected = 0;
        var finished = 0;
        var allConnected = new TaskCompletionSource();
        using var gate = new SemaphoreSlim(200);
        var connect = Stopwatch.StartNew();
        var streams = Enumerable.Range(0, count).Select(async _ =>
        {
            await gate.WaitAsync();
            HttpResponseMessage response;
            try
            {
                response = await http.GetAsync($"/api/tasks/{id}/events", HttpCompletionOption.ResponseHeadersRead);
            }
            finally
            {
                gate.Release();
            }

            using (response)
            using (var reader = new StreamReader(await response.Content.ReadAsStreamAsync()))
            {
                if (Interlocked.Increment(ref connected) == count)
                {
                    allConnected.TrySetResult();
                }

                string? name = null;
                var mine = new List<double>();
                while (await reader.ReadLineAsync() is { } line)
                {
                    if (line.StartsWith("event: ", StringComparison.Ordinal))
                    {
                        name = line[7..];
                    }
                    else if (line.StartsWith("data: ", StringComparison.Ordinal) && name is "progress" or "succeeded")
                    {
                        // Cheap on purpose: 18,000 clients share the node's two cores.
                        var at = line.IndexOf("\"at\":\"", StringComparison.Ordinal) + 6;
                        var end = line.IndexOf('"', at);
                        mine.Add((DateTimeOffset.UtcNow - DateTimeOffset.Parse(line.AsSpan(at, end - at), Invariant)).TotalMilliseconds);
                    }
                }

                lock (latencies)
                {
                    latencies.AddRange(mine);
                }

                Interlocked.Increment(ref finished);
            }
        }).ToList();

        await allConnected.Task.WaitAsync(TimeSpan.FromMinutes(5));
        var connectSeconds = connect.Elapsed.TotalSeconds;
        await Task.Delay(2000);
        var held = ExportBench.ReadStatusMb(webPid, "VmRSS");
        var perSubscriberKb = (held - before) * 1024 / count;
        Console.WriteLine(string.Create(Invariant, $"{count} SSE streams over {(http2 ? "HTTP/2" : "HTTP/1.1")} connected in {connectSeconds:F1} s; web node RSS {before:F0} MB -> {held:F0} MB = {perSubscriberKb:F1} KB per subscriber"));

        var worker = ExportBench.StartWorker(values["web"], values["cs"], values["artifacts"], 1);
        await Task.WhenAll(streams).WaitAsync(TimeSpan.FromMinutes(10));
        ExportBench.Stop(worker);

        latencies.Sort();
        double At(double q) => latencies.Count == 0 ? 0 : latencies[Math.Min(latencies.Count - 1, (int)Math.Ceiling(q * latencies.Count) - 1)];
        Console.WriteLine($"| {"subscribers",11} | {"protocol",8} | {"KB each",8} | {"deliveries",10} | {"p50 ms",7} | {"p99 ms",7} | {"max ms",7} |");
        Console.WriteLine("|-------------|----------|----------|------------|---------|---------|---------|");
        Console.WriteLine(string.Create(Invariant, $"| {count,11} | {(http2 ? "HTTP/2" : "HTTP/1.1"),8} | {perSubscriberKb,8:F1} | {latencies.Count,10} | {At(0.5),7:F1} | {At(0.99),7:F1} | {At(1),7:F1} |"));
        Console.WriteLine("targets: 20,000 subscribers at <= 32 KB each, p99 delivery <= 250 ms");
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
        await File.WriteAllTextAsync(output, JsonSerializer.Serialize(new
        {
            benchmark = "subscribers",
            at = DateTimeOffset.UtcNow,
            subscribers = count,
            protocol = http2 ? "HTTP/2" : "HTTP/1.1",
            connectSeconds,
            rssBeforeMb = before,
            rssHeldMb = held,
            perSubscriberKb,
            deliveries = latencies.Count,
            p50Ms = At(0.5),
            p99Ms = At(0.99),
            maxMs = At(1),
            finishedStreams = finished,
        }, new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"JSON: {output}");
    }
}
