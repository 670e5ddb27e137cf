using System.Diagnostics.Metrics;

namespace TaskDashboard.Tests.Infrastructure;

/// <summary>
/// Records the measurements of the named instruments of one app's meters (its own meter factory,
/// not other hosts' in the same test process), with each measurement's first tag value.
/// </summary>
public sealed class InstrumentRecorder : IDisposable
{
    private readonly MeterListener listener = new();
    private readonly List<(string Instrument, double Value, object? Tag)> values = [];

    public InstrumentRecorder(IMeterFactory meters, params string[] instruments)
    {
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Scope == meters && instruments.Contains(instrument.Name))
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Add(instrument, value, tags));
        listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Add(instrument, value, tags));
        listener.Start();
    }

    /// <summary>The instrument's measurements so far, in order.</summary>
    public List<(double Value, object? Tag)> Values(string instrument)
    {
        lock (values)
        {
            return [.. values.Where(v => v.Instrument == instrument).Select(v => (v.Value, v.Tag))];
        }
    }

    /// <summary>The sum of the instrument's measurements so far (a counter's count).</summary>
    public long Sum(string instrument) => (long)Values(instrument).Sum(v => v.Value);

    public void Dispose() => listener.Dispose();

    private void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var tag = tags.Length > 0 ? tags[0].Value : null;
        lock (values)
        {
            values.Add((instrument.Name, value, tag));
        }
    }
}
