using System.Text;
using System.Text.Json;
using TaskDashboard.Jobs.Progress;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Web.Progress;

/// <summary>
/// The SSE stream of all of a caller's tasks: a snapshot of their unfinished tasks, then every
/// event of any of their tasks as it is logged, each with its position in the log as <c>id:</c>
/// (<see cref="OwnerStreamPosition"/>). From a <c>Last-Event-ID</c>, exactly the events after it.
/// </summary>
public sealed class OwnerEventStream(string ownerId, OwnerStreamPosition? resumeFrom, TaskStore store, TaskEventBus bus, ProgressOptions options) : IResult
{
    private const int SnapshotLimit = 100;

    // Events read from the log at a time; a long replay takes several reads of the same range.
    private const int PageSize = 500;

    public async Task ExecuteAsync(HttpContext context)
    {
        var response = context.Response;
        var cancellationToken = context.RequestAborted;
        TaskEventStream.StartStream(context);

        // The owner's notifications only wake the stream: its events are read from the log, by
        // position, so that each has one. Subscribing first means that whatever commits after a
        // read wakes the stream for the next.
        using var wake = bus.SubscribeOwner(ownerId);
        try
        {
            await TaskEventStream.WriteAsync(response, $"retry: {(int)options.SseRetry.TotalMilliseconds}\n\n", cancellationToken);
            var position = resumeFrom;
            if (position is null)
            {
                var (at, tasks) = await store.GetUnfinishedTasksAsync(ownerId, SnapshotLimit, cancellationToken);
                position = new OwnerStreamPosition(at);
                await TaskEventStream.WriteAsync(response, Frame(position, "snapshot", tasks.Select(TaskEventStream.Snapshot).ToList()), cancellationToken);
            }

            while (true)
            {
                while (wake.Reader.TryRead(out _))
                {
                }

                position = await SendNewEventsAsync(response, position, cancellationToken);
                using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                wait.CancelAfter(options.SseKeepAlive);
                try
                {
                    if (!await wake.Reader.WaitToReadAsync(wait.Token))
                    {
                        return;
                    }
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    // Quiet: a keep-alive, and a look at the log all the same, in case an
                    // announcement was lost (a crash between a batch's commit and its NOTIFY).
                    await TaskEventStream.WriteAsync(response, ": keep-alive\n\n", cancellationToken);
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The client went away.
        }
    }

    // Sends the events logged after the position, page by page, and returns the position after
    // them. The last event of the range gets the range's end as its id; the others, their place in it.
    private async Task<OwnerStreamPosition> SendNewEventsAsync(HttpResponse response, OwnerStreamPosition position, CancellationToken cancellationToken)
    {
        while (true)
        {
            // One more than a page tells whether this page ends the range.
            var (upTo, read) = await store.GetOwnerEventsAsync(ownerId, position.After, position.UpTo, position.Key, PageSize + 1, cancellationToken);
            var whole = read.Count <= PageSize;
            var events = whole ? read : read.Take(PageSize).ToList();
            if (events.Count > 0)
            {
                var frames = new StringBuilder();
                for (var i = 0; i < events.Count; i++)
                {
                    var taskEvent = events[i];
                    var at = whole && i == events.Count - 1 ? new OwnerStreamPosition(upTo) : new OwnerStreamPosition(position.After, upTo, (taskEvent.TaskId, taskEvent.Seq));
                    frames.Append(Frame(at, TaskEventStream.EventName(taskEvent), TaskEventStream.ToData(taskEvent)));
                }

                await TaskEventStream.WriteAsync(response, frames.ToString(), cancellationToken);
            }

            if (whole)
            {
                return new OwnerStreamPosition(upTo);
            }

            position = new OwnerStreamPosition(position.After, upTo, (events[^1].TaskId, events[^1].Seq));
        }
    }

    private static string Frame<T>(OwnerStreamPosition id, string name, T data) =>
        $"id: {id}\nevent: {name}\ndata: {JsonSerializer.Serialize(data, TaskEventStream.Json)}\n\n";
}
