using System.Text.Json;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Web.Components.Shared;

/// <summary>What a dashboard form hands to its page: a submission in the API's terms.</summary>
public sealed record TaskFormSubmission(string Kind, JsonElement Parameters, string Priority, int? Timeout, DateTimeOffset? RunAt = null);

/// <summary>The fields every kind's form has besides its parameters, checked by the API's rules.</summary>
public sealed class SubmissionSettings
{
    public string Priority { get; set; } = TaskPriority.Default.ToApiName();

    /// <summary>Seconds one attempt may run; the kind's default when empty.</summary>
    public int? Timeout { get; set; }

    /// <summary>Day to start on (UTC); now when empty.</summary>
    public DateTime? StartDate { get; set; }

    /// <summary>Time of day to start at (UTC), with <see cref="StartDate"/>.</summary>
    public TimeSpan? StartTime { get; set; }

    /// <summary>The start time as the API takes it (<c>runAt</c>).</summary>
    public DateTimeOffset? RunAt => StartDate is { } day
        ? new DateTimeOffset(DateTime.SpecifyKind(day.Date + (StartTime ?? TimeSpan.Zero), DateTimeKind.Utc))
        : null;

    public IEnumerable<KeyValuePair<string, string[]>> Validate()
    {
        if (!TaskPriorities.TryParse(Priority, out _))
        {
            yield return new("priority", [$"Unknown priority '{Priority}'."]);
        }

        if (Timeout is < 1 or > TaskSubmitter.MaxTimeoutSeconds)
        {
            yield return new("timeout", [$"'timeout' must be between 1 and {TaskSubmitter.MaxTimeoutSeconds} seconds."]);
        }

        if (StartDate is null && StartTime is not null)
        {
            yield return new("runAt", ["Pick a day to go with the start time."]);
        }
        else if (RunAt is { } runAt && (runAt < DateTimeOffset.UtcNow.AddMinutes(-5) || runAt > DateTimeOffset.UtcNow + TaskSubmitter.MaxScheduleAhead))
        {
            yield return new("runAt", [$"'runAt' must be a time from now to {TaskSubmitter.MaxScheduleAhead.TotalDays:0} days ahead."]);
        }
    }
}

/// <summary>Field errors keyed as the API keys them (<c>parameters.from</c>, <c>priority</c>).</summary>
public sealed class FieldErrors(IEnumerable<KeyValuePair<string, string[]>> errors)
{
    private readonly Dictionary<string, string[]> byField = errors.ToDictionary(StringComparer.OrdinalIgnoreCase);

    public static readonly FieldErrors None = new([]);

    public bool Any => byField.Count > 0;

    public bool Has(string field) => byField.ContainsKey(field);

    public string? Text(string field) => byField.TryGetValue(field, out var messages) ? string.Join(" ", messages) : null;

    /// <summary>Errors that belong to no field on the form (shown above it).</summary>
    public IEnumerable<string> Others(IEnumerable<string> fields) =>
        byField.Where(e => !fields.Contains(e.Key, StringComparer.OrdinalIgnoreCase)).SelectMany(e => e.Value);

    public static DateOnly? ToDate(DateTime? value) => value is { } date ? DateOnly.FromDateTime(date) : null;

    public static DateTime? FromDate(DateOnly? value) => value?.ToDateTime(TimeOnly.MinValue);
}
