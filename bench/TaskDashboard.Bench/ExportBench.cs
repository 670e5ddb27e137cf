using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;

namespace TaskDashboard.Bench;

/// <summary>
/// Export throughput and peak memory against PostgreSQL's own COPY of the same rows, and the time
/// from a worker's SIGKILL to its task running again on another worker. Loopback only.
/// </summary>
internal static class ExportBench
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    public static async Task RunAsync(string[] args)
    {
        var o = Options.Parse(args);
        using var http = new HttpClient { BaseAddress = new Uri(o.Url) }.Authorize();
        var sizes = new (string Name, string From, string To)[]
        {
            ("100k rows", "2025-01-01", "2025-02-06"),
            ("1M rows", "2025-01-01", "2025-12-31"),
        };

        var rows = new List<object>();
        Console.WriteLine($"| {"export (csv)",-10} | {"rows",9} | {"COPY rows/s",11} | {"ours rows/s",11} | {"ratio",5} | {"peak RSS MB",11} | {"idle RSS MB",11} |");
        Console.WriteLine("|------------|-----------|-------------|-------------|-------|-------------|-------------|");
        foreach (var (name, from, to) in sizes)
        {
            var copy = new List<(double Seconds, long Rows)>();
            for (var i = 0; i < o.Runs; i++)
            {
                copy.Add(await CopyAsync(o, from, to));
            }

            // A fresh worker per size, warmed up by a one-day export so the JIT is not measured;
            // its peak RSS after the runs is the most any of them needed.
            var ours = new List<(double Seconds, long Rows)>();
            using var worker = StartWorker(o);
            await Task.Delay(TimeSpan.FromSeconds(3));
            var idle = ReadStatusMb(worker.Id, "VmRSS");
            await ExportAsync(http, "2025-01-01", "2025-01-01");
            for (var i = 0; i < o.Runs; i++)
            {
                ours.Add(await ExportAsync(http, from, to));
            }

            var peak = ReadStatusMb(worker.Id, "VmHWM");
            Stop(worker);
            var copyRate = Median(copy.Select(c => c.Rows / c.Seconds));
            var ourRate = Median(ours.Select(r => r.Rows / r.Seconds));
            Console.WriteLine(string.Create(Invariant, $"| {name,-10} | {ours[0].Rows,9} | {copyRate,11:F0} | {ourRate,11:F0} | {ourRate / copyRate,5:F2} | {peak,11:F1} | {idle,11:F1} |"));
            Console.Error.WriteLine(string.Create(Invariant, $"  {name}: COPY runs {string.Join(", ", copy.Select(c => (c.Rows / c.Seconds).ToString("F0", Invariant)))}; ours {string.Join(", ", ours.Select(r => (r.Rows / r.Seconds).ToString("F0", Invariant)))} rows/s"));
            rows.Add(new { name, rows = ours[0].Rows, copyRowsPerSecond = copyRate, oursRowsPerSecond = ourRate,
                copyRuns = copy.Select(c => c.Rows / c.Seconds), oursRuns = ours.Select(r => r.Rows / r.Seconds), ratio = ourRate / copyRate, peakRssMb = peak, idleRssMb = idle, runs = o.Runs });
        }

        var recoveries = new List<double>();
        for (var i = 0; i < o.Runs; i++)
        {
            recoveries.Add(await RecoveryAsync(o, http));
        }

        var recovery = Median(recoveries);
        Console.WriteLine();
        Console.WriteLine(string.Create(Invariant, $"worker SIGKILL -> task running again on another worker: median {recovery:F1} s over {o.Runs} runs ({string.Join(", ", recoveries.Select(r => r.ToString("F1", Invariant)))}) (target <= 15 s)"));

        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(o.Output))!);
        await File.WriteAllTextAsync(o.Output, JsonSerializer.Serialize(new
        {
            benchmark = "export",
            at = DateTimeOffset.UtcNow,
            machine = new { cores = Environment.ProcessorCount },
            exports = rows,
            recovery = new { medianSeconds = recovery, runs = recoveries, targetSeconds = 15 },
            targets = new { minRatio = 0.7 },
        }, new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"JSON: {o.Output}");
    }

    private static async Task<(double Seconds, long Rows)> CopyAsync(Options o, string from, string to)
    {
        var target = Path.Combine(o.WorkDir, "copy.csv");
        var sql = $"""
            COPY (SELECT id, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), region, product, quantity, amount
                  FROM dashboard.orders WHERE created_at >= '{from} 00:00:00+00' AND created_at < ('{to}'::date + 1)::timestamptz ORDER BY id)
            TO STDOUT WITH (FORMAT csv)
            """;
        var start = new ProcessStartInfo("bash") { RedirectStandardError = true };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add($"\"$PSQL\" -X -q -v ON_ERROR_STOP=1 -c \"$SQL\" \"$PGCONN\" > '{target}'");
        start.Environment["PSQL"] = o.Psql;
        start.Environment["SQL"] = sql;
        start.Environment["PGCONN"] = o.PgConnection;
        var stopwatch = Stopwatch.StartNew();
        using var process = Process.Start(start)!;
        await process.WaitForExitAsync();
        var seconds = stopwatch.Elapsed.TotalSeconds;
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException(await process.StandardError.ReadToEndAsync());
        }

        long lines = 0;
        await foreach (var _ in File.ReadLinesAsync(target))
        {
            lines++;
        }

        File.Delete(target);
        return (seconds, lines);
    }

    private static async Task<(double Seconds, long Rows)> ExportAsync(HttpClient http, string from, string to)
    {
        var task = await SubmitAsync(http, "{\"parameters\":{\"from\":\"" + from + "\",\"to\":\"" + to + "\",\"format\":\"csv\"}}");
        var done = await WaitAsync(http, task, t => t.GetProperty("status").GetString() is "Succeeded" or "Failed", TimeSpan.FromMinutes(10));
        if (done.GetProperty("status").GetString() != "Succeeded")
        {
            throw new InvalidOperationException($"The export failed: {done}");
        }

        var seconds = (done.GetProperty("completedAt").GetDateTimeOffset() - done.GetProperty("startedAt").GetDateTimeOffset()).TotalSeconds;
        return (seconds, done.GetProperty("result").GetProperty("rowCount").GetInt64());
    }

    private static async Task<double> RecoveryAsync(Options o, HttpClient http)
    {
        using var doomed = StartWorker(o);
        await Task.Delay(TimeSpan.FromSeconds(3));
        var task = await SubmitAsync(http, """{"parameters":{"format":"csv","throttleMs":500}}""");
        await WaitAsync(http, task, t => t.GetProperty("status").GetString() == "Running" && t.GetProperty("progress").GetInt32() >= 5, TimeSpan.FromMinutes(2));
        using var survivor = StartWorker(o);
        await Task.Delay(TimeSpan.FromSeconds(3));

        doomed.Kill(entireProcessTree: true);
        var killed = Stopwatch.StartNew();
        await WaitAsync(http, task, t => t.GetProperty("status").GetString() == "Running" && t.GetProperty("attempt").GetInt32() == 2, TimeSpan.FromMinutes(2));
        var seconds = killed.Elapsed.TotalSeconds;
        await http.PostAsync($"/api/tasks/{task}/cancel", null);
        await WaitAsync(http, task, t => t.GetProperty("status").GetString() == "Cancelled", TimeSpan.FromMinutes(1));
        Stop(survivor);
        return seconds;
    }

    private static Process StartWorker(Options o) => StartWorker(o.WebDll, o.ConnectionString, Path.Combine(o.WorkDir, "artifacts"), 1);

    internal static Process StartWorker(string webDll, string connectionString, string artifacts, int workers)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(webDll);
        start.ArgumentList.Add("--role");
        start.ArgumentList.Add("worker");
        start.Environment["ConnectionStrings__Postgres"] = connectionString;
        start.Environment["Jobs__ArtifactsPath"] = artifacts;
        start.Environment["Jobs__WorkerCount"] = workers.ToString(Invariant);
        start.Environment["Logging__LogLevel__Default"] = "Warning";
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    internal static void Stop(Process process)
    {
        if (!process.HasExited)
        {
            Process.Start("kill", ["-TERM", process.Id.ToString(Invariant)])!.WaitForExit();
            if (!process.WaitForExit(30_000))
            {
                process.Kill(entireProcessTree: true);
            }
        }
    }

    internal static double ReadStatusMb(int pid, string field)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], Invariant) / 1024.0;
    }

    private static async Task<string> SubmitAsync(HttpClient http, string body)
    {
        var response = await http.PostAsync("/api/exports", new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
    }

    private static async Task<JsonElement> WaitAsync(HttpClient http, string id, Func<JsonElement, bool> condition, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var task = await http.GetFromJsonAsync<JsonElement>($"/api/tasks/{id}");
            if (condition(task))
            {
                return task;
            }

            if (deadline.Elapsed > timeout)
            {
                throw new TimeoutException($"Task {id} did not get there: {task}");
            }

            await Task.Delay(100);
        }
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private sealed record Options(string Url, string ConnectionString, string PgConnection, string Psql, string WebDll, string WorkDir, int Runs, string Output)
    {
        public static Options Parse(string[] args)
        {
            var values = BenchArgs.Parse(args);
            var url = BenchArgs.LoopbackUrl(values["url"]).ToString().TrimEnd('/');
            return new Options(url, values["cs"], values["pg"], values["psql"], values["web"], values["work"],
                int.Parse(values.GetValueOrDefault("runs", "3"), Invariant), values.GetValueOrDefault("out", "bench/results/export.json"));
        }
    }
}
