using TaskDashboard.Jobs.Progress;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Web.Progress;

/// <summary>
/// The SSE stream of all of a caller's tasks: a snapshot of their unfinished tasks, then every
/// event of any of their tasks as it happens. Events carry no <c>id:</c> (a per-task number cannot
/// position a stream of many tasks); for an exact replay use a task's own stream.
/// </summary>
public sealed class OwnerEventStream(string ownerId, TaskStore store, TaskEventBus bus, ProgressOptions options) : IResult
{
    private const int SnapshotLimit = 100;

    public async Task ExecuteAsync(HttpContext context)
    {
        var response = context.Response;
        var cancellationToken = context.RequestAborted;
        TaskEventStream.StartStream(context);
        using var subscription = bus.SubscribeOwner(ownerId);
        try
        {
            await TaskEventStream.WriteAsync(response, $"retry: {(int)options.SseRetry.TotalMilliseconds}\n\n", cancellationToken);
            var active = new List<TaskEventData>();
            foreach (var state in new[] { TaskState.Running, TaskState.Pending, TaskState.Scheduled })
            {
                var page = await store.ListAsync(new TaskScope(ownerId), state, null, 0, SnapshotLimit, cancellationToken);
                active.AddRange(page.Items.Select(TaskEventStream.Snapshot));
            }

            await TaskEventStream.WriteEventWithoutIdAsync(response, "snapshot", active, cancellationToken);
            while (true)
            {
                using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                wait.CancelAfter(options.SseKeepAlive);
                try
                {
                    if (!await subscription.Reader.WaitToReadAsync(wait.Token))
                    {
                        return;
                    }
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    await TaskEventStream.WriteAsync(response, ": keep-alive\n\n", cancellationToken);
                    continue;
                }

                while (subscription.Reader.TryRead(out var taskEvent))
                {
                    await TaskEventStream.WriteEventWithoutIdAsync(response, TaskEventStream.EventName(taskEvent), TaskEventStream.ToData(taskEvent), cancellationToken);
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The client went away.
        }
    }
}
