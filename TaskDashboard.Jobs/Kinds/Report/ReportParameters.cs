using System.ComponentModel.DataAnnotations;

namespace TaskDashboard.Jobs.Kinds.Report;

/// <summary>What a report summarises: the demo orders of a date range, grouped one way.</summary>
public sealed class ReportParameters : IValidatableObject
{
    /// <summary>First day included (inclusive).</summary>
    [Required(ErrorMessage = "'from' is required.")]
    public DateOnly? From { get; set; }

    /// <summary>Last day included (inclusive).</summary>
    [Required(ErrorMessage = "'to' is required.")]
    public DateOnly? To { get; set; }

    /// <summary><c>region</c>, <c>product</c> or <c>month</c>.</summary>
    [AllowedValues("region", "product", "month", ErrorMessage = "groupBy must be 'region', 'product' or 'month'.")]
    public string GroupBy { get; set; } = "region";

    /// <summary><c>html</c> or <c>csv</c>.</summary>
    [AllowedValues("html", "csv", ErrorMessage = "The format must be 'html' or 'csv'.")]
    public string Format { get; set; } = "html";

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (From > To)
        {
            yield return new ValidationResult("'from' must not be after 'to'.", [nameof(From)]);
        }
    }
}
