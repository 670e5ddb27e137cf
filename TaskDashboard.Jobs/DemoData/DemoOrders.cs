using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace TaskDashboard.Jobs.DemoData;

/// <summary>
/// The deterministic demo dataset: order i is always the same row for a given row count, so two
/// exports of the same range are byte-identical. Generated inside PostgreSQL in one statement.
/// </summary>
public sealed class DemoOrders(NpgsqlDataSource dataSource, IOptions<DemoDataOptions> options, ILogger<DemoOrders> logger)
{
    /// <summary>Regions and products the data uses; parameters are checked against them.</summary>
    public static IReadOnlyList<string> Regions { get; } = ["central", "east", "north", "south", "west"];

    public static readonly DateOnly FirstDay = new(2025, 1, 1);

    public static readonly DateOnly LastDay = new(2025, 12, 31);

    private const long SeedLockKey = 0x7461736B73656564; // "taskseed"

    /// <summary>Seeds the orders when the table is empty; returns the rows inserted (0 when it was not empty).</summary>
    public async Task<long> SeedIfEmptyAsync(CancellationToken cancellationToken)
    {
        if (!options.Value.Seed)
        {
            return 0;
        }

        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var lockCommand = new NpgsqlCommand($"SELECT pg_advisory_xact_lock({SeedLockKey})", connection, transaction))
        {
            await lockCommand.ExecuteNonQueryAsync(cancellationToken);
        }

        await using (var any = new NpgsqlCommand("SELECT EXISTS (SELECT 1 FROM dashboard.orders)", connection, transaction))
        {
            if (await any.ExecuteScalarAsync(cancellationToken) is true)
            {
                return 0;
            }
        }

        var started = System.Diagnostics.Stopwatch.StartNew();
        // Spread the rows evenly over the 365 days of 2025; every column is a pure function of i.
        await using var seed = new NpgsqlCommand("""
            INSERT INTO dashboard.orders (id, created_at, region, product, quantity, amount)
            SELECT i,
                   timestamptz '2025-01-01 00:00:00+00' + make_interval(secs => (i - 1) * (31536000.0 / @rows)),
                   (ARRAY['central', 'east', 'north', 'south', 'west'])[1 + (i * 7) % 5],
                   'product-' || lpad((1 + (i * 13) % 40)::text, 2, '0'),
                   1 + (i * 31) % 20,
                   round(((i * 7919) % 100000) / 100.0 + 1, 2)
            FROM generate_series(1, @rows::bigint) AS i
            """, connection, transaction) { CommandTimeout = 0 };
        seed.Parameters.AddWithValue("rows", options.Value.Rows);
        var inserted = await seed.ExecuteNonQueryAsync(cancellationToken);
        await using (var analyze = new NpgsqlCommand("ANALYZE dashboard.orders", connection, transaction))
        {
            await analyze.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        logger.LogInformation("Seeded {Rows} demo orders in {Elapsed}", inserted, started.Elapsed);
        return inserted;
    }
}
