using System.Text.Json.Serialization;
using TaskDashboard.Jobs;
using TaskDashboard.Jobs.Database;
using TaskDashboard.Web.Components;
using TaskDashboard.Web.Operations;
using TaskDashboard.Web.Progress;
using TaskDashboard.Web.Schedules;
using TaskDashboard.Web.Security;
using TaskDashboard.Web.Tasks;
using TaskDashboard.Web.Webhooks;

// A worker-only process runs jobs and serves no HTTP; create-api-key prints a key and exits
if (WorkerRole.IsRequested(args))
{
    await WorkerRole.RunAsync(args);
    return;
}

if (ApiKeyCommand.IsRequested(args))
{
    Environment.ExitCode = await ApiKeyCommand.RunAsync(args);
    return;
}

var builder = WebApplication.CreateBuilder(args);

// Configure the engine: PostgreSQL, migrations, task kinds, dispatcher, Hangfire
builder.AddJobs();

// Configure HTTP: problem details for every error (bad requests stay 4xx in every environment; a
// database that cannot be reached, while it restarts say, is a 503 to try again), enums as strings
builder.Services.AddProblemDetails(o => o.CustomizeProblemDetails = context =>
{
    if (context.HttpContext.Response.StatusCode == StatusCodes.Status503ServiceUnavailable)
    {
        context.HttpContext.Response.Headers.RetryAfter = "1";
        context.ProblemDetails.Detail ??= "The database cannot be reached right now; try again in a moment.";
    }
});
builder.Services.Configure<ExceptionHandlerOptions>(o => o.StatusCodeSelector = e => e switch
{
    BadHttpRequestException bad => bad.StatusCode,
    _ when DatabasePools.IsUnreachable(e) => StatusCodes.Status503ServiceUnavailable,
    _ => StatusCodes.Status500InternalServerError,
});
builder.Services.ConfigureHttpJsonOptions(options => options.SerializerOptions.Converters.Add(new JsonStringEnumConverter()));

// Configure features
builder.AddSecurity();
builder.AddTasks();
builder.AddProgress();
builder.AddOperations();
builder.AddDashboard();

var app = builder.Build();

app.UseExceptionHandler();
app.UseStatusCodePages();
app.UseSecurity();

app.MapSecurity();
app.MapTasks();
app.MapProgress();
app.MapWebhooks();
app.MapSchedules();
app.MapOperations();
app.MapDashboard();

await app.RunAsync();

public partial class Program;
