using System.Buffers;
using System.Globalization;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Npgsql;
using TaskDashboard.Jobs.DemoData;
using TaskDashboard.Jobs.Execution;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Jobs.Kinds.Export;

/// <summary>Where an export stands: rows up to <see cref="LastId"/> are in the first <see cref="Bytes"/> bytes.</summary>
public sealed record ExportCheckpoint(long LastId, long Rows, long Bytes);

/// <summary>
/// Exports demo orders to CSV or NDJSON, optionally gzipped, in batches over the primary key
/// (keyset), so memory stays flat whatever the row count. After every batch the file is flushed to
/// disk and a checkpoint (last id, rows, bytes) is stored; a resumed attempt cuts the file back to the
/// checkpoint and goes on, so the result is byte-identical to an uninterrupted run. With gzip each
/// batch is its own gzip member (a multi-member file any gunzip reads) for the same reason.
/// </summary>
public sealed class ExportTaskKind(NpgsqlDataSource dataSource, IOptions<ExportOptions> options) : TaskKind<ExportParameters>
{
    public const string KindName = "export";

    private static readonly byte[] CsvHeader = "id,created_at,region,product,quantity,amount\n"u8.ToArray();

    public override string Name => KindName;

    public override TimeSpan DefaultTimeout => options.Value.Timeout;

    protected override async Task<TaskResult> ExecuteAsync(TaskExecutionContext context, ExportParameters parameters, CancellationToken cancellationToken)
    {
        var from = parameters.From ?? DemoOrders.FirstDay;
        var to = parameters.To ?? DemoOrders.LastDay;
        var extension = parameters.Format + (parameters.Gzip ? ".gz" : "");
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);

        // A resumed attempt keeps the progress its checkpoint stands for.
        await context.ReportProgressAsync(context.Task.Progress, "Counting", "Counting the rows to export", cancellationToken);
        var (total, minId, maxId) = await CountAsync(connection, from, to, parameters.Region, cancellationToken);

        var checkpoint = context.GetCheckpoint<ExportCheckpoint>();
        if (!context.ResumeWorkFile(extension, checkpoint?.Bytes ?? 0) || checkpoint is null)
        {
            checkpoint = new ExportCheckpoint(minId - 1, 0, 0);
        }

        // The hash grows with the file; a resumed attempt first feeds it the part it keeps.
        var path = context.WorkFilePath(extension);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        await HashingStream.AppendFileAsync(hash, path, checkpoint.Bytes, cancellationToken);
        await using (var file = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.Read, 1 << 16))
        {
            file.Seek(0, SeekOrigin.End);
            var output = new HashingStream(file, hash);
            if (checkpoint.Bytes == 0 && parameters.Format == "csv")
            {
                await WriteMemberAsync(output, parameters.Gzip, async s => await s.WriteAsync(CsvHeader, cancellationToken));
            }

            while (checkpoint.LastId < maxId)
            {
                var upTo = Math.Min(maxId, checkpoint.LastId + options.Value.BatchRows);
                long rows = 0;
                await WriteMemberAsync(output, parameters.Gzip, async s => rows = parameters.Format == "csv"
                    ? await CopyCsvAsync(connection, s, checkpoint.LastId, upTo, from, to, parameters.Region, cancellationToken)
                    : await WriteNdjsonAsync(connection, s, checkpoint.LastId, upTo, from, to, parameters.Region, cancellationToken));
                file.Flush(flushToDisk: true);

                checkpoint = new ExportCheckpoint(upTo, checkpoint.Rows + rows, file.Position);
                var progress = total == 0 ? 100 : (int)(checkpoint.Rows * 100 / total);
                await context.SaveCheckpointAsync(checkpoint, Math.Min(progress, 99), "Exporting", $"{checkpoint.Rows:N0} of {total:N0} rows", cancellationToken);
                if (parameters.ThrottleMs > 0)
                {
                    await Task.Delay(parameters.ThrottleMs, cancellationToken);
                }
            }
        }

        var fileName = $"export-{from:yyyyMMdd}-{to:yyyyMMdd}{(parameters.Region is null ? "" : "-" + parameters.Region)}.{extension}";
        var contentType = parameters.Gzip ? "application/gzip" : parameters.Format == "csv" ? "text/csv; charset=utf-8" : "application/x-ndjson";
        return await context.CompleteArtifactAsync(path, fileName, contentType, checkpoint.Rows, cancellationToken, Convert.ToHexStringLower(hash.GetHashAndReset()));
    }

    private static async Task WriteMemberAsync(Stream file, bool gzip, Func<Stream, Task> write)
    {
        if (!gzip)
        {
            await write(file);
            return;
        }

        await using var member = new GZipStream(file, CompressionLevel.Fastest, leaveOpen: true);
        await write(member);
    }

    private static async Task<(long Total, long MinId, long MaxId)> CountAsync(
        NpgsqlConnection connection, DateOnly from, DateOnly to, string? region, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("""
            SELECT count(*), coalesce(min(id), 0), coalesce(max(id), -1) FROM dashboard.orders
            WHERE created_at >= @from AND created_at < @to AND (@region::text IS NULL OR region = @region::text)
            """, connection);
        command.Parameters.AddWithValue("from", Start(from));
        command.Parameters.AddWithValue("to", Start(to.AddDays(1)));
        command.Parameters.AddWithValue("region", NpgsqlTypes.NpgsqlDbType.Text, (object?)region ?? DBNull.Value);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return (reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2));
    }

    // COPY takes no parameters, so every value in this SQL is typed and formatted here (numbers,
    // dates) or checked against a fixed list (the region) before it gets in: no user text.
    private static async Task<long> CopyCsvAsync(
        NpgsqlConnection connection, Stream output, long afterId, long upToId, DateOnly from, DateOnly to, string? region, CancellationToken cancellationToken)
    {
        var regionFilter = region is null ? "" : $"AND region = '{DemoOrders.Regions.Single(r => r == region)}'";
        var sql = string.Create(CultureInfo.InvariantCulture, $"""
            COPY (SELECT id, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), region, product, quantity, amount
                  FROM dashboard.orders
                  WHERE id > {afterId} AND id <= {upToId}
                    AND created_at >= '{from:yyyy-MM-dd} 00:00:00+00' AND created_at < '{to.AddDays(1):yyyy-MM-dd} 00:00:00+00'
                    {regionFilter}
                  ORDER BY id)
            TO STDOUT WITH (FORMAT csv)
            """);
        using var copy = await connection.BeginTextExportAsync(sql, cancellationToken);
        var chars = ArrayPool<char>.Shared.Rent(1 << 15);
        var bytes = ArrayPool<byte>.Shared.Rent(Encoding.UTF8.GetMaxByteCount(1 << 15));
        var encoder = Encoding.UTF8.GetEncoder();
        try
        {
            long lines = 0;
            int read;
            while ((read = await copy.ReadAsync(chars.AsMemory(0, 1 << 15), cancellationToken)) > 0)
            {
                lines += chars.AsSpan(0, read).Count('\n');
                var length = encoder.GetBytes(chars, 0, read, bytes, 0, flush: false);
                await output.WriteAsync(bytes.AsMemory(0, length), cancellationToken);
            }

            return lines;
        }
        finally
        {
            ArrayPool<char>.Shared.Return(chars);
            ArrayPool<byte>.Shared.Return(bytes);
        }
    }

    private static async Task<long> WriteNdjsonAsync(
        NpgsqlConnection connection, Stream output, long afterId, long upToId, DateOnly from, DateOnly to, string? region, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("""
            SELECT id, created_at, region, product, quantity, amount FROM dashboard.orders
            WHERE id > @after AND id <= @upTo AND created_at >= @from AND created_at < @to
              AND (@region::text IS NULL OR region = @region::text)
            ORDER BY id
            """, connection);
        command.Parameters.AddWithValue("after", afterId);
        command.Parameters.AddWithValue("upTo", upToId);
        command.Parameters.AddWithValue("from", Start(from));
        command.Parameters.AddWithValue("to", Start(to.AddDays(1)));
        command.Parameters.AddWithValue("region", NpgsqlTypes.NpgsqlDbType.Text, (object?)region ?? DBNull.Value);

        var buffer = new ArrayBufferWriter<byte>(1 << 16);
        await using var json = new Utf8JsonWriter(buffer);
        long rows = 0;
        await using var reader = await command.ExecuteReaderAsync(System.Data.CommandBehavior.SequentialAccess, cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            json.WriteStartObject();
            json.WriteNumber("id", reader.GetInt64(0));
            json.WriteString("createdAt", reader.GetFieldValue<DateTime>(1).ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture));
            json.WriteString("region", reader.GetString(2));
            json.WriteString("product", reader.GetString(3));
            json.WriteNumber("quantity", reader.GetInt32(4));
            json.WriteNumber("amount", reader.GetDecimal(5));
            json.WriteEndObject();
            json.Flush();
            json.Reset();
            buffer.Write("\n"u8);
            rows++;
            if (buffer.WrittenCount > (1 << 16) - 512)
            {
                await output.WriteAsync(buffer.WrittenMemory, cancellationToken);
                buffer.Clear();
            }
        }

        await output.WriteAsync(buffer.WrittenMemory, cancellationToken);
        return rows;
    }

    private static DateTime Start(DateOnly day) => day.ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc);
}
