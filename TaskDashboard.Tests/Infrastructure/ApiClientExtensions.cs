using System.Net;
using System.Net.Http.Json;
using System.Text;
using TaskDashboard.Web.Tasks;

namespace TaskDashboard.Tests.Infrastructure;

public static class ApiClientExtensions
{
    public static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    /// <summary>Submits a task and returns it, failing the test unless the answer is 202.</summary>
    public static async Task<TaskResponse> SubmitAsync(this HttpClient client, string path, string body, CancellationToken cancellationToken)
    {
        var response = await client.PostAsync(path, Json(body), cancellationToken);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<TaskResponse>(TaskDashboardApp.Json, cancellationToken))!;
    }
}
