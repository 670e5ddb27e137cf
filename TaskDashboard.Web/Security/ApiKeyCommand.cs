using Npgsql;
using TaskDashboard.Jobs;

namespace TaskDashboard.Web.Security;

/// <summary>
/// <c>TaskDashboard.Web create-api-key --user NAME [--name LABEL]</c>: prints a new API key for an
/// existing user, for scripts and benchmarks that cannot use the dashboard's sign-in.
/// </summary>
public static class ApiKeyCommand
{
    public static bool IsRequested(string[] args) => args.Length > 0 && args[0] == "create-api-key";

    public static async Task<int> RunAsync(string[] args)
    {
        var configuration = new ConfigurationBuilder().AddEnvironmentVariables().AddCommandLine(args[1..]).Build();
        var userName = configuration["user"];
        var connectionString = configuration.GetConnectionString(JobsExtensions.ConnectionStringName);
        if (string.IsNullOrEmpty(userName) || string.IsNullOrEmpty(connectionString))
        {
            await Console.Error.WriteLineAsync("Usage: create-api-key --user NAME [--name LABEL]  (with ConnectionStrings__Postgres set)");
            return 2;
        }

        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        var accounts = new AccountStore(dataSource, TimeProvider.System);
        var user = await accounts.FindUserByNameAsync(userName, CancellationToken.None);
        if (user is null)
        {
            await Console.Error.WriteLineAsync($"There is no user '{userName}'.");
            return 1;
        }

        var (_, key) = await accounts.CreateApiKeyAsync(user.Id, configuration["name"] ?? "command line", CancellationToken.None);
        Console.WriteLine(key);
        return 0;
    }
}
