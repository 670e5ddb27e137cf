using System.ComponentModel.DataAnnotations;

namespace TaskDashboard.Jobs.Kinds.Report;

/// <summary>Bound from <c>Report</c>.</summary>
public sealed class ReportOptions
{
    public const string SectionName = "Report";

    /// <summary>How long one report attempt may run unless the request sets <c>timeout</c>.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "7.00:00:00")]
    public TimeSpan Timeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>A pause after each month's partition, for demos and tests that want to watch a run.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00")]
    public TimeSpan PartitionDelay { get; set; } = TimeSpan.Zero;
}
