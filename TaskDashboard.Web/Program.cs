using System.Text.Json.Serialization;
using TaskDashboard.Jobs;
using TaskDashboard.Web.Operations;
using TaskDashboard.Web.Progress;
using TaskDashboard.Web.Tasks;

// A worker-only process runs jobs and serves no HTTP
if (WorkerRole.IsRequested(args))
{
    await WorkerRole.RunAsync(args);
    return;
}

var builder = WebApplication.CreateBuilder(args);

// Configure the engine: PostgreSQL, migrations, task kinds, dispatcher, Hangfire
builder.AddJobs();

// Configure HTTP: problem details for every error, enums as strings
builder.Services.AddProblemDetails();
builder.Services.ConfigureHttpJsonOptions(options => options.SerializerOptions.Converters.Add(new JsonStringEnumConverter()));

// Configure features
builder.AddTasks();
builder.AddProgress();
builder.AddOperations();

var app = builder.Build();

app.UseExceptionHandler();
app.UseStatusCodePages();

app.MapTasks();
app.MapProgress();
app.MapOperations();

await app.RunAsync();

public partial class Program;
