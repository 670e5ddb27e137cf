using Npgsql;

namespace TaskDashboard.Jobs.Tasks;

/// <summary>
/// Whose tasks a caller may read and touch: those of <see cref="OwnerId"/>, or every owner's when
/// <see cref="AllOwners"/> (the ops role). New tasks always belong to <see cref="OwnerId"/>.
/// </summary>
public sealed record TaskScope(string OwnerId, bool AllOwners = false)
{
    /// <summary>The parameters of the filter every scoped read writes: <c>(@all OR owner_id = @owner)</c>.</summary>
    internal void AddParameters(NpgsqlParameterCollection parameters)
    {
        parameters.AddWithValue("owner", OwnerId);
        parameters.AddWithValue("all", AllOwners);
    }
}
