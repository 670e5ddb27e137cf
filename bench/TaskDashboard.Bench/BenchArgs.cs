namespace TaskDashboard.Bench;

/// <summary>The benchmarks' <c>--name value</c> arguments, and the rule that they only target loopback.</summary>
internal static class BenchArgs
{
    public static Dictionary<string, string> Parse(string[] args)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            values[args[i].TrimStart('-')] = args[i + 1];
        }

        return values;
    }

    public static Uri LoopbackUrl(string url)
    {
        var uri = new Uri(url.TrimEnd('/'));
        if (uri.Host is not ("127.0.0.1" or "localhost" or "[::1]" or "::1"))
        {
            throw new ArgumentException("The benchmarks only target loopback addresses.");
        }

        return uri;
    }
}
