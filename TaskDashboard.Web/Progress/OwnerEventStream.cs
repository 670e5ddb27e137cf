using System.Text;
using System.Text.Json;
using TaskDashboard.Jobs.Progress;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Web.Progress;

/// <summary>
/// The SSE stream of all of a caller's tasks: a snapshot of their unfinished tasks, then every
/// event of any of their tasks (<see cref="OwnerEventFeed"/>), each with the client's position as
/// <c>id:</c> (<see cref="OwnerStreamPosition"/>). From a <c>Last-Event-ID</c>, exactly the events
/// after it.
/// </summary>
public sealed class OwnerEventStream(string ownerId, OwnerStreamPosition? resumeFrom, TaskStore store, TaskEventBus bus, ProgressOptions options) : IResult
{
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
            var (feed, unfinished) = await OwnerEventFeed.StartAsync(ownerId, resumeFrom, store, options.OwnerStreamIdTasks, cancellationToken);
            if (resumeFrom is null)
            {
                await TaskEventStream.WriteAsync(response, Frame(feed.Start, "snapshot", unfinished.Select(TaskEventStream.Snapshot).ToList()), cancellationToken);
            }

            await feed.RunAsync(
                announced,
                options.SseKeepAlive,
                (events, ct) => TaskEventStream.WriteAsync(response, Frames(events), ct),
                ct => TaskEventStream.WriteAsync(response, ": keep-alive\n\n", ct),
                cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The client went away.
        }
    }

    private static string Frames(IReadOnlyList<PositionedEvent> events)
    {
        var frames = new StringBuilder();
        foreach (var (at, taskEvent) in events)
        {
            frames.Append(Frame(at, TaskEventStream.EventName(taskEvent), TaskEventStream.ToData(taskEvent)));
        }

        return frames.ToString();
    }

    private static string Frame<T>(OwnerStreamPosition id, string name, T data) =>
        $"id: {id}\nevent: {name}\ndata: {JsonSerializer.Serialize(data, TaskEventStream.Json)}\n\n";
}
