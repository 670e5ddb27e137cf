using System.Security.Cryptography;
using System.Text.Json;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Jobs.Execution;

/// <summary>Thrown when the attempt's lease was taken over: the attempt must stop and write nothing.</summary>
public sealed class LeaseLostException(Guid taskId) : Exception($"The lease of task {taskId} was taken over by another worker.");

/// <summary>Thrown by a task kind for a failure that no retry can fix (bad parameters, missing data).</summary>
public sealed class PermanentTaskException(string message) : Exception(message);

/// <summary>
/// What a task kind gets for one attempt: the task, its checkpoint, files of its own, and fenced
/// writes of progress and checkpoints (they throw <see cref="LeaseLostException"/> once another
/// worker holds the task).
/// </summary>
/// <remarks>
/// Progress is coalesced: a stage change is written at once (row and event); otherwise the task
/// row is written at most every <see cref="JobsOptions.ProgressRowInterval"/> and a live event is
/// appended at most every <see cref="JobsOptions.ProgressEventInterval"/>; reports in between are
/// dropped for the next, newer one. A skipped checkpoint is safe: the last stored one still
/// describes a consistent prefix of the work.
/// </remarks>
public sealed class TaskExecutionContext(
    TaskItem task, TaskLease lease, ArtifactStore artifacts, ProgressEventWriter progressEvents, TimeProvider timeProvider, JobsOptions options)
{
    private string? lastStage = task.Stage;
    private long lastRowWrite;
    private long lastEvent;

    public TaskItem Task { get; } = task;

    public TaskLease Lease { get; } = lease;

    /// <summary>The checkpoint the previous attempt saved, if any.</summary>
    public T? GetCheckpoint<T>() where T : class =>
        Task.Checkpoint is { ValueKind: JsonValueKind.Object } checkpoint ? checkpoint.Deserialize<T>(TaskStore.Json) : null;

    /// <summary>Records progress (0-100) with a stage and a human message.</summary>
    public Task ReportProgressAsync(int progress, string stage, string? message, CancellationToken cancellationToken) =>
        WriteProgressAsync(progress, stage, message, checkpointJson: null, cancellationToken);

    /// <summary>Saves a checkpoint with the progress it stands for; a resumed attempt starts from it.</summary>
    public Task SaveCheckpointAsync<T>(T checkpoint, int progress, string stage, string? message, CancellationToken cancellationToken) =>
        WriteProgressAsync(progress, stage, message, JsonSerializer.Serialize(checkpoint, TaskStore.Json), cancellationToken);

    private async Task WriteProgressAsync(int progress, string stage, string? message, string? checkpointJson, CancellationToken cancellationToken)
    {
        var now = timeProvider.GetTimestamp();
        bool held;
        if (stage != lastStage || lastRowWrite == 0 || timeProvider.GetElapsedTime(lastRowWrite, now) >= options.ProgressRowInterval)
        {
            held = await progressEvents.WriteRowAsync(Lease, progress, stage, message, checkpointJson, timeProvider.GetUtcNow(), cancellationToken);
            lastStage = stage;
            lastRowWrite = lastEvent = now;
        }
        else if (timeProvider.GetElapsedTime(lastEvent, now) >= options.ProgressEventInterval)
        {
            held = await progressEvents.AppendAsync(Lease, progress, stage, message, timeProvider.GetUtcNow(), cancellationToken);
            lastEvent = now;
        }
        else
        {
            return;
        }

        if (!held)
        {
            throw new LeaseLostException(Task.Id);
        }
    }

    /// <summary>This attempt's own work file: attempts never write to each other's files.</summary>
    public string WorkFilePath(string extension) => artifacts.AttemptFilePath(Task.Id, Lease.Attempt, extension);

    /// <summary>
    /// Prepares this attempt's work file to continue from <paramref name="checkpointBytes"/>: cuts
    /// this attempt's own file to that length when it holds that many bytes (the attempt runs its kind
    /// again after the database came back), else copies the newest earlier attempt's file and cuts
    /// it. Returns false (and an empty file) when no file holds that many bytes, so the caller must
    /// start over.
    /// </summary>
    public bool ResumeWorkFile(string extension, long checkpointBytes)
    {
        var path = WorkFilePath(extension);
        if (checkpointBytes > 0 && File.Exists(path) && new FileInfo(path).Length >= checkpointBytes)
        {
            using var own = new FileStream(path, FileMode.Open, FileAccess.Write);
            own.SetLength(checkpointBytes);
            return true;
        }

        var previous = artifacts.PreviousAttemptFile(Task.Id, Lease.Attempt, extension);
        if (checkpointBytes > 0 && previous is not null && new FileInfo(previous).Length >= checkpointBytes)
        {
            File.Copy(previous, path, overwrite: true);
            using var file = new FileStream(path, FileMode.Open, FileAccess.Write);
            file.SetLength(checkpointBytes);
            return true;
        }

        File.Create(path).Dispose();
        return false;
    }

    /// <summary>Turns the finished work file into the task's result: hashed, renamed, earlier attempts removed.</summary>
    /// <param name="sha256">The file's hash when the kind computed it while writing; read and hashed here otherwise.</param>
    public async Task<TaskResult> CompleteArtifactAsync(
        string workFile, string fileName, string contentType, long rows, CancellationToken cancellationToken, string? sha256 = null)
    {
        if (sha256 is null)
        {
            await using var stream = File.OpenRead(workFile);
            sha256 = Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, cancellationToken));
        }

        var size = new FileInfo(workFile).Length;

        var final = artifacts.PathFor(Task.Id, fileName);
        File.Move(workFile, final, overwrite: true);
        artifacts.DeleteAttemptFiles(Task.Id);
        return new TaskResult(fileName, contentType, size, rows, sha256, artifacts.RelativePath(final));
    }
}
