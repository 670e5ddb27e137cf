using System.Threading.Channels;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Jobs.Progress;

/// <summary>
/// One subscriber's bounded buffer of events, read as a channel by a single reader. When it is full
/// a new event makes room by dropping one older event that is not final: first one of the new
/// event's own task (which the new one supersedes), else one of a task with a later event buffered,
/// else the oldest. A final event is never dropped: a buffer that holds nothing else grows past its
/// size, by at most one event per task that ended.
/// </summary>
/// <remarks>
/// A channel's own <see cref="BoundedChannelFullMode.DropOldest"/> drops whatever came first, and a
/// subscriber to all of an owner's tasks has one buffer for them all: a busy task's progress pushed
/// out the final events and only stages of quiet ones.
/// </remarks>
internal sealed class SubscriberBuffer(int capacity) : ChannelReader<TaskEvent>
{
    private readonly Lock gate = new();
    private Queue<TaskEvent> events = new();
    private TaskCompletionSource<bool>? waiter;
    private bool completed;

    public override bool CanCount => true;

    public override int Count
    {
        get
        {
            lock (gate)
            {
                return events.Count;
            }
        }
    }

    public bool TryWrite(TaskEvent taskEvent)
    {
        TaskCompletionSource<bool>? wake;
        lock (gate)
        {
            if (completed)
            {
                return false;
            }

            if (events.Count >= capacity)
            {
                MakeRoomFor(taskEvent);
            }

            events.Enqueue(taskEvent);
            (wake, waiter) = (waiter, null);
        }

        wake?.TrySetResult(true);
        return true;
    }

    /// <summary>No more events: the reader gets what is buffered, then the end.</summary>
    public void Complete()
    {
        TaskCompletionSource<bool>? wake;
        lock (gate)
        {
            completed = true;
            (wake, waiter) = (waiter, null);
        }

        wake?.TrySetResult(false);
    }

    public override bool TryRead(out TaskEvent item)
    {
        lock (gate)
        {
            return events.TryDequeue(out item!);
        }
    }

    public override ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken = default)
    {
        Task<bool> wait;
        lock (gate)
        {
            if (events.Count > 0 || completed)
            {
                return new(events.Count > 0);
            }

            waiter ??= new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            wait = waiter.Task;
        }

        return new(cancellationToken.CanBeCanceled ? wait.WaitAsync(cancellationToken) : wait);
    }

    // Called only when full (under the lock); the buffer is small, so a scan is cheap next to the
    // slow client that filled it.
    private void MakeRoomFor(TaskEvent incoming)
    {
        var buffered = events.ToArray();
        var drop = Array.FindIndex(buffered, e => e.TaskId == incoming.TaskId && !IsFinal(e));
        if (drop < 0)
        {
            var lastOfTask = new Dictionary<Guid, int>();
            for (var i = 0; i < buffered.Length; i++)
            {
                lastOfTask[buffered[i].TaskId] = i;
            }

            for (var i = 0; i < buffered.Length && drop < 0; i++)
            {
                if (!IsFinal(buffered[i]) && lastOfTask[buffered[i].TaskId] > i)
                {
                    drop = i;
                }
            }
        }

        if (drop < 0)
        {
            drop = Array.FindIndex(buffered, e => !IsFinal(e));
        }

        if (drop >= 0)
        {
            events = new Queue<TaskEvent>(buffered.Where((_, i) => i != drop));
        }
    }

    private static bool IsFinal(TaskEvent taskEvent) => TaskTransitions.IsFinal(taskEvent.State);
}
