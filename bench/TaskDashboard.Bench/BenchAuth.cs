namespace TaskDashboard.Bench;

/// <summary>The API key the bench scripts create for the app's admin (create-api-key) and pass in TASKDASHBOARD_API_KEY.</summary>
internal static class BenchAuth
{
    public static string ApiKey => Environment.GetEnvironmentVariable("TASKDASHBOARD_API_KEY")
        ?? throw new InvalidOperationException("TASKDASHBOARD_API_KEY is not set: run the benchmark through its script under bench/.");

    public static HttpClient Authorize(this HttpClient client)
    {
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", ApiKey);
        return client;
    }
}
