namespace TaskDashboard.Jobs.Tasks;

/// <summary>
/// Whose tasks a caller may read and touch: those of <see cref="OwnerId"/>, or every owner's when
/// <see cref="AllOwners"/> (the ops role). New tasks always belong to <see cref="OwnerId"/>.
/// </summary>
public sealed record TaskScope(string OwnerId, bool AllOwners = false);
