using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;

namespace TaskDashboard.Bench;

/// <summary>
/// A burst of tasks (exports and reports) submitted at once; the database is sampled every 50 ms
/// for how many of each kind run at the same moment, until every task has ended. Run once without
/// limits (the baseline) and once with them, in the same script.
/// </summary>
internal static class LimitsBench
{
    public static async Task RunAsync(string[] args)
    {
        var o = BenchArgs.Parse(args);
        var url = BenchArgs.LoopbackUrl(o["url"]);
        var count = int.Parse(o.GetValueOrDefault("tasks", "200"), CultureInfo.InvariantCulture);
        var label = o["label"];
        var limits = (o.GetValueOrDefault("limits") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries)
            .Select(p => p.Split('=')).ToDictionary(p => p[0], p => int.Parse(p[1], CultureInfo.InvariantCulture));
        using var http = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromSeconds(30) }.Authorize();
        await using var db = NpgsqlDataSource.Create(o["cs"]);

        var watch = Stopwatch.StartNew();
        var submissions = Enumerable.Range(0, count).Select(async i =>
        {
            var (path, body) = i % 5 < 3
                ? ("/api/exports", $$$"""{"parameters":{"from":"2025-{{{1 + (i % 12):00}}}-01","to":"2025-{{{1 + (i % 12):00}}}-28","throttleMs":20}}""")
                : ("/api/reports", $$$"""{"parameters":{"from":"2025-01-01","to":"2025-{{{1 + (i % 12):00}}}-28","groupBy":"region"}}""");
            var response = await http.PostAsync(path, new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
            response.EnsureSuccessStatusCode();
        });
        await Task.WhenAll(submissions);
        var submitSeconds = watch.Elapsed.TotalSeconds;

        var peak = new Dictionary<string, long>();
        var samples = 0;
        while (true)
        {
            await using var command = db.CreateCommand("""
                SELECT kind, count(*) FILTER (WHERE state = 'Running'), count(*) FILTER (WHERE state NOT IN ('Succeeded', 'Failed', 'Cancelled'))
                FROM dashboard.tasks GROUP BY kind
                """);
            await using var reader = await command.ExecuteReaderAsync();
            long unfinished = 0;
            while (await reader.ReadAsync())
            {
                var kind = reader.GetString(0);
                peak[kind] = Math.Max(peak.GetValueOrDefault(kind), reader.GetInt64(1));
                unfinished += reader.GetInt64(2);
            }

            samples++;
            if (unfinished == 0 || watch.Elapsed > TimeSpan.FromMinutes(10))
            {
                break;
            }

            await Task.Delay(50);
        }

        var totalSeconds = watch.Elapsed.TotalSeconds;
        var waits = new List<double>();
        await using (var command = db.CreateCommand("SELECT extract(epoch FROM started_at - created_at)::float8 FROM dashboard.tasks WHERE started_at IS NOT NULL ORDER BY 1"))
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                waits.Add(reader.GetDouble(0));
            }
        }

        var result = new
        {
            label,
            tasks = count,
            limits,
            peakRunning = peak,
            limitHeld = limits.All(l => peak.GetValueOrDefault(l.Key) <= l.Value),
            samples,
            submitSeconds,
            totalSeconds,
            waitP50Seconds = Percentile(waits, 0.5),
            waitP95Seconds = Percentile(waits, 0.95),
        };
        await File.WriteAllTextAsync(o["out"], JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {label,-9} | {string.Join(", ", limits.Select(l => $"{l.Key}≤{l.Value}")),-22} | {string.Join(", ", peak.OrderBy(p => p.Key).Select(p => $"{p.Key} {p.Value}")),-22} | {(result.limitHeld ? "yes" : "NO"),4} | {totalSeconds,7:F1} | {result.waitP50Seconds,8:F2} | {result.waitP95Seconds,8:F2} |"));
    }

    private static double Percentile(List<double> sorted, double q) =>
        sorted.Count == 0 ? 0 : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(q * sorted.Count) - 1)];
}
