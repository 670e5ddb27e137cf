using Npgsql;

namespace TaskDashboard.Jobs.Database;

/// <summary>
/// Waits for whoever holds a row, then locks it. Under READ COMMITTED an UPDATE whose WHERE fails
/// on the row version in its snapshot skips the row without waiting, even when another transaction
/// holds it FOR UPDATE and is about to change exactly the columns the WHERE tests (a dispatcher that
/// has enqueued a job but not yet committed its id). Locking first waits for that transaction; the
/// statements that follow take fresh snapshots and see its outcome.
/// </summary>
public static class RowLock
{
    /// <summary>
    /// Locks row <paramref name="id"/> of <paramref name="table"/> and returns its <paramref name="column"/>
    /// (null when there is no such row) and the id of the transaction (<c>txid_current()</c>, which a
    /// row lock assigns anyway), by which a commit whose answer was lost can be looked up.
    /// </summary>
    /// <remarks>Table and column names are constants of ours, never input.</remarks>
    public static async Task<(string? Value, long Transaction)> WaitAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string table, string column, Guid id, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"SELECT {column}::text, txid_current() FROM {table} WHERE id = @id FOR UPDATE", connection, transaction);
        command.Parameters.AddWithValue("id", id);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (await reader.ReadAsync(cancellationToken))
        {
            return (reader.IsDBNull(0) ? null : reader.GetString(0), reader.GetInt64(1));
        }

        return (null, 0);
    }
}
