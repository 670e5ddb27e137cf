using System.Text;
using System.Text.Json;
using TaskDashboard.Jobs.Progress;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Web.Progress;

/// <summary>
/// The SSE stream of all of a caller's tasks: a snapshot of their unfinished tasks, then every
/// event of any of their tasks, each with the client's position as <c>id:</c>
/// (<see cref="OwnerStreamPosition"/>). From a <c>Last-Event-ID</c>, exactly the events after it.
/// </summary>
/// <remarks>
/// A task's event is sent as soon as it is announced when it is the next one the stream expects
/// of that task (for a task it has not sent before, its first event), and its id names the task
/// and number on top of the last position read from the log. Anything else (a task that started
/// before, a gap, a quiet keep-alive, too many tasks named in the id) makes the stream read the
/// events after its position from the log (one query), which ends at a new PostgreSQL snapshot.
/// </remarks>
public sealed class OwnerEventStream(string ownerId, OwnerStreamPosition? resumeFrom, TaskStore store, TaskEventBus bus, ProgressOptions options) : IResult
{
    private const int SnapshotLimit = 100;

    // Events read from the log at a time; a long replay takes several reads of the same range.
    private const int PageSize = 500;

    // The number after a task's final event: nothing more of it is sent.
    private const long Ended = long.MaxValue;

    private OwnerStreamPosition position = null!;

    // Per task sent since the stream began, the number of the next event to send.
    private readonly Dictionary<Guid, long> next = [];

    public async Task ExecuteAsync(HttpContext context)
    {
        var response = context.Response;
        var cancellationToken = context.RequestAborted;
        TaskEventStream.StartStream(context);

        // Subscribed before the first read, so that whatever commits after it is announced here.
        using var announced = bus.SubscribeOwner(ownerId);
        try
        {
            await TaskEventStream.WriteAsync(response, $"retry: {(int)options.SseRetry.TotalMilliseconds}\n\n", cancellationToken);
            if (resumeFrom is null)
            {
                var (at, tasks) = await store.GetUnfinishedTasksAsync(ownerId, SnapshotLimit, cancellationToken);
                position = new OwnerStreamPosition(at);
                await TaskEventStream.WriteAsync(response, Frame(position, "snapshot", tasks.Select(TaskEventStream.Snapshot).ToList()), cancellationToken);
            }
            else
            {
                position = resumeFrom;
            }

            // The first read also moves the position past every event the client has, so no
            // announcement is placed before it.
            var readLog = true;
            while (true)
            {
                if (readLog)
                {
                    await SendFromLogAsync(response, cancellationToken);
                    readLog = false;
                }

                using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                wait.CancelAfter(options.SseKeepAlive);
                try
                {
                    if (!await announced.Reader.WaitToReadAsync(wait.Token))
                    {
                        return;
                    }
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    // Quiet: a keep-alive, and a look at the log all the same, in case an
                    // announcement was lost (a crash between a batch's commit and its NOTIFY).
                    await TaskEventStream.WriteAsync(response, ": keep-alive\n\n", cancellationToken);
                    readLog = true;
                    continue;
                }

                var frames = new StringBuilder();
                while (announced.Reader.TryRead(out var taskEvent))
                {
                    readLog |= !TrySendAnnounced(taskEvent, frames);
                }

                if (frames.Length > 0)
                {
                    await TaskEventStream.WriteAsync(response, frames.ToString(), cancellationToken);
                }

                readLog |= position.Delivered.Count >= options.OwnerStreamIdTasks;
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The client went away.
        }
    }

    // An announced event: one the client has (before the position, or sent), the next of its task
    // (added to the frames), or one the stream cannot place without the log (false): after a gap,
    // of a task it has not sent before unless that is the task's first event, or from an older
    // version without its transaction.
    private bool TrySendAnnounced(TaskEvent taskEvent, StringBuilder frames)
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
        frames.Append(Frame(position, TaskEventStream.EventName(taskEvent), TaskEventStream.ToData(taskEvent)));
        return true;
    }

    // Sends the events logged after the position, page by page, and moves the position past them.
    // The last event of the range gets the range's end as its id; the others, their place in it.
    private async Task SendFromLogAsync(HttpResponse response, CancellationToken cancellationToken)
    {
        while (true)
        {
            // One more than a page tells whether this page ends the range.
            var (upTo, read) = await store.GetOwnerEventsAsync(
                ownerId, position.After, position.Delivered, position.UpTo, position.Key, PageSize + 1, cancellationToken);
            var whole = read.Count <= PageSize;
            var events = whole ? read : read.Take(PageSize).ToList();
            var frames = new StringBuilder();
            for (var i = 0; i < events.Count; i++)
            {
                var taskEvent = events[i];
                var at = whole && i == events.Count - 1
                    ? new OwnerStreamPosition(upTo)
                    : position with { UpTo = upTo, Key = (taskEvent.TaskId, taskEvent.Seq) };
                next[taskEvent.TaskId] = NextAfter(taskEvent);
                frames.Append(Frame(at, TaskEventStream.EventName(taskEvent), TaskEventStream.ToData(taskEvent)));
            }

            if (frames.Length > 0)
            {
                await TaskEventStream.WriteAsync(response, frames.ToString(), cancellationToken);
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

    private static string Frame<T>(OwnerStreamPosition id, string name, T data) =>
        $"id: {id}\nevent: {name}\ndata: {JsonSerializer.Serialize(data, TaskEventStream.Json)}\n\n";
}
