using Npgsql;
using TaskDashboard.Jobs;

namespace TaskDashboard.Tests.Database;

/// <summary>A process that runs workers gets a pool big enough for them (a running export holds a connection).</summary>
public sealed class ConnectionPoolTests
{
    private const string Base = "Host=127.0.0.1;Username=postgres";

    [Theory]
    [InlineData(true, 100, 220)]
    [InlineData(true, 4, 100)]
    [InlineData(false, 100, 100)]
    public void Pool_GrowsWithTheWorkers_WhenTheConnectionStringLeavesItOpen(bool runServer, int workers, int expected)
    {
        var connectionString = JobsExtensions.WithPoolForWorkers(Base, new JobsOptions { RunServer = runServer, WorkerCount = workers });

        Assert.Equal(expected, new NpgsqlConnectionStringBuilder(connectionString).MaxPoolSize);
    }

    [Theory]
    [InlineData("Maximum Pool Size=50")]
    [InlineData("MaxPoolSize=50")]
    public void Pool_KeepsTheSizeTheConnectionStringSets(string setting)
    {
        var connectionString = JobsExtensions.WithPoolForWorkers($"{Base};{setting}", new JobsOptions { WorkerCount = 100 });

        Assert.Equal(50, new NpgsqlConnectionStringBuilder(connectionString).MaxPoolSize);
    }
}
