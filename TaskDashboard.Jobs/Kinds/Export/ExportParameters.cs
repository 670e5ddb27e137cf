using System.ComponentModel.DataAnnotations;
using TaskDashboard.Jobs.DemoData;

namespace TaskDashboard.Jobs.Kinds.Export;

/// <summary>What an export writes: the demo orders of a date range, optionally of one region.</summary>
public sealed class ExportParameters : IValidatableObject
{
    /// <summary>First day included (inclusive); the first day of the data when omitted.</summary>
    public DateOnly? From { get; set; }

    /// <summary>Last day included (inclusive); the last day of the data when omitted.</summary>
    public DateOnly? To { get; set; }

    /// <summary>Only this region (central, east, north, south, west), when given.</summary>
    public string? Region { get; set; }

    /// <summary><c>csv</c> or <c>ndjson</c>.</summary>
    [AllowedValues("csv", "ndjson", ErrorMessage = "The format must be 'csv' or 'ndjson'.")]
    public string Format { get; set; } = "csv";

    /// <summary>Compress the file with gzip.</summary>
    public bool Gzip { get; set; }

    /// <summary>A pause after each batch, for demos and tests that want to watch a run.</summary>
    [Range(0, 60_000, ErrorMessage = "throttleMs must be between 0 and 60000.")]
    public int ThrottleMs { get; set; }

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (From > To)
        {
            yield return new ValidationResult("'from' must not be after 'to'.", [nameof(From)]);
        }

        if (Region is not null && !DemoOrders.Regions.Contains(Region))
        {
            yield return new ValidationResult($"The region must be one of {string.Join(", ", DemoOrders.Regions)}.", [nameof(Region)]);
        }
    }
}
