using YamlDotNet.RepresentationModel;

namespace TaskDashboard.Tests.Deployment;

/// <summary>No Docker engine runs here, so the compose file is checked by reading it.</summary>
public sealed class ComposeFileTests
{
    private static YamlMappingNode Services()
    {
        var path = Path.Combine(RepositoryRoot(), "docker-compose.yml");
        var yaml = new YamlStream();
        using var reader = new StreamReader(path);
        yaml.Load(reader);
        return (YamlMappingNode)((YamlMappingNode)yaml.Documents[0].RootNode)["services"];
    }

    [Fact]
    public void Compose_DefinesPostgresAndWeb_WithWebWaitingForHealthyPostgres()
    {
        var services = Services();

        var postgres = (YamlMappingNode)services["postgres"];
        var web = (YamlMappingNode)services["web"];

        Assert.StartsWith("postgres:15", postgres["image"].ToString());
        Assert.Contains("healthcheck", postgres.Children.Keys.Select(k => k.ToString()));
        var dependsOn = (YamlMappingNode)web["depends_on"];
        Assert.Equal("service_healthy", ((YamlMappingNode)dependsOn["postgres"])["condition"].ToString());
    }

    [Fact]
    public void Compose_GivesWebTheConnectionStringAndASharedArtifactVolume()
    {
        var web = (YamlMappingNode)Services()["web"];

        var environment = (YamlMappingNode)web["environment"];
        var connection = environment["ConnectionStrings__Postgres"].ToString();
        var artifacts = environment["Jobs__ArtifactsPath"].ToString();
        var volumes = ((YamlSequenceNode)web["volumes"]).Select(v => v.ToString()).ToList();

        Assert.Contains("Host=postgres", connection);
        Assert.Contains(volumes, v => v == $"artifacts:{artifacts}");
        Assert.True(File.Exists(Path.Combine(RepositoryRoot(), ((YamlMappingNode)web["build"])["dockerfile"].ToString())));
    }

    [Fact]
    public void Compose_RunsWorkerOnlyNodes_OnTheSameDatabaseAndArtifacts_WithoutPorts()
    {
        var services = Services();
        var web = (YamlMappingNode)services["web"];
        var worker = (YamlMappingNode)services["worker"];

        var command = ((YamlSequenceNode)worker["command"]).Select(c => c.ToString()).ToList();
        var workerEnvironment = (YamlMappingNode)worker["environment"];
        var webEnvironment = (YamlMappingNode)web["environment"];

        Assert.Equal(["--role", "worker"], command);
        Assert.Equal(webEnvironment["ConnectionStrings__Postgres"].ToString(), workerEnvironment["ConnectionStrings__Postgres"].ToString());
        Assert.Equal(((YamlSequenceNode)web["volumes"]).Select(v => v.ToString()), ((YamlSequenceNode)worker["volumes"]).Select(v => v.ToString()));
        Assert.DoesNotContain("ports", worker.Children.Keys.Select(k => k.ToString()));
    }

    [Fact]
    public void Compose_PublishesWebOnLoopbackOnly_WithARangeForScaleOut()
    {
        var web = (YamlMappingNode)Services()["web"];

        var ports = ((YamlSequenceNode)web["ports"]).Select(p => p.ToString()).ToList();

        Assert.All(ports, p => Assert.StartsWith("127.0.0.1:", p));
        Assert.Contains(ports, p => p.Contains('-'));
    }

    [Fact]
    public void Compose_LetsTheOperatorChooseTheFirstAdminsPassword()
    {
        var environment = (YamlMappingNode)((YamlMappingNode)Services()["web"])["environment"];

        Assert.Equal("${ADMIN_PASSWORD:-}", environment["Security__AdminPassword"].ToString());
    }

    [Fact]
    public void Compose_GivesWebAndWorkersTheSameWebhookSecretAndKindLimits()
    {
        var services = Services();
        var web = (YamlMappingNode)((YamlMappingNode)services["web"])["environment"];
        var worker = (YamlMappingNode)((YamlMappingNode)services["worker"])["environment"];

        foreach (var key in new[] { "Webhooks__Secret", "Webhooks__PublicBaseUrl", "Jobs__ConcurrencyLimits__export" })
        {
            Assert.Equal(web[key].ToString(), worker[key].ToString());
        }
    }

    internal static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "TaskDashboard.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("Repository root not found.");
    }
}
