using Microsoft.Extensions.Options;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Jobs.Execution;

/// <summary>
/// Where task artifacts live: one folder per task under <see cref="JobsOptions.ArtifactsPath"/>, with
/// one work file per attempt (<c>attempt-N.ext.part</c>) until the result is complete.
/// </summary>
public sealed class ArtifactStore(IOptions<JobsOptions> options)
{
    private const string PartSuffix = ".part";

    public string Root { get; } = Path.GetFullPath(options.Value.ArtifactsPath);

    public string DirectoryFor(Guid taskId) => Path.Combine(Root, taskId.ToString("N"));

    /// <summary>A path for a file of the task; creates its folder.</summary>
    public string PathFor(Guid taskId, string fileName)
    {
        var directory = Directory.CreateDirectory(DirectoryFor(taskId)).FullName;
        return Path.Combine(directory, Path.GetFileName(fileName));
    }

    public string AttemptFilePath(Guid taskId, int attempt, string extension) =>
        PathFor(taskId, $"attempt-{attempt}.{extension}{PartSuffix}");

    /// <summary>The work file of the newest attempt before <paramref name="attempt"/>, if one exists.</summary>
    public string? PreviousAttemptFile(Guid taskId, int attempt, string extension)
    {
        for (var earlier = attempt - 1; earlier >= 1; earlier--)
        {
            var path = Path.Combine(DirectoryFor(taskId), $"attempt-{earlier}.{extension}{PartSuffix}");
            if (File.Exists(path))
            {
                return path;
            }
        }

        return null;
    }

    public void DeleteAttemptFiles(Guid taskId, int? attempt = null)
    {
        var directory = DirectoryFor(taskId);
        if (!Directory.Exists(directory))
        {
            return;
        }

        var pattern = attempt is null ? $"attempt-*{PartSuffix}" : $"attempt-{attempt}.*{PartSuffix}";
        foreach (var file in Directory.EnumerateFiles(directory, pattern))
        {
            File.Delete(file);
        }
    }

    public string RelativePath(string fullPath) => Path.GetRelativePath(Root, fullPath);

    /// <summary>The full path of a result, or null when it would leave the artifact root or is gone.</summary>
    public string? Resolve(TaskResult result)
    {
        var full = Path.GetFullPath(Path.Combine(Root, result.RelativePath));
        var inside = full.StartsWith(Root + Path.DirectorySeparatorChar, StringComparison.Ordinal);
        return inside && File.Exists(full) ? full : null;
    }

    /// <summary>Removes everything the task wrote (partial artifacts of a cancelled or failed task).</summary>
    public void Delete(Guid taskId)
    {
        var directory = DirectoryFor(taskId);
        if (Directory.Exists(directory))
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
