using System.Threading.Channels;
using System.Threading.Tasks.Sources;
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
/// out the final events and only stages of quiet ones. The one reader's wait is a reusable
/// <see cref="IValueTaskSource{TResult}"/>, as in the channels: a node may hold 20,000 streams, and a
/// task per wait (with <see cref="Task.WaitAsync(CancellationToken)"/> for the keep-alive timeout)
/// added a thread-pool hop and two allocations to every delivery. The reader is woken through the
/// thread pool's global queue, as a channel does: one event wakes every stream of a task, and queued
/// on the broadcaster's own thread the wake-ups waited for other threads to steal them.
/// </remarks>
internal sealed class SubscriberBuffer(int capacity) : ChannelReader<TaskEvent>, IValueTaskSource<bool>, IThreadPoolWorkItem
{
    private readonly Lock gate = new();
    private Queue<TaskEvent> events = new();
    private ManualResetValueTaskSourceCore<bool> waiter;
    private bool waiting;
    private Wake wake;
    private CancellationToken cancelledBy;
    private CancellationTokenRegistration cancellation;
    private bool completed;

    public bool TryWrite(TaskEvent taskEvent)
    {
        bool woken;
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
            woken = WakeReader(Wake.Ready);
        }

        QueueWake(woken);
        return true;
    }

    /// <summary>No more events: the reader gets what is buffered, then the end.</summary>
    public void Complete()
    {
        bool woken;
        lock (gate)
        {
            completed = true;
            woken = WakeReader(Wake.Ended);
        }

        QueueWake(woken);
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
        short version;
        lock (gate)
        {
            if (events.Count > 0 || completed)
            {
                return new(events.Count > 0);
            }

            if (cancellationToken.IsCancellationRequested)
            {
                return ValueTask.FromCanceled<bool>(cancellationToken);
            }

            waiter.Reset();
            waiting = true;
            version = waiter.Version;
        }

        if (cancellationToken.CanBeCanceled)
        {
            // Disposed by GetResult, on the reader's side, once the wait is over.
            cancellation = cancellationToken.UnsafeRegister(
                static (state, token) => ((SubscriberBuffer)state!).CancelWait(token), this);
        }

        return new(this, version);
    }

    bool IValueTaskSource<bool>.GetResult(short token)
    {
        try
        {
            return waiter.GetResult(token);
        }
        finally
        {
            cancellation.Dispose();
            cancellation = default;
        }
    }

    ValueTaskSourceStatus IValueTaskSource<bool>.GetStatus(short token) => waiter.GetStatus(token);

    void IValueTaskSource<bool>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        waiter.OnCompleted(continuation, state, token, flags);

    private void CancelWait(CancellationToken cancellationToken)
    {
        bool woken;
        lock (gate)
        {
            cancelledBy = cancellationToken;
            woken = WakeReader(Wake.Cancelled);
        }

        QueueWake(woken);
    }

    // Under the lock: ends the reader's wait, if it is waiting, with this outcome.
    private bool WakeReader(Wake outcome)
    {
        if (!waiting)
        {
            return false;
        }

        (waiting, wake) = (false, outcome);
        return true;
    }

    private void QueueWake(bool woken)
    {
        if (woken)
        {
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        }
    }

    void IThreadPoolWorkItem.Execute()
    {
        if (wake == Wake.Cancelled)
        {
            waiter.SetException(new OperationCanceledException(cancelledBy));
        }
        else
        {
            waiter.SetResult(wake == Wake.Ready);
        }
    }

    private enum Wake
    {
        Ready,
        Ended,
        Cancelled,
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
