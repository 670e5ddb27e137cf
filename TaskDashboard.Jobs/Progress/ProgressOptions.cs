using System.ComponentModel.DataAnnotations;

namespace TaskDashboard.Jobs.Progress;

/// <summary>The live event feed. Bound from <c>Progress</c>.</summary>
public sealed class ProgressOptions
{
    public const string SectionName = "Progress";

    /// <summary>
    /// Events buffered per subscriber. When a slow subscriber's buffer is full, a new event drops an
    /// older one that is not final, preferably of its own task; final events are never dropped.
    /// </summary>
    [Range(4, 100_000)]
    public int SubscriberBuffer { get; set; } = 256;

    /// <summary>
    /// Live events held back for a SignalR connection while its replay of the log is sent; beyond
    /// it they are dropped and read from the log once the replay is sent (nothing is missed).
    /// </summary>
    [Range(1, 100_000)]
    public int ReplayHoldLimit { get; set; } = 256;

    /// <summary>
    /// How long a SignalR connection on <c>/hubs/tasks</c> may leave a message untaken (its client has
    /// stopped reading) before the node closes it; the client reconnects and subscribes again with
    /// the last seq it saw. Only that connection's events wait meanwhile.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00")]
    public TimeSpan HubSendTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long the listener waits for a notification before it pings its connection.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00")]
    public TimeSpan ListenerKeepAlive { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>First delay before the listener reconnects; it doubles up to <see cref="ListenerMaxBackoff"/>.</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:01:00")]
    public TimeSpan ListenerBackoff { get; set; } = TimeSpan.FromMilliseconds(250);

    [Range(typeof(TimeSpan), "00:00:00.100", "00:10:00")]
    public TimeSpan ListenerMaxBackoff { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How many tasks a position (a <c>GET /api/events</c> event id, a hub event's <c>position</c>)
    /// may name before the stream or watch reads its position from the log again. Each task's next
    /// event is sent as it is announced and the tasks sent since the last read are named in the
    /// positions; a read (one query) folds them into one PostgreSQL snapshot. Fewer: shorter
    /// positions, more queries.
    /// </summary>
    [Range(1, 100)]
    public int OwnerStreamIdTasks { get; set; } = 8;

    /// <summary>
    /// How long a hub watch of all of a caller's tasks (<c>SubscribeToMyTasks</c>) goes without an
    /// announcement before it reads the log all the same, for an announcement that was lost (a crash
    /// between a batch's commit and its NOTIFY). <c>GET /api/events</c> does so at each keep-alive.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00")]
    public TimeSpan HubQuietRead { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>How often an SSE stream sends a keep-alive comment.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00")]
    public TimeSpan SseKeepAlive { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>The reconnect delay (<c>retry:</c>) SSE clients are told to use.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:10:00")]
    public TimeSpan SseRetry { get; set; } = TimeSpan.FromSeconds(2);
}
