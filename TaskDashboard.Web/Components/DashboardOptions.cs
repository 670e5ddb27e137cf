using System.ComponentModel.DataAnnotations;

namespace TaskDashboard.Web.Components;

public sealed class DashboardOptions
{
    public const string SectionName = "Dashboard";

    /// <summary>Least time between two renders of a live page, however many events arrive (100 ms: at most 10 a second).</summary>
    [Range(typeof(TimeSpan), "00:00:00.020", "00:00:10")]
    public TimeSpan RenderInterval { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Rows per page of the task table.</summary>
    [Range(5, 200)]
    public int PageSize { get; set; } = 15;

    /// <summary>How often a page whose database could not be reached reads again, until it can.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:01:00")]
    public TimeSpan DatabaseRetryInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Events shown on a task's detail page (the newest ones).</summary>
    [Range(10, 10_000)]
    public int TimelineLength { get; set; } = 200;
}
