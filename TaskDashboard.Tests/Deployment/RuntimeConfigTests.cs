using System.Text.Json;

namespace TaskDashboard.Tests.Deployment;

/// <summary>Runtime settings the app ships in its runtimeconfig.json (they travel with every build and image).</summary>
public sealed class RuntimeConfigTests
{
    [Fact]
    public void WebHost_ThreadPoolWorkersDoNotSpin()
    {
        // The web node and the worker are the same program; its runtimeconfig sits beside its assembly.
        var assembly = typeof(TaskDashboard.Web.Progress.ProgressHub).Assembly.Location;
        var path = Path.ChangeExtension(assembly, ".runtimeconfig.json");
        using var config = JsonDocument.Parse(File.ReadAllText(path));

        var properties = config.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties");

        Assert.Equal(0, properties.GetProperty("System.Threading.ThreadPool.UnfairSemaphoreSpinLimit").GetInt32());
    }
}
