using System.Globalization;

namespace TaskDashboard.Jobs.Tasks;

/// <summary>
/// A PostgreSQL snapshot (<c>pg_snapshot</c>: xmin, xmax and the transactions in progress between
/// them) used as a position in the event log across tasks: the events of the transactions it shows
/// as committed are before it, all others after it. Unlike a sequence taken at insert, this holds
/// however the writers' commits interleave. Written as PostgreSQL does (<c>xmin:xmax:xip,…</c>), or
/// compactly with the later numbers as offsets from xmin (<see cref="ToCompact"/>).
/// </summary>
public sealed record LogSnapshot
{
    private readonly ulong[] inProgress;

    private LogSnapshot(ulong xmin, ulong xmax, ulong[] inProgress) => (Xmin, Xmax, this.inProgress) = (xmin, xmax, inProgress);

    public ulong Xmin { get; }

    public ulong Xmax { get; }

    /// <summary>Transactions in progress when the snapshot was taken, ascending, each in [xmin, xmax).</summary>
    public IReadOnlyList<ulong> InProgress => inProgress;

    /// <summary>Reads PostgreSQL's text form (<c>pg_current_snapshot()::text</c>).</summary>
    public static LogSnapshot FromPostgres(string text) =>
        TryParse(text, offsets: false, out var snapshot) ? snapshot : throw new FormatException($"'{text}' is not a pg_snapshot.");

    /// <summary>Reads <see cref="ToCompact"/>'s form; false when it is not a valid snapshot.</summary>
    public static bool TryParseCompact(string text, out LogSnapshot snapshot) => TryParse(text, offsets: true, out snapshot);

    /// <summary><c>xmin:xmax-xmin:xip-xmin,…</c>, which keeps an SSE id short.</summary>
    public string ToCompact() =>
        $"{Xmin}:{Xmax - Xmin}:{string.Join(',', InProgress.Select(x => (x - Xmin).ToString(CultureInfo.InvariantCulture)))}";

    /// <summary>PostgreSQL's text form, for <c>::pg_snapshot</c>.</summary>
    public string ToPostgres() => $"{Xmin}:{Xmax}:{string.Join(',', InProgress)}";

    /// <summary>Whether the snapshot shows transaction <paramref name="xid"/> as finished: its events, if it committed, are before it.</summary>
    public bool Shows(ulong xid) => xid < Xmin || (xid < Xmax && Array.BinarySearch(inProgress, xid) < 0);

    public bool Equals(LogSnapshot? other) =>
        other is not null && Xmin == other.Xmin && Xmax == other.Xmax && InProgress.SequenceEqual(other.InProgress);

    public override int GetHashCode() => HashCode.Combine(Xmin, Xmax, InProgress.Count);

    // PostgreSQL's own rules for a snapshot (pg_snapshot_in): xmin <= xmax, and the listed
    // transactions ascending, without repeats, in [xmin, xmax).
    private static bool TryParse(string text, bool offsets, out LogSnapshot snapshot)
    {
        snapshot = null!;
        var parts = text.Split(':');
        if (parts.Length != 3 || !TryNumber(parts[0], out var xmin) || !TryNumber(parts[1], out var xmax))
        {
            return false;
        }

        if (offsets)
        {
            if (xmax > long.MaxValue - xmin)
            {
                return false;
            }

            xmax += xmin;
        }

        var listed = new List<ulong>();
        foreach (var part in parts[2].Length == 0 ? [] : parts[2].Split(','))
        {
            if (!TryNumber(part, out var xid) || (offsets && xid > xmax - xmin))
            {
                return false;
            }

            xid = offsets ? xid + xmin : xid;
            if (xid < xmin || xid >= xmax || (listed.Count > 0 && xid <= listed[^1]))
            {
                return false;
            }

            listed.Add(xid);
        }

        // Ordinary transaction ids start at 3 (0-2 are special): no snapshot has a smaller xmin.
        if (xmin < 3 || xmin > xmax)
        {
            return false;
        }

        snapshot = new LogSnapshot(xmin, xmax, [.. listed]);
        return true;
    }

    private static bool TryNumber(string text, out ulong value) =>
        ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value) && value <= long.MaxValue;
}
