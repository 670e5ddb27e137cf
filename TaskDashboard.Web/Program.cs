using System.Text.Json.Serialization;
using TaskDashboard.Jobs;
using TaskDashboard.Web.Operations;
using TaskDashboard.Web.Tasks;

var builder = WebApplication.CreateBuilder(args);

// Configure the engine: PostgreSQL, migrations, task kinds, dispatcher, Hangfire
builder.AddJobs();

// Configure HTTP: problem details for every error, enums as strings
builder.Services.AddProblemDetails();
builder.Services.ConfigureHttpJsonOptions(options => options.SerializerOptions.Converters.Add(new JsonStringEnumConverter()));

// Configure features
builder.AddTasks();
builder.AddOperations();

var app = builder.Build();

app.UseExceptionHandler();
app.UseStatusCodePages();

app.MapTasks();
app.MapOperations();

app.Run();

public partial class Program;
