using System.ComponentModel.DataAnnotations;

namespace TaskDashboard.Jobs.DemoData;

/// <summary>The demo orders that reports and exports read. Bound from <c>DemoData</c>.</summary>
public sealed class DemoDataOptions
{
    public const string SectionName = "DemoData";

    /// <summary>Seed the orders table at start-up when it is empty.</summary>
    public bool Seed { get; set; } = true;

    /// <summary>How many orders to seed; they are spread evenly over 2025.</summary>
    [Range(1, 100_000_000)]
    public int Rows { get; set; } = 1_000_000;
}
