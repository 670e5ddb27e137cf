namespace TaskDashboard.Jobs.Tasks;

/// <summary>The one lifecycle every task follows; transitions are checked in <see cref="TaskTransitions"/>.</summary>
public enum TaskState
{
    Pending,
    Scheduled,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// <summary>How urgently a task should run; each maps to a Hangfire queue.</summary>
public enum TaskPriority
{
    Critical,
    High,
    Default,
    Low,
}

/// <summary>The task state machine: which state may follow which.</summary>
public static class TaskTransitions
{
    private static readonly Dictionary<TaskState, TaskState[]> Sources = new()
    {
        [TaskState.Pending] = [TaskState.Running], // a running task handed back on worker shutdown
        [TaskState.Scheduled] = [TaskState.Running], // a transient failure waiting for its retry
        [TaskState.Running] = [TaskState.Pending, TaskState.Scheduled],
        [TaskState.Succeeded] = [TaskState.Running],
        [TaskState.Failed] = [TaskState.Pending, TaskState.Scheduled, TaskState.Running],
        [TaskState.Cancelled] = [TaskState.Pending, TaskState.Scheduled, TaskState.Running],
    };

    /// <summary>True for the states a task never leaves.</summary>
    public static bool IsFinal(TaskState state) =>
        state is TaskState.Succeeded or TaskState.Failed or TaskState.Cancelled;

    /// <summary>The states from which <paramref name="target"/> may be entered.</summary>
    public static IReadOnlyList<TaskState> SourcesOf(TaskState target) => Sources[target];

    public static bool CanMove(TaskState from, TaskState to) => Sources[to].Contains(from);

    /// <summary>Throws <see cref="InvalidOperationException"/> for an illegal transition.</summary>
    public static void EnsureCanMove(TaskState from, TaskState to)
    {
        if (!CanMove(from, to))
        {
            throw new InvalidOperationException($"A task cannot move from {from} to {to}.");
        }
    }
}

/// <summary>Priority names as the API spells them and the Hangfire queues they map to.</summary>
public static class TaskPriorities
{
    /// <summary>All priorities, highest first.</summary>
    public static IReadOnlyList<TaskPriority> All { get; } = [TaskPriority.Critical, TaskPriority.High, TaskPriority.Default, TaskPriority.Low];

    public static string ToApiName(this TaskPriority priority) => priority.ToString().ToLowerInvariant();

    public static bool TryParse(string? value, out TaskPriority priority)
    {
        foreach (var candidate in All)
        {
            if (string.Equals(candidate.ToApiName(), value, StringComparison.Ordinal))
            {
                priority = candidate;
                return true;
            }
        }

        priority = TaskPriority.Default;
        return false;
    }

    // Hangfire.PostgreSql fetches queues in alphabetical order of their names, not in the order the
    // server lists them, so the names carry a rank prefix that sorts highest priority first.
    public static string QueueName(this TaskPriority priority) => $"p{(int)priority}_{priority.ToApiName()}";

    /// <summary>Queue names for a Hangfire server, highest priority first.</summary>
    public static string[] QueueNames { get; } = All.Select(QueueName).ToArray();
}
