using TaskDashboard.Jobs.Execution;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Jobs.Kinds.Export;

/// <summary>Exports rows to a CSV or NDJSON file, optionally gzipped.</summary>
public sealed class ExportTaskKind(TimeProvider timeProvider) : TaskKind<ExportParameters>
{
    public const string KindName = "export";

    public override string Name => KindName;

    protected override Task<TaskResult> ExecuteAsync(TaskExecutionContext context, ExportParameters parameters, CancellationToken cancellationToken)
    {
        var today = DateOnly.FromDateTime(timeProvider.GetUtcNow().UtcDateTime);
        var to = parameters.To ?? today;
        var from = parameters.From ?? to.AddDays(-364);
        return StandInArtifact.WriteAsync(context, from, to, parameters.Format, parameters.Gzip, parameters.ThrottleMs, cancellationToken);
    }
}
