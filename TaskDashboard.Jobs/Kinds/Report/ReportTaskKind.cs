using TaskDashboard.Jobs.Execution;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Jobs.Kinds.Report;

/// <summary>Summarises rows into an HTML or CSV report.</summary>
public sealed class ReportTaskKind : TaskKind<ReportParameters>
{
    public const string KindName = "report";

    public override string Name => KindName;

    protected override Task<TaskResult> ExecuteAsync(TaskExecutionContext context, ReportParameters parameters, CancellationToken cancellationToken) =>
        StandInArtifact.WriteAsync(context, parameters.From!.Value, parameters.To!.Value, parameters.Format, gzip: false, throttleMs: 0, cancellationToken);
}
