using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Tests.Tasks;

public sealed class TaskTransitionsTests
{
    [Theory]
    [InlineData(TaskState.Pending, TaskState.Running)]
    [InlineData(TaskState.Running, TaskState.Succeeded)]
    [InlineData(TaskState.Running, TaskState.Pending)]
    [InlineData(TaskState.Scheduled, TaskState.Cancelled)]
    [InlineData(TaskState.Running, TaskState.Failed)]
    public void EnsureCanMove_Allows_LegalTransitions(TaskState from, TaskState to) =>
        TaskTransitions.EnsureCanMove(from, to);

    [Theory]
    [InlineData(TaskState.Succeeded, TaskState.Running)]
    [InlineData(TaskState.Cancelled, TaskState.Pending)]
    [InlineData(TaskState.Failed, TaskState.Succeeded)]
    [InlineData(TaskState.Pending, TaskState.Succeeded)]
    public void EnsureCanMove_Throws_WhenTransitionIsIllegal(TaskState from, TaskState to) =>
        Assert.Throws<InvalidOperationException>(() => TaskTransitions.EnsureCanMove(from, to));

    [Fact]
    public void FinalStates_HaveNoWayOut()
    {
        var final = Enum.GetValues<TaskState>().Where(TaskTransitions.IsFinal).ToList();

        Assert.Equal([TaskState.Succeeded, TaskState.Failed, TaskState.Cancelled], final);
        Assert.All(final, from => Assert.All(Enum.GetValues<TaskState>(), to => Assert.False(TaskTransitions.CanMove(from, to))));
    }

    [Fact]
    public void QueueNames_SortAlphabeticallyInPriorityOrder()
    {
        var names = TaskPriorities.QueueNames;

        Assert.Equal(names.Order(StringComparer.Ordinal), names);
        Assert.Equal(["p0_critical", "p1_high", "p2_default", "p3_low"], names);
    }
}
