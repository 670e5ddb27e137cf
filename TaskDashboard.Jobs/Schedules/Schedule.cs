using System.Text.Json;
using Cronos;

namespace TaskDashboard.Jobs.Schedules;

/// <summary>A recurring submission: what to run (kind, parameters, …) and when (cron in a time zone).</summary>
public sealed record Schedule(
    Guid Id,
    string OwnerId,
    string Name,
    string Kind,
    JsonElement Parameters,
    string Priority,
    int? TimeoutSeconds,
    string? CallbackUrl,
    string Cron,
    string TimeZone,
    bool Paused,
    int RunCount,
    DateTimeOffset? LastRunAt,
    Guid? LastTaskId,
    string? LastError,
    DateTimeOffset CreatedAt)
{
    /// <summary>When it fires next (null when paused).</summary>
    public DateTimeOffset? NextRunAt(DateTimeOffset now) =>
        Paused || !CronSchedule.TryParse(Cron, out var expression) || !CronSchedule.TryFindZone(TimeZone, out var zone)
            ? null
            : expression.GetNextOccurrence(now, zone);
}

/// <summary>Cron expressions as Hangfire reads them: five fields, or six with seconds first.</summary>
public static class CronSchedule
{
    public static bool TryParse(string? cron, out CronExpression expression)
    {
        expression = null!;
        if (string.IsNullOrWhiteSpace(cron) || cron.Length > 200)
        {
            return false;
        }

        var fields = cron.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length;
        if (fields is not (5 or 6) || !CronExpression.TryParse(cron, fields == 6 ? CronFormat.IncludeSeconds : CronFormat.Standard, out var parsed) || parsed is null)
        {
            return false;
        }

        expression = parsed;
        return true;
    }

    /// <summary>An IANA (or Windows) time zone id.</summary>
    public static bool TryFindZone(string? id, out TimeZoneInfo zone)
    {
        zone = TimeZoneInfo.Utc;
        if (string.IsNullOrWhiteSpace(id) || id.Length > 100)
        {
            return false;
        }

        try
        {
            zone = TimeZoneInfo.FindSystemTimeZoneById(id);
            return true;
        }
        catch (Exception exception) when (exception is TimeZoneNotFoundException or InvalidTimeZoneException)
        {
            return false;
        }
    }
}
