using System.ComponentModel.DataAnnotations;

namespace TaskDashboard.Web.Tasks;

public sealed class TasksOptions
{
    public const string SectionName = "Tasks";

    /// <summary>Largest accepted submission body; larger ones get 413.</summary>
    [Range(1024, 16 * 1024 * 1024)]
    public int MaxRequestBodyBytes { get; set; } = 64 * 1024;

    /// <summary>The <c>Retry-After</c> hint (seconds) sent with 202 answers: how soon to poll.</summary>
    [Range(1, 3600)]
    public int RetryAfterSeconds { get; set; } = 2;

    [Range(1, 1000)]
    public int DefaultPageSize { get; set; } = 20;

    /// <summary>Submissions one user may make per second, on average (token bucket); more get 429.</summary>
    [Range(1, 1_000_000)]
    public int SubmissionsPerSecond { get; set; } = 20;

    /// <summary>Submissions one user may make at once before the per-second rate applies.</summary>
    [Range(1, 1_000_000)]
    public int SubmissionBurst { get; set; } = 100;

    /// <summary>The <c>Retry-After</c> (seconds) sent with 429 when too many tasks are waiting.</summary>
    [Range(1, 3600)]
    public int BackpressureRetryAfterSeconds { get; set; } = 10;

    [Range(1, 1000)]
    public int MaxPageSize { get; set; } = 100;
}
