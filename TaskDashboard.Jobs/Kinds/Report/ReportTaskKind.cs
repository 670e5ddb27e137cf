using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.Extensions.Options;
using Npgsql;
using TaskDashboard.Jobs.Execution;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Jobs.Kinds.Report;

/// <summary>Totals of one group (a region, a product or a month).</summary>
public sealed record GroupTotals(long Orders, long Quantity, decimal Amount);

/// <summary>Where a report stands: months before <see cref="NextMonth"/> are summed into <see cref="Groups"/>.</summary>
public sealed record ReportCheckpoint(int NextMonth, Dictionary<string, GroupTotals> Groups);

/// <summary>
/// Summarises demo orders per region, product or month into a self-contained HTML report (summary
/// table and an inline SVG bar chart) or a CSV. The range is aggregated one calendar month at a time
/// with a checkpoint after each, so a resumed report goes on from the next month.
/// </summary>
public sealed class ReportTaskKind(NpgsqlDataSource dataSource, IOptions<ReportOptions> options) : TaskKind<ReportParameters>
{
    public const string KindName = "report";

    public override string Name => KindName;

    public override TimeSpan DefaultTimeout => options.Value.Timeout;

    protected override async Task<TaskResult> ExecuteAsync(TaskExecutionContext context, ReportParameters parameters, CancellationToken cancellationToken)
    {
        var from = parameters.From!.Value;
        var to = parameters.To!.Value;
        var months = Months(from, to);
        var checkpoint = context.GetCheckpoint<ReportCheckpoint>() ?? new ReportCheckpoint(0, []);
        // A resumed attempt keeps the progress its checkpoint stands for.
        await context.ReportProgressAsync(Math.Max(2, context.Task.Progress), "Querying", $"{months.Count} month(s) to summarise", cancellationToken);

        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        for (var month = checkpoint.NextMonth; month < months.Count; month++)
        {
            var (start, end) = months[month];
            var groups = new Dictionary<string, GroupTotals>(checkpoint.Groups);
            foreach (var (key, totals) in await AggregateAsync(connection, parameters.GroupBy, start, end, cancellationToken))
            {
                groups[key] = groups.TryGetValue(key, out var sum)
                    ? new GroupTotals(sum.Orders + totals.Orders, sum.Quantity + totals.Quantity, sum.Amount + totals.Amount)
                    : totals;
            }

            checkpoint = new ReportCheckpoint(month + 1, groups);
            await context.SaveCheckpointAsync(
                checkpoint, 5 + (85 * (month + 1) / months.Count), "Aggregating", $"Month {month + 1} of {months.Count} ({start:yyyy-MM})", cancellationToken);
            if (options.Value.PartitionDelay > TimeSpan.Zero)
            {
                await Task.Delay(options.Value.PartitionDelay, cancellationToken);
            }
        }

        await context.ReportProgressAsync(92, "Rendering", $"{checkpoint.Groups.Count} group(s)", cancellationToken);
        var rows = checkpoint.Groups.OrderBy(g => g.Key, StringComparer.Ordinal).ToList();
        var content = parameters.Format == "csv" ? RenderCsv(parameters, rows) : RenderHtml(parameters, from, to, rows);

        await context.ReportProgressAsync(96, "Storing", null, cancellationToken);
        var path = context.WorkFilePath(parameters.Format);
        await File.WriteAllTextAsync(path, content, new UTF8Encoding(false), cancellationToken);
        var fileName = $"report-{parameters.GroupBy}-{from:yyyyMMdd}-{to:yyyyMMdd}.{parameters.Format}";
        var contentType = parameters.Format == "csv" ? "text/csv; charset=utf-8" : "text/html; charset=utf-8";
        return await context.CompleteArtifactAsync(path, fileName, contentType, rows.Count, cancellationToken);
    }

    private static List<(DateTime Start, DateTime End)> Months(DateOnly from, DateOnly to)
    {
        var months = new List<(DateTime, DateTime)>();
        var end = to.AddDays(1).ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc);
        var start = from.ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc);
        while (start < end)
        {
            var next = new DateTime(start.Year, start.Month, 1, 0, 0, 0, DateTimeKind.Utc).AddMonths(1);
            months.Add((start, next < end ? next : end));
            start = next;
        }

        return months;
    }

    private static async Task<List<(string Key, GroupTotals Totals)>> AggregateAsync(
        NpgsqlConnection connection, string groupBy, DateTime start, DateTime end, CancellationToken cancellationToken)
    {
        // The grouping expression comes from a fixed list, never from the request text.
        var key = groupBy switch
        {
            "region" => "region",
            "product" => "product",
            "month" => "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM')",
            _ => throw new PermanentTaskException($"Unknown groupBy '{groupBy}'."),
        };
        await using var command = new NpgsqlCommand($"""
            SELECT {key}, count(*), coalesce(sum(quantity), 0), coalesce(sum(amount), 0)
            FROM dashboard.orders WHERE created_at >= @start AND created_at < @end
            GROUP BY 1
            """, connection);
        command.Parameters.AddWithValue("start", start);
        command.Parameters.AddWithValue("end", end);
        var result = new List<(string, GroupTotals)>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            result.Add((reader.GetString(0), new GroupTotals(reader.GetInt64(1), reader.GetInt64(2), reader.GetDecimal(3))));
        }

        return result;
    }

    private static string RenderCsv(ReportParameters parameters, List<KeyValuePair<string, GroupTotals>> rows)
    {
        var csv = new StringBuilder();
        csv.Append(parameters.GroupBy).Append(",orders,quantity,amount\n");
        foreach (var (key, totals) in rows)
        {
            csv.Append(CultureInfo.InvariantCulture, $"{key},{totals.Orders},{totals.Quantity},{totals.Amount:0.00}\n");
        }

        return csv.ToString();
    }

    private static string RenderHtml(ReportParameters parameters, DateOnly from, DateOnly to, List<KeyValuePair<string, GroupTotals>> rows)
    {
        var culture = CultureInfo.InvariantCulture;
        var max = rows.Count == 0 ? 1m : Math.Max(1m, rows.Max(r => r.Value.Amount));
        const int barHeight = 22, labelWidth = 120, chartWidth = 520;
        var html = new StringBuilder();
        html.Append(culture, $"""
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>Orders by {parameters.GroupBy}, {from:yyyy-MM-dd} to {to:yyyy-MM-dd}</title>
            <style>body{"{"}font-family:system-ui,sans-serif;margin:2rem;color:#222{"}"}table{"{"}border-collapse:collapse{"}"}
            td,th{"{"}padding:.3rem .8rem;border-bottom:1px solid #ddd;text-align:right{"}"}td:first-child,th:first-child{"{"}text-align:left{"}"}</style></head>
            <body><h1>Orders by {parameters.GroupBy}</h1><p>{from:yyyy-MM-dd} to {to:yyyy-MM-dd}: {rows.Sum(r => r.Value.Orders):N0} orders,
            {rows.Sum(r => r.Value.Amount):N2} in total.</p>
            <svg xmlns="http://www.w3.org/2000/svg" width="{labelWidth + chartWidth + 140}" height="{(rows.Count * barHeight) + 10}" role="img" aria-label="Amount by {parameters.GroupBy}">
            """);
        for (var i = 0; i < rows.Count; i++)
        {
            var (key, totals) = rows[i];
            var width = (int)(chartWidth * (totals.Amount / max));
            var y = (i * barHeight) + 4;
            html.Append(culture, $"""<text x="0" y="{y + 15}" font-size="13">{WebUtility.HtmlEncode(key)}</text><rect x="{labelWidth}" y="{y}" width="{width}" height="{barHeight - 6}" fill="#3f51b5"/><text x="{labelWidth + width + 6}" y="{y + 15}" font-size="12">{totals.Amount:N2}</text>""");
            html.Append('\n');
        }

        html.Append(culture, $"</svg>\n<table><thead><tr><th>{parameters.GroupBy}</th><th>orders</th><th>quantity</th><th>amount</th></tr></thead><tbody>\n");
        foreach (var (key, totals) in rows)
        {
            html.Append(culture, $"<tr><td>{WebUtility.HtmlEncode(key)}</td><td>{totals.Orders:N0}</td><td>{totals.Quantity:N0}</td><td>{totals.Amount:N2}</td></tr>\n");
        }

        html.Append("</tbody></table></body></html>\n");
        return html.ToString();
    }
}
