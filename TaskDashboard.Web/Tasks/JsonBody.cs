using System.Text.Json;
using System.Text.Json.Serialization;
using TaskDashboard.Jobs.Kinds;

namespace TaskDashboard.Web.Tasks;

/// <summary>
/// Reads a JSON request body with a size cap and turns every way it can be wrong into a problem
/// response that names the field, instead of the framework's generic 400.
/// </summary>
public static class JsonBody
{
    private static readonly JsonSerializerOptions Strict = new(JsonSerializerDefaults.Web)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    public static async Task<(T? Value, IResult? Error)> ReadAsync<T>(HttpRequest request, int maxBytes, CancellationToken cancellationToken)
        where T : class
    {
        if (!request.HasJsonContentType())
        {
            return (null, TypedResults.Problem(
                "Send the body as JSON with 'Content-Type: application/json'.",
                statusCode: StatusCodes.Status415UnsupportedMediaType));
        }

        if (request.ContentLength > maxBytes)
        {
            return (null, TooLarge(maxBytes));
        }

        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, cancellationToken)) > 0)
        {
            if (buffer.Length + read > maxBytes)
            {
                return (null, TooLarge(maxBytes));
            }

            buffer.Write(chunk, 0, read);
        }

        if (buffer.Length == 0)
        {
            return (null, Invalid("$", "A JSON body is required."));
        }

        try
        {
            var value = JsonSerializer.Deserialize<T>(buffer.GetBuffer().AsSpan(0, (int)buffer.Length), Strict);
            return value is null ? (null, Invalid("$", "The body must be a JSON object.")) : (value, null);
        }
        catch (JsonException exception)
        {
            var field = JsonFieldPath.From(exception.Path);
            var message = exception.Message.Contains("could not be mapped", StringComparison.Ordinal)
                ? $"'{field}' is not a known field."
                : exception.LineNumber is { } line
                    ? $"Malformed JSON or a wrong type at '{field}' (line {line + 1}, position {exception.BytePositionInLine + 1})."
                    : $"Malformed JSON or a wrong type at '{field}'.";
            return (null, Invalid(field, message));
        }
    }

    private static IResult Invalid(string field, string message) =>
        TypedResults.ValidationProblem(new Dictionary<string, string[]> { [field] = [message] });

    private static IResult TooLarge(int maxBytes) =>
        TypedResults.Problem($"The body is larger than the {maxBytes:N0} bytes accepted.", statusCode: StatusCodes.Status413PayloadTooLarge);
}
