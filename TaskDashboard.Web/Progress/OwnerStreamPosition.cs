using System.Globalization;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Web.Progress;

/// <summary>
/// Where a client of <c>GET /api/events</c> is, as the <c>id:</c> of each event. It has every event
/// of its tasks logged before <see cref="After"/>; of each task in <see cref="Delivered"/>, also the
/// later ones up to the number given (events sent as they were announced); and, when
/// <see cref="UpTo"/> is set, the others up to <see cref="UpTo"/> ordered by task and number as far
/// as <see cref="Key"/> (a range of the log being sent). Written
/// <c>{after}[_{taskId}.{seq}…][~{upTo}~{taskId}.{seq}]</c>.
/// </summary>
public sealed record OwnerStreamPosition(
    LogSnapshot After, IReadOnlyDictionary<Guid, long> Delivered, LogSnapshot? UpTo = null, (Guid TaskId, long Seq)? Key = null)
{
    public OwnerStreamPosition(LogSnapshot after)
        : this(after, new Dictionary<Guid, long>())
    {
    }

    public override string ToString()
    {
        var text = string.Concat(Delivered.OrderBy(d => d.Key).Select(d => $"_{Format(d.Key, d.Value)}").Prepend(After.ToCompact()));
        return UpTo is not null && Key is { } key ? $"{text}~{UpTo.ToCompact()}~{Format(key.TaskId, key.Seq)}" : text;
    }

    public static bool TryParse(string text, out OwnerStreamPosition position)
    {
        position = null!;
        var parts = text.Split('~');
        if (parts.Length is not (1 or 3))
        {
            return false;
        }

        var head = parts[0].Split('_');
        if (!LogSnapshot.TryParseCompact(head[0], out var after))
        {
            return false;
        }

        var delivered = new Dictionary<Guid, long>();
        foreach (var entry in head.Skip(1))
        {
            if (!TryParseKey(entry, out var key) || !delivered.TryAdd(key.TaskId, key.Seq))
            {
                return false;
            }
        }

        if (parts.Length == 1)
        {
            position = new OwnerStreamPosition(after, delivered);
            return true;
        }

        if (!LogSnapshot.TryParseCompact(parts[1], out var upTo) || after.Xmax > upTo.Xmax || !TryParseKey(parts[2], out var at))
        {
            return false;
        }

        position = new OwnerStreamPosition(after, delivered, upTo, at);
        return true;
    }

    public bool Equals(OwnerStreamPosition? other) =>
        other is not null && After == other.After && UpTo == other.UpTo && Key == other.Key
        && Delivered.Count == other.Delivered.Count && Delivered.All(d => other.Delivered.TryGetValue(d.Key, out var seq) && seq == d.Value);

    public override int GetHashCode() => HashCode.Combine(After, UpTo, Key, Delivered.Count);

    private static string Format(Guid taskId, long seq) => $"{taskId:N}.{seq.ToString(CultureInfo.InvariantCulture)}";

    private static bool TryParseKey(string text, out (Guid TaskId, long Seq) key)
    {
        key = default;
        if (text.Split('.') is not [var taskId, var seq]
            || !Guid.TryParseExact(taskId, "N", out var id)
            || !long.TryParse(seq, NumberStyles.None, CultureInfo.InvariantCulture, out var number))
        {
            return false;
        }

        key = (id, number);
        return true;
    }
}
