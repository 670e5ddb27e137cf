using System.Globalization;

namespace TaskDashboard.Bench;

/// <summary>The machine's CPU time from /proc/stat: how busy all cores were between two readings.</summary>
internal readonly record struct CpuTimes(long Busy, long Total)
{
    public static CpuTimes Read()
    {
        // "cpu  user nice system idle iowait irq softirq steal ..." (clock ticks, all cores together).
        var fields = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1)
            .Select(f => long.Parse(f, CultureInfo.InvariantCulture)).ToArray();
        var idle = fields[3] + fields[4];
        var total = fields.Take(8).Sum();
        return new CpuTimes(total - idle, total);
    }

    /// <summary>Share (0–1) of all cores' time spent busy since <paramref name="earlier"/>.</summary>
    public double BusyShareSince(CpuTimes earlier) =>
        Total == earlier.Total ? 0 : (double)(Busy - earlier.Busy) / (Total - earlier.Total);

    /// <summary>
    /// Whether a kdamond (the kernel's DAMON, here running a proactive-reclaim "pageout" scheme) is on:
    /// on this machine kind it made bench/live's latencies and their floor's tail up to several times worse (README, Benchmarks).
    /// </summary>
    public static bool KdamondOn()
    {
        const string Kdamonds = "/sys/kernel/mm/damon/admin/kdamonds";
        return Directory.Exists(Kdamonds) && Directory.EnumerateDirectories(Kdamonds)
            .Select(d => Path.Combine(d, "state"))
            .Any(state => File.Exists(state) && File.ReadAllText(state).Trim() == "on");
    }

    /// <summary>CPU seconds (user + system, all threads) a process has used so far, from /proc/[pid]/stat.</summary>
    public static double ProcessSeconds(int pid)
    {
        // Fields after the command name (which is in parentheses and may hold spaces): state is
        // field 3, utime and stime fields 14 and 15, in clock ticks of 1/100 s.
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
    }
}
