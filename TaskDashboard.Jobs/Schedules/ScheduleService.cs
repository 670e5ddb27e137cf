using System.Text.Json;
using Hangfire;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Jobs.Webhooks;

namespace TaskDashboard.Jobs.Schedules;

/// <summary>A schedule as the API and the dashboard ask for it; checked like a submission.</summary>
public sealed record NewSchedule(
    string OwnerId, string? Name, string? Kind, JsonElement? Parameters, string? Priority, int? Timeout, string? CallbackUrl, string? Cron, string? TimeZone);

/// <summary>
/// Creates, pauses, resumes and deletes schedules, keeping Hangfire's recurring job
/// <c>schedule:{id}</c> in step with the row (a paused schedule has no recurring job).
/// </summary>
public sealed class ScheduleService(
    ScheduleStore store,
    TaskSubmitter submitter,
    CallbackUrlPolicy callbacks,
    IRecurringJobManager recurringJobs,
    TimeProvider time)
{
    public static string RecurringJobId(Guid scheduleId) => $"schedule:{scheduleId:N}";

    /// <summary>The new schedule, or errors keyed by field (nothing written then).</summary>
    public async Task<(Schedule? Schedule, IReadOnlyDictionary<string, string[]> Errors)> CreateAsync(NewSchedule request, CancellationToken cancellationToken)
    {
        var (parameters, priority, errors) = submitter.CheckRun(request.Kind, request.Parameters, request.Priority, request.Timeout);
        var name = request.Name?.Trim();
        if (string.IsNullOrEmpty(name) || name.Length > 100)
        {
            errors["name"] = ["Give the schedule a name of 1 to 100 characters."];
        }

        if (!CronSchedule.TryParse(request.Cron, out _))
        {
            errors["cron"] = ["'cron' must be a cron expression of 5 fields (minute hour day month weekday) or 6 (seconds first), e.g. '0 6 * * 1-5'."];
        }

        var zoneId = string.IsNullOrWhiteSpace(request.TimeZone) ? "UTC" : request.TimeZone.Trim();
        if (!CronSchedule.TryFindZone(zoneId, out var zone))
        {
            errors["timeZone"] = [$"Unknown time zone '{request.TimeZone}': use an IANA name such as 'Europe/Berlin' or 'UTC'."];
        }

        if (request.CallbackUrl is { } url && await callbacks.CheckAsync(url, cancellationToken) is { } refused)
        {
            errors["callbackUrl"] = [refused];
        }

        if (errors.Count > 0)
        {
            return (null, errors);
        }

        var schedule = new Schedule(
            Guid.CreateVersion7(), request.OwnerId, name!, request.Kind!.Trim().ToLowerInvariant(), JsonSerializer.Deserialize<JsonElement>(parameters!.NormalizedJson!),
            priority.ToApiName(), request.Timeout, request.CallbackUrl, request.Cron!.Trim(), zoneId, Paused: false,
            RunCount: 0, LastRunAt: null, LastTaskId: null, LastError: null, CreatedAt: time.GetUtcNow());
        await store.InsertAsync(schedule, cancellationToken);
        Register(schedule, zone);
        return (schedule, new Dictionary<string, string[]>());
    }

    public async Task<Schedule?> SetPausedAsync(TaskScope scope, Guid id, bool paused, CancellationToken cancellationToken)
    {
        if (!await store.SetPausedAsync(scope, id, paused, cancellationToken))
        {
            return null;
        }

        var schedule = await store.GetAsync(scope, id, cancellationToken);
        if (paused)
        {
            recurringJobs.RemoveIfExists(RecurringJobId(id));
        }
        else if (schedule is not null && CronSchedule.TryFindZone(schedule.TimeZone, out var zone))
        {
            Register(schedule, zone);
        }

        return schedule;
    }

    public async Task<bool> DeleteAsync(TaskScope scope, Guid id, CancellationToken cancellationToken)
    {
        if (!await store.DeleteAsync(scope, id, cancellationToken))
        {
            return false;
        }

        recurringJobs.RemoveIfExists(RecurringJobId(id));
        return true;
    }

    private void Register(Schedule schedule, TimeZoneInfo zone) =>
        recurringJobs.AddOrUpdate<ScheduleRunJob>(
            RecurringJobId(schedule.Id),
            TaskPriority.High.QueueName(),
            job => job.RunAsync(schedule.Id, CancellationToken.None),
            schedule.Cron,
            new RecurringJobOptions { TimeZone = zone });
}

/// <summary>
/// One firing of a schedule: submits a normal task for the schedule's owner. The idempotency key
/// names the schedule and the second the run started, so the run job repeated within that second
/// makes one task, not two (Hangfire fires each occurrence once; the job is not retried).
/// </summary>
public sealed class ScheduleRunJob(ScheduleStore store, TaskSubmitter submitter, TimeProvider time)
{
    [AutomaticRetry(Attempts = 0, OnAttemptsExceeded = AttemptsExceededAction.Delete)]
    public async Task RunAsync(Guid scheduleId, CancellationToken cancellationToken)
    {
        var schedule = await store.GetForRunAsync(scheduleId, cancellationToken);
        if (schedule is null || schedule.Paused)
        {
            return;
        }

        var now = time.GetUtcNow();
        var firedFor = now.ToUnixTimeSeconds();
        var outcome = await submitter.SubmitAsync(
            new SubmitTask(schedule.OwnerId, schedule.Kind, schedule.Parameters, schedule.Priority, schedule.TimeoutSeconds,
                $"schedule:{scheduleId:N}:{firedFor}", schedule.CallbackUrl),
            cancellationToken);
        var error = outcome.Status switch
        {
            SubmitStatus.Created or SubmitStatus.Replayed => null,
            SubmitStatus.TooManyWaiting => outcome.Reason,
            _ => string.Join(" ", outcome.Errors.SelectMany(e => e.Value)),
        };
        await store.RecordRunAsync(scheduleId, now, outcome.Task?.Id, error, CancellationToken.None);
    }
}
