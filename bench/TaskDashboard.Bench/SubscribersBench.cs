using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR.Client;

namespace TaskDashboard.Bench;

/// <summary>
/// How many concurrent SSE subscribers one web node holds: N streams on one task, the node's memory
/// per subscriber (RSS growth / N) and the delivery latency of the task's events to all of them.
/// With <c>--protocol signalr</c>, N SignalR connections (WebSockets) that each subscribe to the task.
/// </summary>
internal static class SubscribersBench
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    public static async Task RunAsync(string[] args)
    {
        var values = BenchArgs.Parse(args);
        var url = BenchArgs.LoopbackUrl(values["url"]);

        var count = int.Parse(values.GetValueOrDefault("count", "20000"), Invariant);
        var webPid = int.Parse(values["web-pid"], Invariant);
        var output = values.GetValueOrDefault("out", "bench/results/subscribers.json");
        // HTTP/2 (cleartext, prior knowledge) multiplexes the streams over few connections: the node
        // then needs a descriptor per connection, not per stream (--protocol http2 with --url pointing
        // at an HTTP/2 endpoint).
        var protocol = values.GetValueOrDefault("protocol", "http2");
        var http2 = protocol == "http2";
        var signalR = protocol == "signalr";
        var protocolName = http2 ? "HTTP/2" : signalR ? "SignalR" : "HTTP/1.1";
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

        // Round 1 is a warm-up: the node's and this client's delivery paths are still being compiled
        // by the JIT during the first events (their first two events took 1.5-2 s to reach everyone);
        // it measures the memory per subscriber. The latency comes from the rounds after it.
        var rounds = int.Parse(values.GetValueOrDefault("rounds", "2"), Invariant);
        // Each round's export is submitted with this delay (s), so that it starts only after every
        // stream has connected; one worker process runs all rounds, warm after the first.
        var startDelay = int.Parse(values.GetValueOrDefault("start-delay", "30"), Invariant);
        using var worker = ExportBench.StartWorker(values["web"], values["cs"], values["artifacts"], 1);
        try
        {
            var perSubscriberKb = 0.0;
            var (rssBefore, rssHeld, connectSeconds, finished) = (0.0, 0.0, 0.0, 0);
            var (webCpuUs, clientCpuUs) = (0.0, 0.0);
            var latencies = new List<double>();
            var perEvent = new List<(int Round, long Seq, double P50, double Max)>();
            for (var round = 1; round <= rounds; round++)
            {
                GC.Collect();
                await Task.Delay(1000);
                var before = ExportBench.ReadStatusMb(webPid, "VmRSS");
                var result = await RunRoundAsync(http, url, protocol, count, webPid, startDelay);
                (connectSeconds, finished, webCpuUs, clientCpuUs) = (result.ConnectSeconds, result.Finished, result.WebCpuUs, result.ClientCpuUs);
                var measured = round > 1 || rounds == 1;
                if (round == 1)
                {
                    (rssBefore, rssHeld) = (before, result.HeldMb);
                    perSubscriberKb = (rssHeld - rssBefore) * 1024 / count;
                    Console.WriteLine(string.Create(Invariant, $"{count} {(signalR ? "SignalR subscriptions" : $"SSE streams over {protocolName}")} connected in {connectSeconds:F1} s; web node RSS {rssBefore:F0} MB -> {rssHeld:F0} MB = {perSubscriberKb:F1} KB per subscriber"));
                }

                foreach (var (seq, ofEvent) in result.BySeq.OrderBy(e => e.Key))
                {
                    ofEvent.Sort();
                    perEvent.Add((round, seq, ofEvent[ofEvent.Count / 2], ofEvent[^1]));
                    if (measured)
                    {
                        latencies.AddRange(ofEvent);
                    }
                }

                Console.WriteLine(string.Create(Invariant, $"round {round}{(measured ? "" : " (warm-up)")}: CPU per delivery: node {result.WebCpuUs:F1} µs, client {result.ClientCpuUs:F1} µs; per event p50/max ms: {string.Join(", ", perEvent.Where(e => e.Round == round).Select(e => $"#{e.Seq} {e.P50:F0}/{e.Max:F0}"))}"));
            }

            latencies.Sort();
            double At(double q) => latencies.Count == 0 ? 0 : latencies[Math.Min(latencies.Count - 1, (int)Math.Ceiling(q * latencies.Count) - 1)];
            Console.WriteLine($"| {"subscribers",11} | {"protocol",8} | {"KB each",8} | {"deliveries",10} | {"p50 ms",7} | {"p99 ms",7} | {"max ms",7} | {"node µs/delivery",16} |");
            Console.WriteLine("|-------------|----------|----------|------------|---------|---------|---------|------------------|");
            Console.WriteLine(string.Create(Invariant, $"| {count,11} | {protocolName,8} | {perSubscriberKb,8:F1} | {latencies.Count,10} | {At(0.5),7:F1} | {At(0.99),7:F1} | {At(1),7:F1} | {webCpuUs,16:F1} |"));
            Console.WriteLine("targets: 20,000 subscribers at <= 32 KB each, p99 delivery <= 250 ms");
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
            await File.WriteAllTextAsync(output, JsonSerializer.Serialize(new
            {
                benchmark = "subscribers",
                at = DateTimeOffset.UtcNow,
                subscribers = count,
                rounds,
                protocol = protocolName,
                connectSeconds,
                rssBeforeMb = rssBefore,
                rssHeldMb = rssHeld,
                perSubscriberKb,
                deliveries = latencies.Count,
                p50Ms = At(0.5),
                p99Ms = At(0.99),
                maxMs = At(1),
                finishedStreams = finished,
                nodeCpuUsPerDelivery = webCpuUs,
                clientCpuUsPerDelivery = clientCpuUs,
                perEvent = perEvent.Select(e => new { round = e.Round, seq = e.Seq, p50Ms = e.P50, maxMs = e.Max }),
            }, new JsonSerializerOptions { WriteIndented = true }));
            Console.WriteLine($"JSON: {output}");
        }
        finally
        {
            // Also when a round fails: the worker is this process's child, not the script's.
            ExportBench.Stop(worker);
        }
    }

    /// <summary>
    /// One export watched by <paramref name="count"/> streams: every stream connects while the task
    /// is still scheduled, then the worker runs it; ends when every stream has seen the terminal event. Returns each event's delivery latencies by sequence number.
    /// </summary>
    private static async Task<(Dictionary<long, List<double>> BySeq, double HeldMb, double ConnectSeconds, int Finished, double WebCpuUs, double ClientCpuUs)> RunRoundAsync(
        HttpClient http, Uri url, string protocol, int count, int webPid, int startDelay)
    {
        var submitted = await http.PostAsync("/api/exports", new StringContent(
            $$"""{"parameters":{"from":"2025-01-01","to":"2025-01-31","throttleMs":1000},"delay":{{startDelay}}}""", System.Text.Encoding.UTF8, "application/json"));
        submitted.EnsureSuccessStatusCode();
        var id = (await submitted.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;

        var bySeq = new Dictionary<long, List<double>>();
        void Record(long seq, string name, DateTimeOffset at)
        {
            if (name is "progress" or "succeeded")
            {
                var ms = (DateTimeOffset.UtcNow - at).TotalMilliseconds;
                lock (bySeq)
                {
                    if (!bySeq.TryGetValue(seq, out var ofEvent))
                    {
                        bySeq[seq] = ofEvent = [];
                    }

                    ofEvent.Add(ms);
                }
            }
        }

        var connect = Stopwatch.StartNew();
        var connections = new List<Http2SseConnection>();
        var hubs = new List<HubConnection>();
        List<Task> streams;
        if (protocol == "http2")
        {
            streams = await OpenHttp2StreamsAsync(url, $"/api/tasks/{id}/events", count, Record, connections);
        }
        else if (protocol == "signalr")
        {
            streams = await OpenHubSubscriptionsAsync(url, Guid.Parse(id), count, Record, hubs);
        }
        else
        {
            streams = OpenHttp1Streams(http, $"/api/tasks/{id}/events", count, Record, out var allConnected);
            await allConnected.WaitAsync(TimeSpan.FromMinutes(5));
        }

        var connectSeconds = connect.Elapsed.TotalSeconds;
        var task = await http.GetFromJsonAsync<JsonElement>($"/api/tasks/{id}");
        if (task.GetProperty("status").GetString() != "Scheduled")
        {
            throw new InvalidOperationException($"The export started before every stream had connected ({connectSeconds:F0} s): raise --start-delay ({startDelay} s).");
        }

        await Task.Delay(2000);
        var held = ExportBench.ReadStatusMb(webPid, "VmRSS");

        // The CPU the node and this client spend from the export's start to its end, per delivery:
        // steadier between runs than latency on a shared 2-core machine.
        while ((await http.GetFromJsonAsync<JsonElement>($"/api/tasks/{id}")).GetProperty("status").GetString() == "Scheduled")
        {
            await Task.Delay(50);
        }

        var (webCpu, clientCpu) = (CpuTimes.ProcessSeconds(webPid), CpuTimes.ProcessSeconds(Environment.ProcessId));
        await Task.WhenAll(streams).WaitAsync(TimeSpan.FromMinutes(10));
        foreach (var connection in connections)
        {
            await connection.DisposeAsync();
        }

        await Task.WhenAll(hubs.Select(hub => hub.DisposeAsync().AsTask()));

        var deliveries = bySeq.Sum(e => e.Value.Count);
        return (bySeq, held, connectSeconds, streams.Count(s => s.IsCompletedSuccessfully),
            (CpuTimes.ProcessSeconds(webPid) - webCpu) * 1e6 / deliveries, (CpuTimes.ProcessSeconds(Environment.ProcessId) - clientCpu) * 1e6 / deliveries);
    }

    // HTTP/2: 100 streams per connection (Kestrel's default limit), a connection's streams opened
    // together, one connection after another.
    private static async Task<List<Task>> OpenHttp2StreamsAsync(
        Uri url, string path, int count, Action<long, string, DateTimeOffset> record, List<Http2SseConnection> connections)
    {
        const int streamsPerConnection = 100;
        var ended = new List<Task>();
        for (var first = 0; first < count; first += streamsPerConnection)
        {
            var connection = await Http2SseConnection.ConnectAsync(url, record);
            connections.Add(connection);
            var opened = new List<Task>();
            for (var i = first; i < Math.Min(count, first + streamsPerConnection); i++)
            {
                var (stream, end) = await connection.OpenAsync(path, BenchAuth.ApiKey);
                opened.Add(stream);
                ended.Add(end);
            }

            await Task.WhenAll(opened).WaitAsync(TimeSpan.FromMinutes(1));
        }

        return ended;
    }

    // SignalR: one WebSocket connection per subscriber, each subscribed to the task, 50 connecting at
    // a time. A subscriber is done when it has the final event.
    private static async Task<List<Task>> OpenHubSubscriptionsAsync(
        Uri url, Guid taskId, int count, Action<long, string, DateTimeOffset> record, List<HubConnection> hubs)
    {
        var ended = new List<Task>();
        var gate = new SemaphoreSlim(50);
        await Task.WhenAll(Enumerable.Range(0, count).Select(async _ =>
        {
            await gate.WaitAsync();
            try
            {
                var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                var hub = new HubConnectionBuilder()
                    .WithUrl(new Uri(url, "/hubs/tasks"), o =>
                    {
                        o.AccessTokenProvider = () => Task.FromResult<string?>(BenchAuth.ApiKey);
                        o.Transports = HttpTransportType.WebSockets;
                        o.SkipNegotiation = true;
                    })
                    .Build();
                hub.On<JsonElement>("TaskProgressChanged", e => record(e.GetProperty("seq").GetInt64(), "progress", e.GetProperty("at").GetDateTimeOffset()));
                hub.On<JsonElement>("TaskStateChanged", e =>
                {
                    if (e.GetProperty("type").GetString() is "succeeded" or "failed" or "cancelled")
                    {
                        record(e.GetProperty("seq").GetInt64(), e.GetProperty("type").GetString()!, e.GetProperty("at").GetDateTimeOffset());
                        done.TrySetResult();
                    }
                });
                await hub.StartAsync();
                await hub.InvokeAsync<JsonElement>("SubscribeToTask", taskId, null);
                lock (hubs)
                {
                    hubs.Add(hub);
                    ended.Add(done.Task);
                }
            }
            finally
            {
                gate.Release();
            }
        }));

        return ended;
    }

    // HTTP/1.1: one connection per stream through HttpClient, 200 connecting at a time.
    private static List<Task> OpenHttp1Streams(HttpClient http, string path, int count, Action<long, string, DateTimeOffset> record, out Task allConnected)
    {
        var connected = 0;
        var all = new TaskCompletionSource();
        allConnected = all.Task;
        var gate = new SemaphoreSlim(200);
        return Enumerable.Range(0, count).Select(async _ =>
        {
            await gate.WaitAsync();
            HttpResponseMessage response;
            try
            {
                response = await http.GetAsync(path, HttpCompletionOption.ResponseHeadersRead);
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
                    all.TrySetResult();
                }

                string name = "";
                long seq = 0;
                while (await reader.ReadLineAsync() is { } line)
                {
                    if (line.StartsWith("id: ", StringComparison.Ordinal))
                    {
                        seq = long.Parse(line.AsSpan(4), Invariant);
                    }
                    else if (line.StartsWith("event: ", StringComparison.Ordinal))
                    {
                        name = line[7..];
                    }
                    else if (line.StartsWith("data: ", StringComparison.Ordinal))
                    {
                        // Cheap on purpose: 18,000 clients share the node's two cores.
                        var at = line.IndexOf("\"at\":\"", StringComparison.Ordinal) + 6;
                        var end = line.IndexOf('"', at);
                        record(seq, name, DateTimeOffset.Parse(line.AsSpan(at, end - at), Invariant));
                    }
                }
            }
        }).ToList();
    }
}
