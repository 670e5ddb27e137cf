using TaskDashboard.Jobs.Progress;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Web.Progress;

/// <summary>An event of a caller's tasks, and the position a client that has it resumes from.</summary>
public readonly record struct PositionedEvent(OwnerStreamPosition Position, TaskEvent Event);

/// <summary>
/// Every event of all of a caller's tasks after a position, each with the client's position after
/// it (<see cref="OwnerStreamPosition"/>): what <c>GET /api/events</c> and the hub's watches of all
/// of a caller's tasks send.
/// </summary>
/// <remarks>
/// A task's event is sent as soon as it is announced when it is the next one the feed expects
/// of that task (for a task it has neither sent before nor found in the snapshot it started from,
/// its first event), and its position names the task and number on top of the last position read
/// from the log. Anything else (a later event of a task it does not follow yet, a gap, a quiet
/// spell, too many tasks named in the position) makes the feed read the events after its position
/// from the log (one query), which ends at a new PostgreSQL snapshot.
/// </remarks>
public sealed class OwnerEventFeed
{
    /// <summary>Unfinished tasks of the caller a new feed lists first, per state.</summary>
    public const int SnapshotLimit = 100;

    // Events read from the log at a time; a long replay takes several reads of the same range.
    private const int PageSize = 500;

    // The number after a task's final event: nothing more of it is sent.
    private const long Ended = long.MaxValue;

    private readonly string ownerId;
    private readonly TaskStore store;
    private readonly int idTasks;
    private OwnerStreamPosition position;

    // Per task the feed follows (sent since it began, or in its starting snapshot), the number of
    // the next event to send.
    private readonly Dictionary<Guid, long> next = [];

    private OwnerEventFeed(string ownerId, OwnerStreamPosition from, TaskStore store, int idTasks) =>
        (this.ownerId, Start, position, this.store, this.idTasks) = (ownerId, from, from, store, idTasks);

    /// <summary>Where the feed starts: the client has every event before it.</summary>
    public OwnerStreamPosition Start { get; }

    /// <summary>
    /// A feed from <paramref name="resumeFrom"/>, or, when null, from now, with the caller's
    /// unfinished tasks read at that position (<see cref="TaskStore.GetUnfinishedTasksAsync"/>; none
    /// when resuming). The feed follows those tasks from their last event, so their next announced
    /// events are sent without a read of the log. Subscribe to the announcements before calling it.
    /// </summary>
    public static async Task<(OwnerEventFeed Feed, IReadOnlyList<TaskItem> Unfinished)> StartAsync(
        string ownerId, OwnerStreamPosition? resumeFrom, TaskStore store, int idTasks, CancellationToken cancellationToken)
    {
        IReadOnlyList<TaskItem> unfinished = [];
        var from = resumeFrom;
        if (from is null)
        {
            (var at, unfinished) = await store.GetUnfinishedTasksAsync(ownerId, SnapshotLimit, cancellationToken);
            from = new OwnerStreamPosition(at);
        }

        var feed = new OwnerEventFeed(ownerId, from, store, idTasks);
        foreach (var task in unfinished)
        {
            feed.next[task.Id] = task.LastEventSeq + 1;
        }

        return (feed, unfinished);
    }

    /// <summary>
    /// Sends the events after the position, then the announced ones, until the subscription ends or
    /// <paramref name="cancellationToken"/> fires. <paramref name="announced"/> must have been taken
    /// before the position was read, so that whatever commits after it is announced there. After
    /// <paramref name="quiet"/> without an announcement it calls <paramref name="onQuietAsync"/> and
    /// reads the log all the same, in case an announcement was lost (a crash between a batch's
    /// commit and its NOTIFY).
    /// </summary>
    public async Task RunAsync(
        TaskEventSubscription announced,
        TimeSpan quiet,
        Func<IReadOnlyList<PositionedEvent>, CancellationToken, Task> sendAsync,
        Func<CancellationToken, Task> onQuietAsync,
        CancellationToken cancellationToken)
    {
        // The first read also moves the position past every event the client has, so no
        // announcement is placed before it.
        var readLog = true;
        while (true)
        {
            if (readLog)
            {
                await SendFromLogAsync(sendAsync, cancellationToken);
                readLog = false;
            }

            using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            wait.CancelAfter(quiet);
            try
            {
                if (!await announced.Reader.WaitToReadAsync(wait.Token))
                {
                    return;
                }
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                await onQuietAsync(cancellationToken);
                readLog = true;
                continue;
            }

            var placed = new List<PositionedEvent>();
            while (announced.Reader.TryRead(out var taskEvent))
            {
                readLog |= !TryPlaceAnnounced(taskEvent, placed);
            }

            if (placed.Count > 0)
            {
                await sendAsync(placed, cancellationToken);
            }

            readLog |= position.Delivered.Count >= idTasks;
        }
    }

    // An announced event: one the client has (before the position, or sent), the next of its task
    // (placed), or one the feed cannot place without the log (false): after a gap, a later event of
    // a task it does not follow, or from an older version without its transaction.
    private bool TryPlaceAnnounced(TaskEvent taskEvent, List<PositionedEvent> placed)
    {
        if (taskEvent.Tx is not { } tx)
        {
            return false;
        }

        if (position.After.Shows(tx))
        {
            return true;
        }

        var expected = next.GetValueOrDefault(taskEvent.TaskId, 1);
        if (taskEvent.Seq < expected)
        {
            return true;
        }

        if (taskEvent.Seq > expected)
        {
            return false;
        }

        var delivered = new Dictionary<Guid, long>(position.Delivered) { [taskEvent.TaskId] = taskEvent.Seq };
        position = new OwnerStreamPosition(position.After, delivered);
        next[taskEvent.TaskId] = NextAfter(taskEvent);
        placed.Add(new PositionedEvent(position, taskEvent));
        return true;
    }

    // Sends the events logged after the position, page by page, and moves the position past them.
    // The last event of the range gets the range's end as its position; the others, their place in it.
    private async Task SendFromLogAsync(Func<IReadOnlyList<PositionedEvent>, CancellationToken, Task> sendAsync, CancellationToken cancellationToken)
    {
        while (true)
        {
            // One more than a page tells whether this page ends the range.
            var (upTo, read) = await store.GetOwnerEventsAsync(
                ownerId, position.After, position.Delivered, position.UpTo, position.Key, PageSize + 1, cancellationToken);
            var whole = read.Count <= PageSize;
            var events = whole ? read : read.Take(PageSize).ToList();
            var placed = new List<PositionedEvent>(events.Count);
            for (var i = 0; i < events.Count; i++)
            {
                var taskEvent = events[i];
                var at = whole && i == events.Count - 1
                    ? new OwnerStreamPosition(upTo)
                    : position with { UpTo = upTo, Key = (taskEvent.TaskId, taskEvent.Seq) };
                next[taskEvent.TaskId] = NextAfter(taskEvent);
                placed.Add(new PositionedEvent(at, taskEvent));
            }

            if (placed.Count > 0)
            {
                await sendAsync(placed, cancellationToken);
            }

            if (whole)
            {
                // Everything sent is before the new position now, ended tasks included: their late
                // announcements are placed by it, so they need no entry.
                position = new OwnerStreamPosition(upTo);
                foreach (var ended in next.Where(n => n.Value == Ended).Select(n => n.Key).ToList())
                {
                    next.Remove(ended);
                }

                return;
            }

            position = position with { UpTo = upTo, Key = (events[^1].TaskId, events[^1].Seq) };
        }
    }

    private static long NextAfter(TaskEvent taskEvent) =>
        TaskEventStream.IsFinalEvent(taskEvent) ? Ended : taskEvent.Seq + 1;
}
