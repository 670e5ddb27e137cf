using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Jobs.Database;

/// <summary>
/// This process's connection pools, and what a lost database looks like. Npgsql keeps idle pooled
/// connections after PostgreSQL restarts (or fails over, or a network drops them) and hands them
/// out as if they were alive (npgsql/npgsql#5073): after a one-second restart a running task's
/// lease check and progress write, and every API request, could each draw a dead connection. (When
/// a statement on one fails with <c>57P01 terminating connection due to administrator command</c>,
/// Npgsql 10 closes that pool's other idle connections itself; but a test that ended 60 idle
/// backends and then sent three requests saw a later request fail too, now and then.) The listeners
/// see a restart the moment it happens (their connection ends) and clear every pool, so that the
/// connections opened afterwards are new ones.
/// </summary>
public sealed class DatabasePools(
    NpgsqlDataSource main,
    [FromKeyedServices(TaskStore.ProgressBatchesKey)] NpgsqlDataSource progressBatches)
{
    /// <summary>
    /// Closes every idle pooled connection of this process (ours, and Hangfire's, which are pooled
    /// by connection string); connections in use are closed when they are returned.
    /// </summary>
    public void Clear()
    {
        main.Clear();
        progressBatches.Clear();
        NpgsqlConnection.ClearAllPools();
    }

    /// <summary>
    /// Whether a failure says the database could not be reached or went away, rather than that the
    /// statement was wrong: worth trying again on a new connection once the server is back. Npgsql's
    /// exception may come wrapped (a reader of a <c>COPY</c>, say), so the inner ones count too; a
    /// file's <see cref="IOException"/> of our own does not. With <paramref name="databaseOnly"/>
    /// (the failing code did nothing but talk to the database) a bare socket failure counts as well:
    /// Npgsql lets one out unwrapped when a connection is reset while it is being opened.
    /// </summary>
    public static bool IsUnreachable(Exception exception, bool databaseOnly = false)
    {
        for (Exception? current = exception; current is not null; current = current.InnerException)
        {
            if (current is NpgsqlException npgsql)
            {
                return IsUnreachable(npgsql);
            }

            if (databaseOnly && current is IOException or SocketException)
            {
                return true;
            }
        }

        return false;
    }

    private static bool IsUnreachable(NpgsqlException exception) => exception switch
    {
        // Shut down by an administrator or a crash, still starting or stopping, or a connection failure.
        PostgresException postgres => postgres.SqlState is PostgresErrorCodes.AdminShutdown or PostgresErrorCodes.CrashShutdown
            or PostgresErrorCodes.CannotConnectNow || postgres.SqlState.StartsWith("08", StringComparison.Ordinal),
        // The connection could not be opened or broke. (Not a timeout: a slow statement would only
        // time out again.)
        _ => exception.InnerException is IOException or SocketException,
    };
}
