using System.Text;
using System.Text.Json;

namespace TaskDashboard.Tests.Infrastructure;

/// <summary>One Server-Sent Event as a client sees it; <see cref="Comment"/> is set for <c>:</c> lines.</summary>
public sealed record SseMessage(string? Id, string? Event, string? Data, string? Comment)
{
    public JsonElement Json => JsonDocument.Parse(Data!).RootElement;

    public long Seq => long.Parse(Id!, System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>A small reader of <c>text/event-stream</c>, per the HTML spec's parsing rules we rely on.</summary>
public sealed class SseReader(Stream stream) : IDisposable
{
    private readonly StreamReader reader = new(stream, Encoding.UTF8);

    /// <summary>The next event or comment; null at the end of the stream.</summary>
    public async Task<SseMessage?> ReadAsync(CancellationToken cancellationToken)
    {
        string? id = null, name = null, comment = null;
        var data = new StringBuilder();
        var any = false;
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line.Length == 0)
            {
                if (any)
                {
                    return new SseMessage(id, name, data.Length == 0 ? null : data.ToString(), comment);
                }

                continue;
            }

            any = true;
            if (line.StartsWith(':'))
            {
                comment = line[1..].Trim();
                continue;
            }

            var colon = line.IndexOf(':');
            var field = colon < 0 ? line : line[..colon];
            var value = colon < 0 ? "" : line[(colon + 1)..].TrimStart(' ');
            switch (field)
            {
                case "id": id = value; break;
                case "event": name = value; break;
                case "data": data.Append(data.Length == 0 ? "" : "\n").Append(value); break;
            }
        }

        return null;
    }

    /// <summary>Every event (comments skipped) until the server closes the stream.</summary>
    public Task<List<SseMessage>> ReadAllEventsAsync(CancellationToken cancellationToken) =>
        ReadAllEventsAsync(_ => Task.CompletedTask, cancellationToken);

    /// <summary>The same, handing each event to <paramref name="onEvent"/> as it arrives (a test acts at a chosen point).</summary>
    public async Task<List<SseMessage>> ReadAllEventsAsync(Func<SseMessage, Task> onEvent, CancellationToken cancellationToken)
    {
        var events = new List<SseMessage>();
        while (await ReadAsync(cancellationToken) is { } message)
        {
            if (message.Comment is null && message.Event is not null)
            {
                events.Add(message);
                await onEvent(message);
            }
        }

        return events;
    }

    public void Dispose() => reader.Dispose();
}
