using System.ComponentModel.DataAnnotations;

namespace TaskDashboard.Jobs.Kinds.Export;

/// <summary>Bound from <c>Export</c>.</summary>
public sealed class ExportOptions
{
    public const string SectionName = "Export";

    /// <summary>How long one export attempt may run unless the request sets <c>timeout</c>.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "7.00:00:00")]
    public TimeSpan Timeout { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>Order ids per batch; a checkpoint (with an fsync of the file) follows every batch.</summary>
    [Range(100, 10_000_000)]
    public int BatchRows { get; set; } = 100_000;
}
