using Microsoft.Extensions.Options;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Jobs.Execution;

/// <summary>Where task artifacts live: one folder per task under <see cref="JobsOptions.ArtifactsPath"/>.</summary>
public sealed class ArtifactStore(IOptions<JobsOptions> options)
{
    public string Root { get; } = Path.GetFullPath(options.Value.ArtifactsPath);

    public string DirectoryFor(Guid taskId) => Path.Combine(Root, taskId.ToString("N"));

    /// <summary>A path for a new artifact of the task; creates its folder.</summary>
    public string PathFor(Guid taskId, string fileName)
    {
        var directory = Directory.CreateDirectory(DirectoryFor(taskId)).FullName;
        return Path.Combine(directory, Path.GetFileName(fileName));
    }

    public string RelativePath(string fullPath) => Path.GetRelativePath(Root, fullPath);

    /// <summary>The full path of a result, or null when it would leave the artifact root or is gone.</summary>
    public string? Resolve(TaskResult result)
    {
        var full = Path.GetFullPath(Path.Combine(Root, result.RelativePath));
        var inside = full.StartsWith(Root + Path.DirectorySeparatorChar, StringComparison.Ordinal);
        return inside && File.Exists(full) ? full : null;
    }

    /// <summary>Removes everything the task wrote (partial artifacts of a cancelled or failed attempt).</summary>
    public void Delete(Guid taskId)
    {
        var directory = DirectoryFor(taskId);
        if (Directory.Exists(directory))
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
