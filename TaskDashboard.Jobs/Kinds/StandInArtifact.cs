using System.Globalization;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using TaskDashboard.Jobs.Execution;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Jobs.Kinds;

// TODO(#3): the stand-in work that keeps submit → run → Succeeded real end to end until the
// report and export jobs read the demo orders. It writes one deterministic line per day.
internal static class StandInArtifact
{
    private const int BatchDays = 10;

    public static async Task<TaskResult> WriteAsync(
        TaskExecutionContext context,
        DateOnly from,
        DateOnly to,
        string format,
        bool gzip,
        int throttleMs,
        CancellationToken cancellationToken)
    {
        var extension = format + (gzip ? ".gz" : "");
        var fileName = $"{context.Task.Kind}-{context.Task.Id:N}.{extension}";
        var contentType = gzip ? "application/gzip" : format switch
        {
            "ndjson" => "application/x-ndjson",
            "html" => "text/html; charset=utf-8",
            _ => "text/csv; charset=utf-8",
        };
        var path = context.Artifacts.PathFor(context.Task.Id, fileName);
        var days = to.DayNumber - from.DayNumber + 1;

        long rows = 0;
        await using (var file = File.Create(path))
        await using (var compressed = gzip ? new GZipStream(file, CompressionLevel.Fastest, leaveOpen: true) : null)
        await using (var writer = new StreamWriter((Stream?)compressed ?? file, new UTF8Encoding(false)))
        {
            if (format is "csv")
            {
                await writer.WriteLineAsync("day,orders");
            }

            for (var day = from; day <= to; day = day.AddDays(1))
            {
                cancellationToken.ThrowIfCancellationRequested();
                var orders = (day.DayNumber * 7919) % 1000;
                var date = day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
                await writer.WriteLineAsync(format switch
                {
                    "ndjson" => $$"""{"day":"{{date}}","orders":{{orders}}}""",
                    "html" => $"<p>{date}: {orders}</p>",
                    _ => $"{date},{orders}",
                });
                rows++;
                if (rows % BatchDays == 0 || rows == days)
                {
                    await context.ReportProgressAsync((int)(rows * 100 / days), "Writing", $"{rows:N0} of {days:N0} days", cancellationToken);
                    if (throttleMs > 0)
                    {
                        await Task.Delay(throttleMs, cancellationToken);
                    }
                }
            }
        }

        await using var stream = File.OpenRead(path);
        var sha256 = Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, cancellationToken));
        return new TaskResult(fileName, contentType, stream.Length, rows, sha256, context.Artifacts.RelativePath(path));
    }
}
