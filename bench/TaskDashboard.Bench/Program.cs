using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using TaskDashboard.Bench;

// Submission benchmark: pgbench single-row INSERT transactions (the baseline) and POST /api/exports
// at the same concurrency against the same PostgreSQL cluster, in one run. Loopback only.
if (args.FirstOrDefault() == "export")
{
    await ExportBench.RunAsync(args[1..]);
    return;
}

if (args.FirstOrDefault() == "subscribers")
{
    await SubscribersBench.RunAsync(args[1..]);
    return;
}

if (args.FirstOrDefault() == "limits")
{
    await LimitsBench.RunAsync(args[1..]);
    return;
}

if (args.FirstOrDefault() == "live")
{
    await LiveBench.RunAsync(args[1..]);
    return;
}

var settings = Settings.Parse(args);
var culture = CultureInfo.InvariantCulture;

Console.WriteLine($"Baseline: pgbench, {settings.Clients} clients, {settings.Seconds}s, single-row INSERT transactions...");
var baseline = await PgBench.RunAsync(settings);
Console.WriteLine($"Submissions: POST {settings.Url}/api/exports, {settings.Clients} clients, {settings.Seconds}s after {settings.WarmupSeconds}s warm-up...");
var submissions = await HttpLoad.RunAsync(settings);

var loadEnded = Stopwatch.StartNew();
var (tasks, dispatched) = await PgBench.WaitForDispatchAsync(settings, TimeSpan.FromSeconds(180));
var drained = dispatched == tasks;
var drainSeconds = loadEnded.Elapsed.TotalSeconds;
var enqueueRate = dispatched / (submissions.Seconds + settings.WarmupSeconds + drainSeconds);

var ratio = submissions.PerSecond / baseline.PerSecond;
var rows = new[]
{
    ("pgbench INSERT (baseline)", baseline),
    ("POST /api/exports -> 202", submissions),
};
Console.WriteLine();
Console.WriteLine($"| {"workload",-28} | {"ops",8} | {"ops/s",9} | {"p50 ms",7} | {"p95 ms",7} | {"p99 ms",7} | {"errors",6} |");
Console.WriteLine($"|{new string('-', 30)}|{new string('-', 10)}|{new string('-', 11)}|{new string('-', 9)}|{new string('-', 9)}|{new string('-', 9)}|{new string('-', 8)}|");
foreach (var (name, r) in rows)
{
    Console.WriteLine(string.Create(culture, $"| {name,-28} | {r.Count,8} | {r.PerSecond,9:F0} | {r.P50,7:F2} | {r.P95,7:F2} | {r.P99,7:F2} | {r.Errors,6} |"));
}

Console.WriteLine();
Console.WriteLine(string.Create(culture, $"ratio accepted/s ÷ pgbench tps = {ratio:F2} (target >= 0.50); submit p99 = {submissions.P99:F2} ms (target < 25)"));
Console.WriteLine(drained
    ? string.Create(culture, $"outbox: all {tasks} tasks had Hangfire jobs {drainSeconds:F1}s after the load ended; sustained enqueue rate {enqueueRate:F0}/s ({enqueueRate / baseline.PerSecond:F2} of baseline)")
    : string.Create(culture, $"outbox: {dispatched} of {tasks} tasks had Hangfire jobs {drainSeconds:F1}s after the load ended; the rest wait in the outbox for workers (Jobs:DispatchAhead; BENCH_APP_ENV=Jobs__DispatchAhead=0 enqueues all)"));

var report = new
{
    benchmark = "submit",
    at = DateTimeOffset.UtcNow,
    machine = new { cores = Environment.ProcessorCount, os = Environment.OSVersion.ToString() },
    settings = new { settings.Clients, settings.Seconds, settings.WarmupSeconds },
    baseline,
    submissions,
    ratio,
    // The enqueue rate means something only when every task got its job (Jobs:DispatchAhead=0).
    outbox = new { tasks, dispatched, drained, drainSeconds, enqueueRatePerSecond = drained ? enqueueRate : (double?)null, enqueueRatio = drained ? enqueueRate / baseline.PerSecond : (double?)null },
    targets = new { minRatio = 0.5, maxP99Ms = 25.0 },
    met = ratio >= 0.5 && submissions.P99 < 25,
};
Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(settings.Output))!);
await File.WriteAllTextAsync(settings.Output, JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }));
Console.WriteLine($"JSON: {settings.Output}");

namespace TaskDashboard.Bench
{
    internal sealed record Settings(string Url, string PgBench, string PgConnection, int Clients, int Seconds, int WarmupSeconds, string Output)
    {
        public static Settings Parse(string[] args)
        {
            var values = BenchArgs.Parse(args);
            string Get(string key, string fallback) => values.TryGetValue(key, out var v) ? v : fallback;
            var url = BenchArgs.LoopbackUrl(Get("url", "http://127.0.0.1:5000")).ToString().TrimEnd('/');

            return new Settings(
                url,
                Get("pgbench", "pgbench"),
                Get("pg", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"),
                int.Parse(Get("clients", "32"), CultureInfo.InvariantCulture),
                int.Parse(Get("seconds", "15"), CultureInfo.InvariantCulture),
                int.Parse(Get("warmup", "10"), CultureInfo.InvariantCulture),
                Get("out", "bench/results/submit.json"));
        }
    }

    internal sealed record Result(long Count, long Errors, double Seconds, double PerSecond, double P50, double P95, double P99, double Max)
    {
        public static Result From(List<double> latenciesMs, long errors, double seconds)
        {
            latenciesMs.Sort();
            double At(double q) => latenciesMs.Count == 0 ? 0 : latenciesMs[Math.Min(latenciesMs.Count - 1, (int)Math.Ceiling(q * latenciesMs.Count) - 1)];
            return new Result(latenciesMs.Count, errors, seconds, latenciesMs.Count / seconds, At(0.50), At(0.95), At(0.99), latenciesMs.Count == 0 ? 0 : latenciesMs[^1]);
        }
    }

    internal static class PgBench
    {
        public static async Task<Result> RunAsync(Settings settings)
        {
            var directory = Directory.CreateTempSubdirectory("pgbench-");
            var script = Path.Combine(directory.FullName, "insert.sql");
            await File.WriteAllTextAsync(script, "INSERT INTO bench_insert (id, payload, created_at) VALUES (gen_random_uuid(), '{\"kind\":\"export\"}', now());\n");
            await RunAsync(settings.PgBench.Replace("pgbench", "psql", StringComparison.Ordinal), settings,
                "-v", "ON_ERROR_STOP=1", "-q", "-c",
                "DROP TABLE IF EXISTS bench_insert; CREATE TABLE bench_insert (id uuid PRIMARY KEY, payload jsonb NOT NULL, created_at timestamptz NOT NULL)");

            // Warm up, then measure with a per-transaction log for percentiles.
            await RunAsync(settings.PgBench, settings, "-n", "-c", $"{settings.Clients}", "-j", "2", "-T", $"{settings.WarmupSeconds}", "-f", script);
            var prefix = Path.Combine(directory.FullName, "tx");
            await RunAsync(settings.PgBench, settings, "-n", "-c", $"{settings.Clients}", "-j", "2", "-T", $"{settings.Seconds}", "-f", script, "-l", "--log-prefix", prefix);

            var latencies = new List<double>();
            long errors = 0;
            foreach (var file in Directory.GetFiles(directory.FullName, "tx*"))
            {
                foreach (var line in File.ReadLines(file))
                {
                    // client_id transaction_no time_us script_no epoch_s epoch_us
                    var parts = line.Split(' ');
                    if (parts.Length > 2 && long.TryParse(parts[2], out var micros))
                    {
                        latencies.Add(micros / 1000.0);
                    }
                    else
                    {
                        errors++;
                    }
                }
            }

            directory.Delete(recursive: true);
            return Result.From(latencies, errors, settings.Seconds);
        }

        /// <summary>
        /// Waits until every submitted task has its Hangfire job, or until no more get one for 3 s
        /// (Jobs:DispatchAhead caps Hangfire's queues and no workers run here); returns the counts.
        /// </summary>
        public static async Task<(long Tasks, long Dispatched)> WaitForDispatchAsync(Settings settings, TimeSpan timeout)
        {
            var psql = settings.PgBench.Replace("pgbench", "psql", StringComparison.Ordinal);
            var deadline = Stopwatch.StartNew();
            var (lastDispatched, unchangedSince) = (-1L, Stopwatch.StartNew());
            while (true)
            {
                var counts = (await RunAsync(psql, settings, "-Atc",
                    "SELECT count(*), count(*) FILTER (WHERE hangfire_job_id IS NOT NULL) FROM dashboard.tasks")).Trim().Split('|');
                var (total, dispatched) = (long.Parse(counts[0], CultureInfo.InvariantCulture), long.Parse(counts[1], CultureInfo.InvariantCulture));
                if (dispatched != lastDispatched)
                {
                    (lastDispatched, unchangedSince) = (dispatched, Stopwatch.StartNew());
                }

                if (dispatched == total || unchangedSince.Elapsed > TimeSpan.FromSeconds(3) || deadline.Elapsed > timeout)
                {
                    return (total, dispatched);
                }

                await Task.Delay(200);
            }
        }

        private static async Task<string> RunAsync(string program, Settings settings, params string[] args)
        {
            var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var arg in args)
            {
                start.ArgumentList.Add(arg);
            }

            start.ArgumentList.Add(settings.PgConnection);
            using var process = Process.Start(start)!;
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();
            if (process.ExitCode != 0)
            {
                throw new InvalidOperationException($"{program} failed: {await error}{await output}");
            }

            return await output;
        }
    }

    internal static class HttpLoad
    {
        public static async Task<Result> RunAsync(Settings settings)
        {
            using var handler = new SocketsHttpHandler { MaxConnectionsPerServer = settings.Clients, PooledConnectionLifetime = Timeout.InfiniteTimeSpan };
            using var client = new HttpClient(handler) { BaseAddress = new Uri(settings.Url), Timeout = TimeSpan.FromSeconds(30) }.Authorize();
            var body = Encoding.UTF8.GetBytes("""{"parameters":{"from":"2026-01-01","to":"2026-01-31","format":"csv"}}""");

            await LoadAsync(client, body, settings.Clients, TimeSpan.FromSeconds(settings.WarmupSeconds), record: null);
            var latencies = new List<double>[settings.Clients];
            var stopwatch = Stopwatch.StartNew();
            var errors = await LoadAsync(client, body, settings.Clients, TimeSpan.FromSeconds(settings.Seconds), latencies);
            var elapsed = stopwatch.Elapsed.TotalSeconds;
            return Result.From(latencies.SelectMany(l => l).ToList(), errors, elapsed);
        }

        private static async Task<long> LoadAsync(HttpClient client, byte[] body, int clients, TimeSpan duration, List<double>[]? record)
        {
            long errors = 0;
            var deadline = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
            await Task.WhenAll(Enumerable.Range(0, clients).Select(async i =>
            {
                var mine = new List<double>(100_000);
                if (record is not null)
                {
                    record[i] = mine;
                }

                while (Stopwatch.GetTimestamp() < deadline)
                {
                    var started = Stopwatch.GetTimestamp();
                    using var content = new ByteArrayContent(body);
                    content.Headers.ContentType = new("application/json");
                    using var response = await client.PostAsync("/api/exports", content);
                    await response.Content.CopyToAsync(Stream.Null);
                    if (response.StatusCode == HttpStatusCode.Accepted)
                    {
                        mine.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                    }
                    else
                    {
                        Interlocked.Increment(ref errors);
                    }
                }
            }));
            return errors;
        }
    }
}
