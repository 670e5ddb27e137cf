using Microsoft.Extensions.Options;
using TaskDashboard.Jobs;
using TaskDashboard.Jobs.Execution;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Tests.Jobs;

public sealed class ArtifactStoreTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("taskdashboard-artifact-store-").FullName;
    private readonly string outside;
    private readonly ArtifactStore store;

    public ArtifactStoreTests()
    {
        store = new ArtifactStore(Options.Create(new JobsOptions { ArtifactsPath = Path.Combine(root, "artifacts") }));
        Directory.CreateDirectory(store.Root);
        outside = Path.Combine(root, "secret.txt");
        File.WriteAllText(outside, "not an artifact");
    }

    [Theory]
    [InlineData("../secret.txt")]
    [InlineData("abc/../../secret.txt")]
    [InlineData("/etc/passwd")]
    [InlineData("..")]
    public void Resolve_RefusesPaths_ThatLeaveTheArtifactRoot(string relativePath)
    {
        var resolved = store.Resolve(Result(relativePath));

        Assert.Null(resolved);
    }

    [Fact]
    public void Resolve_FindsAResult_InsideTheRoot()
    {
        var taskId = Guid.NewGuid();
        var path = store.PathFor(taskId, "../../result.csv");
        File.WriteAllText(path, "a,b\n");

        var resolved = store.Resolve(Result(store.RelativePath(path)));

        Assert.Equal(path, resolved);
        Assert.Equal(store.DirectoryFor(taskId), Path.GetDirectoryName(path));
    }

    public void Dispose() => Directory.Delete(root, recursive: true);

    private static TaskResult Result(string relativePath) => new("r.csv", "text/csv", 1, 1, "00", relativePath);
}
