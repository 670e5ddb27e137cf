using System.Globalization;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Web.Progress;

/// <summary>
/// Where a client of <c>GET /api/events</c> is, as the <c>id:</c> of each event: it has every event
/// of its tasks logged before <see cref="After"/>, and, when <see cref="UpTo"/> is set, those up to
/// <see cref="UpTo"/> ordered by task and number as far as <see cref="Key"/>. Written as
/// <c>{after}</c> after a whole range of events, else <c>{after}~{upTo}~{taskId}.{seq}</c>.
/// </summary>
public sealed record OwnerStreamPosition(LogSnapshot After, LogSnapshot? UpTo = null, (Guid TaskId, long Seq)? Key = null)
{
    public override string ToString() => UpTo is null || Key is not { } key
        ? After.ToCompact()
        : $"{After.ToCompact()}~{UpTo.ToCompact()}~{key.TaskId:N}.{key.Seq.ToString(CultureInfo.InvariantCulture)}";

    public static bool TryParse(string text, out OwnerStreamPosition position)
    {
        position = null!;
        var parts = text.Split('~');
        if (parts.Length == 1 && LogSnapshot.TryParseCompact(parts[0], out var whole))
        {
            position = new OwnerStreamPosition(whole);
            return true;
        }

        if (parts.Length != 3
            || !LogSnapshot.TryParseCompact(parts[0], out var after)
            || !LogSnapshot.TryParseCompact(parts[1], out var upTo)
            || after.Xmax > upTo.Xmax
            || parts[2].Split('.') is not [var taskId, var seq]
            || !Guid.TryParseExact(taskId, "N", out var id)
            || !long.TryParse(seq, NumberStyles.None, CultureInfo.InvariantCulture, out var number))
        {
            return false;
        }

        position = new OwnerStreamPosition(after, upTo, (id, number));
        return true;
    }
}
