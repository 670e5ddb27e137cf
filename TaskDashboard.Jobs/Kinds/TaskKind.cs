using System.ComponentModel.DataAnnotations;
using System.Text.Json;
using System.Text.Json.Serialization;
using TaskDashboard.Jobs.Execution;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Jobs.Kinds;

/// <summary>
/// A kind of task the engine can run. Register one with
/// <see cref="JobsExtensions.AddTaskKind{TKind}(Microsoft.Extensions.DependencyInjection.IServiceCollection)"/>;
/// the API, the forms and the worker all find it through <see cref="TaskKindRegistry"/>.
/// </summary>
public interface ITaskKind
{
    /// <summary>The name clients use in <c>kind</c> (lowercase).</summary>
    string Name { get; }

    /// <summary>How long one attempt may run when the request sets no <c>timeout</c>.</summary>
    TimeSpan DefaultTimeout { get; }

    /// <summary>Checks and normalises raw parameters: missing fields get their defaults, unknown ones are refused.</summary>
    ParameterCheck CheckParameters(JsonElement? parameters);

    /// <summary>Does the work of one attempt and returns the stored artifact.</summary>
    Task<TaskResult> ExecuteAsync(TaskExecutionContext context, CancellationToken cancellationToken);
}

/// <summary>The outcome of checking parameters: normalised JSON, or errors keyed by field path.</summary>
public sealed record ParameterCheck(string? NormalizedJson, IReadOnlyDictionary<string, string[]> Errors)
{
    public bool IsValid => Errors.Count == 0;
}

/// <summary>
/// Base for kinds whose parameters are a record validated with DataAnnotations (and
/// <see cref="IValidatableObject"/> for rules across fields).
/// </summary>
public abstract class TaskKind<TParameters> : ITaskKind where TParameters : class, new()
{
    private static readonly JsonSerializerOptions StrictJson = new(JsonSerializerDefaults.Web)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        AllowTrailingCommas = false,
    };

    public abstract string Name { get; }

    public abstract TimeSpan DefaultTimeout { get; }

    public ParameterCheck CheckParameters(JsonElement? parameters)
    {
        TParameters? value;
        try
        {
            value = parameters is null or { ValueKind: JsonValueKind.Null }
                ? new TParameters()
                : parameters.Value.ValueKind == JsonValueKind.Object
                    ? parameters.Value.Deserialize<TParameters>(StrictJson)
                    : null;
        }
        catch (JsonException exception)
        {
            var field = JsonFieldPath.From(exception.Path, prefix: "parameters");
            var message = exception.Message.Contains("could not be mapped", StringComparison.Ordinal)
                ? $"'{field}' is not a parameter of kind '{Name}'."
                : $"'{field}' has an invalid value.";
            return Invalid(field, message);
        }

        if (value is null)
        {
            return Invalid("parameters", "'parameters' must be a JSON object.");
        }

        var errors = Validate(value);
        return errors.Count > 0
            ? new ParameterCheck(null, errors)
            : new ParameterCheck(JsonSerializer.Serialize(value, TaskStore.Json), errors);
    }

    /// <summary>
    /// The kind's rules on typed parameters, with errors keyed as the API reports them
    /// (<c>parameters.from</c>): the dashboard's forms check with this before they submit.
    /// </summary>
    public static IReadOnlyDictionary<string, string[]> Validate(TParameters value)
    {
        var results = new List<ValidationResult>();
        Validator.TryValidateObject(value, new ValidationContext(value), results, validateAllProperties: true);
        return results
            .SelectMany(r => (r.MemberNames.Any() ? r.MemberNames : [""]).Select(m => (Field: JsonFieldPath.Join("parameters", m), Message: r.ErrorMessage ?? "Invalid value.")))
            .GroupBy(e => e.Field)
            .ToDictionary(g => g.Key, g => g.Select(e => e.Message).ToArray());
    }

    /// <summary>Typed parameters as the JSON a submission carries.</summary>
    public static JsonElement ToJson(TParameters value) => JsonSerializer.SerializeToElement(value, TaskStore.Json);

    public Task<TaskResult> ExecuteAsync(TaskExecutionContext context, CancellationToken cancellationToken) =>
        ExecuteAsync(context, context.Task.Parameters.Deserialize<TParameters>(TaskStore.Json)!, cancellationToken);

    protected abstract Task<TaskResult> ExecuteAsync(TaskExecutionContext context, TParameters parameters, CancellationToken cancellationToken);

    private static ParameterCheck Invalid(string field, string message) =>
        new(null, new Dictionary<string, string[]> { [field] = [message] });
}

/// <summary>Turns System.Text.Json paths and member names into the dotted camelCase paths the API reports.</summary>
public static class JsonFieldPath
{
    public static string From(string? jsonPath, string? prefix = null)
    {
        var path = (jsonPath ?? "$").TrimStart('$').TrimStart('.');
        return Join(prefix, path);
    }

    public static string Join(string? prefix, string member)
    {
        var camel = string.IsNullOrEmpty(member) ? member : char.ToLowerInvariant(member[0]) + member[1..];
        return string.IsNullOrEmpty(prefix) ? (string.IsNullOrEmpty(camel) ? "$" : camel)
            : string.IsNullOrEmpty(camel) ? prefix : $"{prefix}.{camel}";
    }
}

/// <summary>The registered task kinds, by name.</summary>
public sealed class TaskKindRegistry(IEnumerable<ITaskKind> kinds)
{
    private readonly Dictionary<string, ITaskKind> byName = kinds.ToDictionary(k => k.Name, StringComparer.Ordinal);

    public IReadOnlyCollection<string> Names => byName.Keys;

    public bool TryGet(string? name, out ITaskKind kind)
    {
        kind = null!;
        return name is not null && byName.TryGetValue(name, out kind!);
    }
}
