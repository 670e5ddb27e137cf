using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR.Client;

namespace TaskDashboard.Bench;

/// <summary>
/// Job-to-client latency of live progress: many exports (or reports) reporting at once on a worker process,
/// each watched over SSE and over SignalR on a web node, against clients polling GET /api/tasks/{id}
/// every 2 s (the classic baseline). Latency = receive time − the event's timestamp (same clock).
/// With --postgres it also times, without any web node, the jobs' NOTIFYs and a bare notifying commit
/// (the floor, <see cref="NotifyFloor"/>), so the product's latency reads against PostgreSQL's own.
/// </summary>
internal static class LiveBench
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;
    private const string FloorRow = "PostgreSQL NOTIFY (floor)";
    private const string NotifiedRow = "events' NOTIFY, heard directly";
    private const string OwnerRow = "SSE, all my tasks";
    private const string OwnerHubRow = "SignalR, all my tasks";

    public static async Task RunAsync(string[] args)
    {
        var values = BenchArgs.Parse(args);
        var url = BenchArgs.LoopbackUrl(values["url"]);

        var jobs = int.Parse(values.GetValueOrDefault("jobs", "100"), Invariant);
        // Each export reads this many days of the seeded orders (~2,740 a day): the work done beside reporting.
        var days = int.Parse(values.GetValueOrDefault("days", "10"), Invariant);
        // Each export pauses this long after every batch (its progress report): the pace of the work.
        var throttleMs = int.Parse(values.GetValueOrDefault("throttle-ms", "100"), Invariant);
        // --kind report: reports instead, each summing this many months after the seeded year (no
        // orders, so the job's work is its pause: Report:PartitionDelay, which bench/live sets from
        // --throttle-ms): the pipeline's latency without the exports' load on the same cores.
        var kind = values.GetValueOrDefault("kind", "export");
        var months = int.Parse(values.GetValueOrDefault("months", "120"), Invariant);
        // The jobs are submitted one by one over this span (ms), each watched as soon as it exists, so
        // they report at different moments, as jobs started by different people do. 0: all at once,
        // and jobs paced by the same pause then report in the same millisecond, round after round.
        var spreadMs = int.Parse(values.GetValueOrDefault("start-spread-ms", "1000"), Invariant);
        // Each job is submitted with this delay (s) and watched at once, so its watchers are connected
        // before it starts: the clients' connecting is not measured as the pipeline's latency.
        var startDelay = int.Parse(values.GetValueOrDefault("start-delay", "2"), Invariant);
        var (path, body, load) = kind switch
        {
            "export" => ("/api/exports",
                $$$"""{"parameters":{"from":"2025-01-01","to":"{{{new DateOnly(2025, 1, 1).AddDays(days - 1):yyyy-MM-dd}}}","throttleMs":{{{throttleMs}}}},"delay":{{{startDelay}}}}""",
                $"{jobs} exports of {days} days, {throttleMs} ms pause per batch"),
            "report" => ("/api/reports",
                $$$"""{"parameters":{"from":"2030-01-01","to":"{{{new DateOnly(2030, 1, 1).AddMonths(months).AddDays(-1):yyyy-MM-dd}}}","format":"csv"},"delay":{{{startDelay}}}}""",
                $"{jobs} reports of {months} months without orders, {throttleMs} ms pause per month"),
            _ => throw new ArgumentException("--kind is export or report."),
        };
        var output = values.GetValueOrDefault("out", "bench/results/live.json");
        using var handler = new SocketsHttpHandler { MaxConnectionsPerServer = 10_000 };
        using var http = new HttpClient(handler) { BaseAddress = url, Timeout = Timeout.InfiniteTimeSpan }.Authorize();
        // One SignalR connection per job slot for the whole run, as a dashboard stays connected; each
        // round subscribes them to that round's tasks.
        await using var hubs = await HubWatchers.StartAsync(url, jobs);
        // The floor, measured beside the product under the same load (--postgres: the app's database).
        var floorInterval = TimeSpan.FromMilliseconds(int.Parse(values.GetValueOrDefault("floor-interval-ms", "50"), Invariant));
        using var floor = values.TryGetValue("postgres", out var postgres) ? NotifyFloor.Start(postgres, floorInterval) : null;

        // --owner-streams N: also N streams of all the user's tasks (GET /api/events), open for the
        // whole run; each event carries a position across tasks, read from the log whenever the
        // stream cannot place an announcement by itself.
        var ownerStreams = int.Parse(values.GetValueOrDefault("owner-streams", "0"), Invariant);
        using var stopOwners = new CancellationTokenSource();
        var owners = new OwnerWatchers(OwnerRow);
        var ownerWatching = Enumerable.Range(0, ownerStreams).Select(_ => WatchOwnerAsync(http, owners, stopOwners.Token)).ToList();
        // --owner-hubs N: also N SignalR connections watching all of the user's tasks
        // (SubscribeToMyTasks), positioned the same way, for the whole run.
        var ownerHubCount = int.Parse(values.GetValueOrDefault("owner-hubs", "0"), Invariant);
        var ownerHubs = new OwnerWatchers(OwnerHubRow);
        var ownerHubConnections = new List<HubConnection>();
        for (var i = 0; i < ownerHubCount; i++)
        {
            ownerHubConnections.Add(await WatchOwnerOverSignalRAsync(url, ownerHubs));
        }

        // Warm-up rounds run the same load first, unmeasured: the JIT of the web node, the worker and
        // this client is still compiling hot paths during the first run (perf: ~17 % of the CPU).
        var warmups = int.Parse(values.GetValueOrDefault("warmup-rounds", "2"), Invariant);
        for (var round = 1; round <= warmups; round++)
        {
            var started = Stopwatch.GetTimestamp();
            await RunRoundAsync(http, hubs, jobs, spreadMs, path, body, new Timeline());
            Console.WriteLine(string.Create(Invariant, $"warm-up round {round}: {Stopwatch.GetElapsedTime(started).TotalSeconds:F1} s"));
        }

        Console.WriteLine(string.Create(Invariant, $"measured round starts at {DateTimeOffset.UtcNow:HH:mm:ss.fff}"));
        floor?.Measure();
        var transactionsBefore = postgres is null ? 0 : await TransactionsAsync(postgres);
        var cpuBefore = CpuTimes.Read();
        var roundStarted = Stopwatch.GetTimestamp();
        var timeline = new Timeline();
        var ownerLatencies = owners.Measure(timeline);
        var ownerHubLatencies = ownerHubs.Measure(timeline);
        var (sse, signalR, polling) = await RunRoundAsync(http, hubs, jobs, spreadMs, path, body, timeline);
        await stopOwners.CancelAsync();
        await Task.WhenAll(ownerWatching);
        foreach (var hub in ownerHubConnections)
        {
            await hub.DisposeAsync();
        }
        var roundSeconds = Stopwatch.GetElapsedTime(roundStarted).TotalSeconds;
        var busy = CpuTimes.Read().BusyShareSince(cpuBefore);
        // (Backends report their counts at most once a second: over a 25-s round that is noise.)
        double? transactionsPerSecond = postgres is null ? null : (await TransactionsAsync(postgres) - transactionsBefore) / roundSeconds;
        var kdamond = CpuTimes.KdamondOn();
        // The floor's and the heard notifications' arrivals join the round's timeline, so that they
        // split into the same windows as the clients' events.
        var (floorArrivals, notifiedArrivals) = floor?.Take() ?? ([], []);
        foreach (var (at, ms) in floorArrivals)
        {
            timeline.Add(FloorRow, at, ms, null);
        }

        foreach (var (at, stage, ms) in notifiedArrivals)
        {
            timeline.Add(NotifiedRow, at, ms, stage);
        }

        var (floorLatencies, notified) = (timeline.All(FloorRow), timeline.All(NotifiedRow));
        var notifiedByStage = timeline.ByStage(NotifiedRow).ToDictionary(s => s.Stage, s => s.Latencies);
        List<(string, List<double>)> rows = [("SSE", sse), ("SignalR", signalR), ("polling every 2 s (baseline)", polling)];
        if (ownerStreams > 0)
        {
            rows.Insert(2, (OwnerRow, ownerLatencies));
        }

        if (ownerHubCount > 0)
        {
            rows.Insert(ownerStreams > 0 ? 3 : 2, (OwnerHubRow, ownerHubLatencies));
        }

        if (floor is not null)
        {
            rows.Add((NotifiedRow, notified));
            rows.Add((FloorRow, floorLatencies));
        }

        // "While running": events that arrived after the round's first 2 s and before its first job
        // ended, i.e. without the 100 jobs starting and finishing at the same moment. "First 2 s":
        // those that arrived before, while the jobs start (the floor's too: what PostgreSQL alone
        // gave in that window).
        var settle = TimeSpan.FromSeconds(2);
        var steady = rows.ToDictionary(r => r.Item1, r => timeline.Steady(r.Item1, settle));
        var start = rows.ToDictionary(r => r.Item1, r => timeline.First(r.Item1, settle));
        Console.WriteLine($"| {"client",-30} | {"events seen",11} | {"p50 ms",8} | {"p99 ms",8} | {"while running p50 / p99 ms",26} | {"first 2 s p50 / p99 ms, over 15 ms",36} |");
        Console.WriteLine("|--------------------------------|-------------|----------|----------|----------------------------|--------------------------------------|");
        foreach (var (name, latencies) in rows)
        {
            latencies.Sort();
            var running = steady[name];
            var runningText = running.Count == 0 ? "–" : string.Create(Invariant, $"{Percentile(running, 0.50):F1} / {Percentile(running, 0.99):F1}");
            var first = start[name];
            var firstText = first.Count == 0 ? "–" : string.Create(Invariant, $"{Percentile(first, 0.50):F1} / {Percentile(first, 0.99):F1}, {first.Count(l => l > 15)} of {first.Count}");
            Console.WriteLine(string.Create(Invariant, $"| {name,-30} | {latencies.Count,11} | {Percentile(latencies, 0.50),8:F1} | {Percentile(latencies, 0.99),8:F1} | {runningText,26} | {firstText,36} |"));
        }

        // Where the tail is: the same events by the stage they report (a job's first and last stages
        // are written while the round's jobs start and finish).
        var stages = timeline.ByStage("SSE");
        // Beside them, the same stage's NOTIFYs heard directly: whether its time went before PostgreSQL or after.
        Console.WriteLine($"| {"SSE events by stage",-30} | {"events",11} | {"p50 ms",8} | {"p99 ms",8} | {"over 15 ms",10} | {"heard directly p50 / p99",24} |");
        Console.WriteLine("|--------------------------------|-------------|----------|----------|------------|--------------------------|");
        foreach (var (stage, latencies) in stages)
        {
            var heard = notifiedByStage.TryGetValue(stage, out var h) && h.Count > 0 ? string.Create(Invariant, $"{Percentile(h, 0.50):F1} / {Percentile(h, 0.99):F1}") : "–";
            Console.WriteLine(string.Create(Invariant, $"| {stage,-30} | {latencies.Count,11} | {Percentile(latencies, 0.50),8:F1} | {Percentile(latencies, 0.99),8:F1} | {latencies.Count(l => l > 15),10} | {heard,24} |"));
        }

        Console.WriteLine(string.Create(Invariant, $"{load}, started over {spreadMs} ms, reporting at once: round {roundSeconds:F1} s, machine CPU {busy:P0} busy"));
        if (transactionsPerSecond is { } tps)
        {
            Console.WriteLine(string.Create(Invariant, $"PostgreSQL: {tps:F0} transactions a second during the round (pg_stat_database, every process's)"));
        }
        if (floorLatencies.Count > 0)
        {
            Console.WriteLine(string.Create(Invariant,
                $"SSE over the floor: p50 {Percentile(sse, 0.5) / Percentile(floorLatencies, 0.5):F1}x, p99 {Percentile(sse, 0.99) / Percentile(floorLatencies, 0.99):F1}x ({FloorRow}: a commit that notifies, heard on another connection, every {floorInterval.TotalMilliseconds:0} ms on threads of their own)"));
        }

        if (kdamond)
        {
            Console.WriteLine("kdamond (the kernel's DAMON proactive reclaim) was on during the round: on this machine kind it made these latencies and the floor's p99 up to several times worse (README, Benchmarks)");
        }

        Console.WriteLine("targets: p50 <= 3 ms, p99 <= 15 ms on loopback");
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
        await File.WriteAllTextAsync(output, JsonSerializer.Serialize(new
        {
            benchmark = "live",
            at = DateTimeOffset.UtcNow,
            kind,
            jobs,
            days = kind == "export" ? days : (int?)null,
            months = kind == "report" ? months : (int?)null,
            throttleMs,
            warmupRounds = warmups,
            startSpreadMs = spreadMs,
            startDelaySeconds = startDelay,
            ownerStreams,
            ownerHubs = ownerHubCount,
            roundSeconds,
            machineCpuBusy = busy,
            transactionsPerSecond,
            kdamondOn = kdamond,
            results = rows.Select(r => new
            {
                client = r.Item1,
                events = r.Item2.Count,
                p50Ms = Percentile(r.Item2, 0.5),
                p99Ms = Percentile(r.Item2, 0.99),
                whileRunning = new { events = steady[r.Item1].Count, p50Ms = Percentile(steady[r.Item1], 0.5), p99Ms = Percentile(steady[r.Item1], 0.99) },
                firstSeconds = new { events = start[r.Item1].Count, p50Ms = Percentile(start[r.Item1], 0.5), p99Ms = Percentile(start[r.Item1], 0.99), over15Ms = start[r.Item1].Count(l => l > 15) },
            }),
            sseByStage = stages.Select(s => new
            {
                stage = s.Stage,
                events = s.Latencies.Count,
                p50Ms = Percentile(s.Latencies, 0.5),
                p99Ms = Percentile(s.Latencies, 0.99),
                over15Ms = s.Latencies.Count(l => l > 15),
                heardDirectly = notifiedByStage.TryGetValue(s.Stage, out var h) ? new { events = h.Count, p50Ms = Percentile(h, 0.5), p99Ms = Percentile(h, 0.99) } : null,
            }),
            floorIntervalMs = floor is null ? (double?)null : floorInterval.TotalMilliseconds,
            targets = new { p50Ms = 3, p99Ms = 15 },
        }, new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"JSON: {output}");
    }

    private static async Task<(List<double> Sse, List<double> SignalR, List<double> Polling)> RunRoundAsync(
        HttpClient http, HubWatchers hubs, int jobs, int spreadMs, string path, string body, Timeline timeline)
    {
        var sse = new List<double>();
        var signalR = new List<double>();
        var polling = new List<double>();
        var watching = new List<Task>();
        var started = Stopwatch.GetTimestamp();
        for (var i = 0; i < jobs; i++)
        {
            var due = TimeSpan.FromMilliseconds((double)spreadMs * i / jobs) - Stopwatch.GetElapsedTime(started);
            if (due > TimeSpan.Zero)
            {
                await Task.Delay(due);
            }

            var response = await http.PostAsync(path, new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
            response.EnsureSuccessStatusCode();
            var id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
            watching.Add(WatchSseAsync(http, id, sse, timeline));
            watching.Add(hubs.WatchAsync(i, id, signalR, timeline));
            watching.Add(PollAsync(http, id, polling));
        }

        await Task.WhenAll(watching);
        if (timeline.WatchedLate > 0)
        {
            throw new InvalidOperationException($"{timeline.WatchedLate} watchers connected after their job had started: raise --start-delay.");
        }

        return (sse, signalR, polling);
    }

    private static async Task WatchSseAsync(HttpClient http, Guid id, List<double> latencies, Timeline timeline)
    {
        using var response = await http.GetAsync($"/api/tasks/{id}/events", HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        string? name = null;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal))
            {
                name = line[7..];
                if (name is "succeeded" or "failed" or "cancelled")
                {
                    timeline.JobEnded();
                }
            }
            else if (line.StartsWith("data: ", StringComparison.Ordinal) && name == "snapshot")
            {
                timeline.Watched(JsonDocument.Parse(line[6..]).RootElement.GetProperty("status").GetString());
            }
            else if (line.StartsWith("data: ", StringComparison.Ordinal) && name == "progress")
            {
                var data = JsonDocument.Parse(line[6..]).RootElement;
                var latency = (DateTimeOffset.UtcNow - data.GetProperty("at").GetDateTimeOffset()).TotalMilliseconds;
                lock (latencies)
                {
                    latencies.Add(latency);
                }

                timeline.Arrived("SSE", latency, data.GetProperty("stage").GetString());
            }
        }
    }

    // A stream of all of the user's tasks: the latency of every progress event, once measuring.
    private static async Task WatchOwnerAsync(HttpClient http, OwnerWatchers owners, CancellationToken cancellationToken)
    {
        try
        {
            using var response = await http.GetAsync("/api/events", HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken));
            string? name = null;
            while (await reader.ReadLineAsync(cancellationToken) is { } line)
            {
                if (line.StartsWith("event: ", StringComparison.Ordinal))
                {
                    name = line[7..];
                }
                else if (line.StartsWith("data: ", StringComparison.Ordinal) && name == "progress")
                {
                    var data = JsonDocument.Parse(line[6..]).RootElement;
                    owners.Arrived((DateTimeOffset.UtcNow - data.GetProperty("at").GetDateTimeOffset()).TotalMilliseconds, data.GetProperty("stage").GetString());
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    // A SignalR connection watching all of the user's tasks: the latency of every progress event, once measuring.
    private static async Task<HubConnection> WatchOwnerOverSignalRAsync(Uri url, OwnerWatchers owners)
    {
        var hub = HubConnection(url);
        hub.On<JsonElement>("TaskProgressChanged", e =>
            owners.Arrived((DateTimeOffset.UtcNow - e.GetProperty("at").GetDateTimeOffset()).TotalMilliseconds, e.GetProperty("stage").GetString()));
        await hub.StartAsync();
        await hub.InvokeAsync<JsonElement>("SubscribeToMyTasks");
        return hub;
    }

    // A connection to the web node's hub as the bench user, not started.
    private static HubConnection HubConnection(Uri url) => new HubConnectionBuilder()
        .WithUrl(new Uri(url, "/hubs/tasks"), o => o.AccessTokenProvider = () => Task.FromResult<string?>(BenchAuth.ApiKey))
        .Build();

    /// <summary>Where the owner streams (or hub watches) record their events: nowhere until the measured round starts.</summary>
    private sealed class OwnerWatchers(string row)
    {
        private readonly List<double> latencies = [];
        private Timeline? timeline;

        public List<double> Measure(Timeline round)
        {
            Volatile.Write(ref timeline, round);
            return latencies;
        }

        public void Arrived(double ms, string? stage)
        {
            if (Volatile.Read(ref timeline) is { } round)
            {
                lock (latencies)
                {
                    latencies.Add(ms);
                }

                round.Arrived(row, ms, stage);
            }
        }
    }

    // The classic baseline: look every 2 s; a change is seen (updatedAt → now) at the first poll after it.
    private static async Task PollAsync(HttpClient http, Guid id, List<double> latencies)
    {
        var lastProgress = -1;
        while (true)
        {
            var task = await http.GetFromJsonAsync<JsonElement>($"/api/tasks/{id}");
            var progress = task.GetProperty("progress").GetInt32();
            if (progress != lastProgress && lastProgress >= 0)
            {
                var latency = (DateTimeOffset.UtcNow - task.GetProperty("updatedAt").GetDateTimeOffset()).TotalMilliseconds;
                lock (latencies)
                {
                    latencies.Add(latency);
                }
            }

            lastProgress = progress;
            if (task.GetProperty("status").GetString() is "Succeeded" or "Failed" or "Cancelled")
            {
                return;
            }

            await Task.Delay(TimeSpan.FromSeconds(2));
        }
    }

    /// <summary>SignalR connections that watch one task each per round; events are routed by task id.</summary>
    private sealed class HubWatchers : IAsyncDisposable
    {
        private readonly List<HubConnection> connections = [];
        private readonly System.Collections.Concurrent.ConcurrentDictionary<Guid, Watch> watches = new();

        public static async Task<HubWatchers> StartAsync(Uri url, int count)
        {
            var watchers = new HubWatchers();
            for (var i = 0; i < count; i++)
            {
                var hub = HubConnection(url);
                hub.On<JsonElement>("TaskProgressChanged", e =>
                {
                    if (watchers.watches.TryGetValue(e.GetProperty("taskId").GetGuid(), out var watch))
                    {
                        var latency = (DateTimeOffset.UtcNow - e.GetProperty("at").GetDateTimeOffset()).TotalMilliseconds;
                        lock (watch.Latencies)
                        {
                            watch.Latencies.Add(latency);
                        }

                        watch.Timeline.Arrived("SignalR", latency, e.GetProperty("stage").GetString());
                    }
                });
                hub.On<JsonElement>("TaskStateChanged", e =>
                {
                    if (e.GetProperty("type").GetString() is "succeeded" or "failed" or "cancelled"
                        && watchers.watches.TryGetValue(e.GetProperty("taskId").GetGuid(), out var watch))
                    {
                        watch.Timeline.JobEnded();
                        watch.Done.TrySetResult();
                    }
                });
                await hub.StartAsync();
                watchers.connections.Add(hub);
            }

            return watchers;
        }

        public async Task WatchAsync(int slot, Guid id, List<double> latencies, Timeline timeline)
        {
            var watch = new Watch(latencies, timeline);
            watches[id] = watch;
            var hub = connections[slot];
            try
            {
                var snapshot = await hub.InvokeAsync<JsonElement>("SubscribeToTask", id, null);
                timeline.Watched(snapshot.GetProperty("status").GetString());
                if (snapshot.GetProperty("status").GetString() is not ("Succeeded" or "Failed" or "Cancelled"))
                {
                    await watch.Done.Task.WaitAsync(TimeSpan.FromMinutes(5));
                }

                await hub.InvokeAsync("UnsubscribeFromTask", id);
            }
            finally
            {
                watches.TryRemove(id, out _);
            }
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var hub in connections)
            {
                await hub.DisposeAsync();
            }
        }

        private sealed record Watch(List<double> Latencies, Timeline Timeline)
        {
            public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }
    }

    // Transactions committed or rolled back in the whole cluster so far.
    private static async Task<long> TransactionsAsync(string connectionString)
    {
        await using var connection = new Npgsql.NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new Npgsql.NpgsqlCommand("SELECT sum(xact_commit + xact_rollback)::bigint FROM pg_stat_database", connection);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    private static double Percentile(List<double> sorted, double q) =>
        sorted.Count == 0 ? 0 : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(q * sorted.Count) - 1)];

    /// <summary>When each live event of a round arrived, by client, and when the round's first job ended.</summary>
    private sealed class Timeline
    {
        private readonly List<(string Client, long At, double Ms, string? Stage)> arrivals = [];
        private long firstEnd = long.MaxValue;
        private int watchedLate;

        /// <summary>How many watchers found their job already started when they connected.</summary>
        public int WatchedLate => Volatile.Read(ref watchedLate);

        /// <summary>A watcher connected and saw its task in <paramref name="status"/>.</summary>
        public void Watched(string? status)
        {
            if (status != "Scheduled")
            {
                Interlocked.Increment(ref watchedLate);
            }
        }

        public void Arrived(string client, double ms, string? stage) => Add(client, Stopwatch.GetTimestamp(), ms, stage);

        /// <summary>An event of <paramref name="client"/> that arrived at <paramref name="at"/> (<see cref="Stopwatch.GetTimestamp"/>).</summary>
        public void Add(string client, long at, double ms, string? stage)
        {
            lock (arrivals)
            {
                arrivals.Add((client, at, ms, stage));
            }
        }

        /// <summary>Sorted latencies of all of <paramref name="client"/>'s events.</summary>
        public List<double> All(string client)
        {
            lock (arrivals)
            {
                return [.. arrivals.Where(a => a.Client == client).Select(a => a.Ms).Order()];
            }
        }

        /// <summary>Sorted latencies of <paramref name="client"/>'s events by the stage they report, in order of first arrival.</summary>
        public List<(string Stage, List<double> Latencies)> ByStage(string client)
        {
            lock (arrivals)
            {
                return [.. arrivals.Where(a => a.Client == client).GroupBy(a => a.Stage ?? "–")
                    .OrderBy(g => g.Min(a => a.At))
                    .Select(g => (g.Key, g.Select(a => a.Ms).Order().ToList()))];
            }
        }

        public void JobEnded()
        {
            lock (arrivals)
            {
                firstEnd = Math.Min(firstEnd, Stopwatch.GetTimestamp());
            }
        }

        /// <summary>Sorted latencies of <paramref name="client"/>'s events after the round's first <paramref name="settle"/> and before the first job ended.</summary>
        public List<double> Steady(string client, TimeSpan settle)
        {
            lock (arrivals)
            {
                return Began() is { } began ? Between(client, began + Ticks(settle), firstEnd) : [];
            }
        }

        /// <summary>Sorted latencies of <paramref name="client"/>'s events in the round's first <paramref name="window"/>.</summary>
        public List<double> First(string client, TimeSpan window)
        {
            lock (arrivals)
            {
                return Began() is { } began ? Between(client, began, began + Ticks(window)) : [];
            }
        }

        // The round begins with the first job event heard (the floor's commits run all along).
        private long? Began() =>
            arrivals.Where(a => a.Client != FloorRow).Select(a => (long?)a.At).Min();

        private List<double> Between(string client, long from, long until) =>
            [.. arrivals.Where(a => a.Client == client && a.At >= from && a.At < until).Select(a => a.Ms).Order()];

        private static long Ticks(TimeSpan span) => (long)(span.TotalSeconds * Stopwatch.Frequency);
    }
}
