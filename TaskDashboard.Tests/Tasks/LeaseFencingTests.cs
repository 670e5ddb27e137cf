using System.Net.Http.Json;
using Hangfire;
using Microsoft.Extensions.DependencyInjection;
using TaskDashboard.Jobs.Database;
using TaskDashboard.Jobs.Execution;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Tests.Infrastructure;

namespace TaskDashboard.Tests.Tasks;

/// <summary>
/// Leases on real PostgreSQL, in the API-only app (its dispatcher, lease reaper and lease checks run; no worker
/// takes the tasks, so the test plays the workers through the store).
/// </summary>
[Collection(AppCollection.Name)]
public sealed class LeaseFencingTests(TaskDashboardApp app) : IClassFixture<TaskDashboardApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task AppendProgressEvents_NumbersEventsOfOneTaskInOrder_AndRefusesOnlyTheLostLease_InOneBatch()
    {
        var store = app.Services.GetRequiredService<TaskStore>();
        var task = await app.CreateClient().SubmitAsync("/api/exports", """{"parameters":{}}""", Ct);
        await app.WaitForJobIdAsync(task.Id, Ct);
        var running = await store.TryClaimAsync(task.Id, "worker-a", TimeSpan.FromMinutes(1), Ct);
        var lease = new TaskLease(task.Id, "worker-a", running!.Attempt);
        await using var listener = await ProgressNotificationListener.StartAsync(app.ConnectionString, task.Id);
        var now = DateTimeOffset.UtcNow;

        var written = store.AppendProgressEvents(
        [
            new ProgressEventWrite(lease, 10, "Exporting", "first", now),
            new ProgressEventWrite(lease with { Owner = "zombie" }, 99, "Exporting", "zombie", now),
            new ProgressEventWrite(lease, 20, "Exporting", "second", now),
        ]);

        Assert.Equal([true, false, true], written);
        var progress = (await store.GetEventsAsync(task.Id, running.LastEventSeq, Ct)).Where(e => e.Type == "progress").ToList();
        Assert.Equal(["first", "second"], progress.Select(e => e.Message));
        Assert.Equal(progress[0].Seq + 1, progress[1].Seq);

        // Announced as logged, in order; nothing for the lost lease's write.
        var heard = await listener.WaitForAsync(2);
        Assert.Equal(progress.Select(e => (e.Seq, e.Message)), heard.Select(n => (n.Seq, n.Message)));
        await Task.Delay(300, Ct);
        Assert.Equal(2, listener.Heard.Count);
    }

    [Fact]
    public async Task WriteProgressRows_WritesEachRowWithItsEvent_AndRefusesOnlyTheLostLease_InOneBatch()
    {
        var store = app.Services.GetRequiredService<TaskStore>();
        TaskLease[] leases = [await app.ClaimNewExportAsync("worker-a", Ct), await app.ClaimNewExportAsync("worker-a", Ct)];

        Assert.True(store.Checkpoint(leases[0], """{"lastId":5}""", 5, "Exporting", "checkpoint"));
        var now = DateTimeOffset.UtcNow;

        var written = store.WriteProgressRows(
        [
            new ProgressRowWrite(leases[0], 40, "Exporting", "first", null, now),
            new ProgressRowWrite(leases[1] with { Owner = "zombie" }, 99, "Exporting", "zombie", """{"lastId":99}""", now),
        ]);

        Assert.Equal([true, false], written);
        var first = (await store.GetForExecutionAsync(leases[0].TaskId, Ct))!;
        Assert.Equal((40, "first"), (first.Progress, first.Message));
        Assert.Equal(5, first.Checkpoint!.Value.GetProperty("lastId").GetInt32());
        var logged = (await store.GetEventsAsync(leases[0].TaskId, 0, Ct))[^1];
        Assert.Equal((first.LastEventSeq, "progress", 40, "first"), (logged.Seq, logged.Type, logged.Progress, logged.Message));
        var second = (await store.GetForExecutionAsync(leases[1].TaskId, Ct))!;
        Assert.Equal((0, (System.Text.Json.JsonElement?)null), (second.Progress, second.Checkpoint));
        Assert.DoesNotContain(await store.GetEventsAsync(leases[1].TaskId, 0, Ct), e => e.Message == "zombie");
    }

    [Fact]
    public async Task Zombie_CannotWriteProgressCheckpointOrResult_AfterItsLeaseWasTakenOver()
    {
        var store = app.Services.GetRequiredService<TaskStore>();
        var task = await app.CreateClient().SubmitAsync("/api/exports", """{"parameters":{}}""", Ct);
        await app.WaitForJobIdAsync(task.Id, Ct);

        var zombie = await store.TryClaimAsync(task.Id, "zombie", TimeSpan.FromMilliseconds(300), Ct);
        Assert.NotNull(zombie);
        Assert.True(store.Checkpoint(new TaskLease(task.Id, "zombie", 1), """{"lastId":10}""", 10, "Exporting", null));
        // The zombie stops renewing; the reaper takes the task back and the dispatcher re-enqueues it.
        await TaskDashboardApp.WaitUntilAsync(async () => (await store.GetForExecutionAsync(task.Id, Ct)) is { State: TaskState.Pending, HangfireJobId: not null }, "the task to change", Ct);
        var successor = await store.TryClaimAsync(task.Id, "successor", TimeSpan.FromMinutes(1), Ct);

        var zombieLease = new TaskLease(task.Id, "zombie", 1);
        Assert.Equal(2, successor!.Attempt);
        Assert.Equal(10, successor.Progress);
        Assert.False(store.Checkpoint(zombieLease, """{"lastId":999}""", 99, "Exporting", null));
        Assert.False(store.ReportProgress(zombieLease, 98, "Exporting", null));
        Assert.Null(await store.SucceedAsync(zombieLease, new TaskResult("x", "text/plain", 1, 1, "00", "x"), Ct));
        Assert.Null(await store.FailAsync(zombieLease, "zombie error", Ct));
        Assert.Null(await store.ScheduleRetryAsync(zombieLease, "zombie error", TimeSpan.Zero, Ct));
        Assert.Null(await store.CompleteCancellationAsync(zombieLease, Ct));
        Assert.Equal([(false, false, false)], await store.CheckLeasesAsync([(zombieLease, true)], TimeSpan.FromMinutes(1), Ct));
        var after = (await store.GetForExecutionAsync(task.Id, Ct))!;
        Assert.Equal(TaskState.Running, after.State);
        Assert.Equal("successor", after.LeaseOwner);
        Assert.Equal(10, after.Progress);
        Assert.Equal(10, after.Checkpoint!.Value.GetProperty("lastId").GetInt32());
        Assert.Equal("worker lost", Assert.Single(after.Errors).Message);
    }

    [Fact]
    public async Task ExpiredLease_EndsFailedWithWorkerLost_WhenNoAttemptIsLeft()
    {
        var store = app.Services.GetRequiredService<TaskStore>();
        var task = await app.CreateClient().SubmitAsync("/api/exports", """{"parameters":{}}""", Ct);

        for (var attempt = 1; attempt <= 3; attempt++)
        {
            await TaskDashboardApp.WaitUntilAsync(async () => (await store.GetForExecutionAsync(task.Id, Ct)) is { State: TaskState.Pending, HangfireJobId: not null }, "the task to change", Ct);
            Assert.NotNull(await store.TryClaimAsync(task.Id, $"doomed-{attempt}", TimeSpan.FromMilliseconds(200), Ct));
        }

        await TaskDashboardApp.WaitUntilAsync(async () => (await store.GetForExecutionAsync(task.Id, Ct))!.IsFinal, "the task to change", Ct);
        var failed = (await store.GetForExecutionAsync(task.Id, Ct))!;

        Assert.Equal(TaskState.Failed, failed.State);
        Assert.Equal("Worker lost on attempt 3 of 3", failed.Message);
        Assert.Equal(3, failed.Errors.Count);
    }

    [Fact]
    public async Task CancelledQueuedTask_NeverStarts_WhenItsJobRunsLater()
    {
        var client = app.CreateClient();
        var store = app.Services.GetRequiredService<TaskStore>();
        var task = await client.SubmitAsync("/api/exports", """{"parameters":{}}""", Ct);
        await app.WaitForJobIdAsync(task.Id, Ct);

        var cancel = await client.PostAsync($"/api/tasks/{task.Id}/cancel", null, Ct);
        await app.Services.GetRequiredService<TaskJob>().RunAsync(task.Id, Ct);

        Assert.Equal(System.Net.HttpStatusCode.OK, cancel.StatusCode);
        var after = (await client.GetFromJsonAsync<Web.Tasks.TaskResponse>($"/api/tasks/{task.Id}", TaskDashboardApp.Json, Ct))!;
        Assert.Equal(TaskState.Cancelled, after.Status);
        Assert.Null(after.StartedAt);
        Assert.Equal(0, after.Attempt);
        var events = await store.GetEventsAsync(task.Id, 0, Ct);
        Assert.DoesNotContain(events, e => e.Type == "started");
    }

    [Fact]
    public async Task QueuedTask_GetsANewJob_WhenItsHangfireJobIsDeleted()
    {
        var store = app.Services.GetRequiredService<TaskStore>();
        var task = await app.CreateClient().SubmitAsync("/api/exports", """{"parameters":{}}""", Ct);
        var first = await app.WaitForJobIdAsync(task.Id, Ct);

        // As an operator would in the Hangfire dashboard.
        app.Services.GetRequiredService<IBackgroundJobClient>().Delete(first);
        await TaskDashboardApp.WaitUntilAsync(async () => (await store.GetForExecutionAsync(task.Id, Ct))!.HangfireJobId is { } id && id != first, "the task to change", Ct);

        var events = await store.GetEventsAsync(task.Id, 0, Ct);
        Assert.Contains(events, e => e.Type == "redispatched");
        Assert.Equal(TaskState.Pending, (await store.GetForExecutionAsync(task.Id, Ct))!.State);
    }

    [Fact]
    public async Task OneQueryChecksEveryAttempt_AndStopsOnlyTheCancelledOne_AndOneWhoseLeaseIsNotHeld()
    {
        var checks = app.Services.GetRequiredService<LeaseChecks>();
        var client = app.CreateClient();
        TaskLease[] leases = [await app.ClaimNewExportAsync("worker-a", Ct), await app.ClaimNewExportAsync("worker-a", Ct), await app.ClaimNewExportAsync("worker-a", Ct)];

        using var cancelled = checks.Start(leases[0]);
        using var untouched = checks.Start(leases[1]);
        using var alsoUntouched = checks.Start(leases[2]);
        await TaskDashboardApp.WaitUntilAsync(() => Task.FromResult(checks.LastCheckedCount == 3), "one check of all three attempts", Ct);

        (await client.PostAsync($"/api/tasks/{leases[0].TaskId}/cancel", null, Ct)).EnsureSuccessStatusCode();
        Assert.Equal(new LeaseChecks.LeaseState(Held: true, CancelRequested: true), await cancelled.Stopped.WaitAsync(TimeSpan.FromSeconds(10), Ct));

        // An attempt whose lease another worker holds (here: an attempt number that is not the task's).
        using var zombie = checks.Start(leases[2] with { Attempt = leases[2].Attempt + 1 });
        Assert.Equal(new LeaseChecks.LeaseState(Held: false, CancelRequested: false), await zombie.Stopped.WaitAsync(TimeSpan.FromSeconds(10), Ct));

        // The stopped ones are no longer checked; the two others run on.
        await TaskDashboardApp.WaitUntilAsync(() => Task.FromResult(checks.LastCheckedCount == 2), "a check of the two others alone", Ct);
        Assert.False(untouched.Stopped.IsCompleted);
        Assert.False(alsoUntouched.Stopped.IsCompleted);
    }

    [Fact]
    public async Task CheckLeases_RenewsOnlyTheLeasesItIsAskedTo_AndSkipsARowAnotherTransactionHoldsLocked()
    {
        var store = app.Services.GetRequiredService<TaskStore>();
        TaskLease[] leases = [await app.ClaimNewExportAsync("worker-a", Ct), await app.ClaimNewExportAsync("worker-a", Ct), await app.ClaimNewExportAsync("worker-a", Ct)];
        async Task<DateTimeOffset> ExpiresAsync(TaskLease lease) => (await store.GetForExecutionAsync(lease.TaskId, Ct))!.LeaseExpiresAt!.Value;
        var before = new[] { await ExpiresAsync(leases[0]), await ExpiresAsync(leases[1]), await ExpiresAsync(leases[2]) };

        // The third task's row is locked by another transaction (as a progress batch writing it would).
        await using var other = await app.Database.OpenConnectionAsync(Ct);
        await using var transaction = await other.BeginTransactionAsync(Ct);
        await RowLock.WaitAsync(other, transaction, "dashboard.tasks", "id", leases[2].TaskId, Ct);

        var states = await store.CheckLeasesAsync([(leases[0], true), (leases[1], false), (leases[2], true)], TimeSpan.FromHours(1), Ct);

        // Renewed, checked only, and skipped without waiting: all three still held.
        Assert.Equal([(true, false, true), (true, false, false), (true, false, false)], states);
        await transaction.RollbackAsync(Ct);
        Assert.True(await ExpiresAsync(leases[0]) > before[0].AddMinutes(30));
        Assert.Equal(before[1], await ExpiresAsync(leases[1]));
        Assert.Equal(before[2], await ExpiresAsync(leases[2]));
    }
}
