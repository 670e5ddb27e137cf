using System.Diagnostics;
using System.Globalization;
using Npgsql;

namespace TaskDashboard.Bench;

/// <summary>
/// The floor under any PostgreSQL-NOTIFY pipeline, measured beside it under the same load: a thread
/// of its own commits a one-row insert that notifies (so each commit flushes WAL, as an event's does)
/// every <c>interval</c>, and another thread of its own listening on a second connection records how
/// long each took to arrive. Nothing of the product is involved: its latency over this one is what
/// the product adds (batching, the web node, the client) on the same cores at the same moment.
/// The listener also hears the product's own event notifications (channel <c>task_events</c>): how
/// long its progress events took from the job to PostgreSQL's NOTIFY, before any web node.
/// </summary>
internal sealed class NotifyFloor : IDisposable
{
    private const string Channel = "bench_notify_floor";
    private const string EventChannel = "task_events";
    private readonly List<(long At, double Ms)> latencies = [];
    private readonly List<(long At, string Stage, double Ms)> eventLatencies = [];
    private readonly NpgsqlConnection notifier;
    private readonly NpgsqlConnection listener;
    private readonly TimeSpan interval;
    private readonly Thread notifying;
    private readonly Thread listening;
    private volatile bool measuring;
    private volatile bool stopping;

    private NotifyFloor(NpgsqlConnection notifier, NpgsqlConnection listener, TimeSpan interval)
    {
        this.notifier = notifier;
        this.listener = listener;
        this.interval = interval;
        notifying = new Thread(Notify) { IsBackground = true, Name = "floor notifier" };
        listening = new Thread(Listen) { IsBackground = true, Name = "floor listener" };
    }

    public static NotifyFloor Start(string connectionString, TimeSpan interval)
    {
        var notifier = new NpgsqlConnection(connectionString);
        notifier.Open();
        using (var create = new NpgsqlCommand(
            "CREATE TABLE IF NOT EXISTS public.bench_notify_floor (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, sent bigint NOT NULL)", notifier))
        {
            create.ExecuteNonQuery();
        }

        var listener = new NpgsqlConnection(connectionString);
        listener.Open();
        using (var listen = new NpgsqlCommand($"LISTEN {Channel}; LISTEN {EventChannel}", listener))
        {
            listen.ExecuteNonQuery();
        }

        var floor = new NotifyFloor(notifier, listener, interval);
        listener.Notification += (_, e) =>
        {
            if (e.Channel == Channel)
            {
                floor.Arrived(e.Payload);
            }
            else
            {
                floor.EventArrived(e.Payload);
            }
        };
        floor.listening.Start();
        floor.notifying.Start();
        return floor;
    }

    /// <summary>Starts recording (after the warm-up rounds), dropping what arrived before.</summary>
    public void Measure()
    {
        lock (latencies)
        {
            latencies.Clear();
            eventLatencies.Clear();
        }

        measuring = true;
    }

    /// <summary>
    /// Stops recording; the floor's latencies and the product's progress events' (ms, with the stage
    /// they report), each with when it arrived (<see cref="Stopwatch.GetTimestamp"/>).
    /// </summary>
    public (List<(long At, double Ms)> Floor, List<(long At, string Stage, double Ms)> Events) Take()
    {
        measuring = false;
        lock (latencies)
        {
            return ([.. latencies], [.. eventLatencies]);
        }
    }

    private void EventArrived(string payload)
    {
        var (now, at) = (DateTimeOffset.UtcNow, Stopwatch.GetTimestamp());
        if (!measuring)
        {
            return;
        }

        // A payload over PostgreSQL's limit is cut to the task id and number: not timed.
        using var json = System.Text.Json.JsonDocument.Parse(payload);
        var root = json.RootElement;
        if (root.TryGetProperty("type", out var type) && type.GetString() == "progress")
        {
            var ms = (now - root.GetProperty("createdAt").GetDateTimeOffset()).TotalMilliseconds;
            var stage = root.TryGetProperty("stage", out var s) && s.ValueKind == System.Text.Json.JsonValueKind.String ? s.GetString()! : "–";
            lock (latencies)
            {
                eventLatencies.Add((at, stage, ms));
            }
        }
    }

    private void Arrived(string payload)
    {
        var (sent, at) = (long.Parse(payload, CultureInfo.InvariantCulture), Stopwatch.GetTimestamp());
        if (measuring)
        {
            lock (latencies)
            {
                latencies.Add((at, Stopwatch.GetElapsedTime(sent, at).TotalMilliseconds));
            }
        }
    }

    private void Notify()
    {
        using var command = new NpgsqlCommand(
            $"WITH i AS (INSERT INTO public.bench_notify_floor (sent) VALUES ($1) RETURNING sent) SELECT pg_notify('{Channel}', sent::text) FROM i",
            notifier);
        var sent = new NpgsqlParameter<long>();
        command.Parameters.Add(sent);
        var next = Stopwatch.GetTimestamp();
        while (!stopping)
        {
            sent.TypedValue = Stopwatch.GetTimestamp();
            command.ExecuteNonQuery();
            next += (long)(interval.TotalSeconds * Stopwatch.Frequency);
            var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), next);
            if (wait > TimeSpan.Zero)
            {
                Thread.Sleep(wait);
            }
            else
            {
                next = Stopwatch.GetTimestamp();
            }
        }
    }

    private void Listen()
    {
        while (!stopping)
        {
            listener.Wait(TimeSpan.FromMilliseconds(250));
        }
    }

    public void Dispose()
    {
        stopping = true;
        notifying.Join();
        listening.Join();
        notifier.Dispose();
        listener.Dispose();
    }
}
