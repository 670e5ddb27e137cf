using System.Diagnostics;
using System.Security.Claims;
using Bunit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Npgsql;
using TaskDashboard.Jobs.Progress;
using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Web.Components;
using TaskDashboard.Web.Components.Shared;

namespace TaskDashboard.Tests.Components;

/// <summary>A live page renders at most once per render interval, however many events arrive, and misses none.</summary>
public sealed class LiveRenderingTests : BunitContext
{
    public LiveRenderingTests()
    {
        // Nothing here opens a connection: events come straight from the subscription below.
        var dataSource = NpgsqlDataSource.Create("Host=127.0.0.1;Port=1;Username=nobody");
        var store = new TaskStore(dataSource, TimeProvider.System);
        Services.AddSingleton(dataSource);
        Services.AddSingleton(store);
        Services.AddSingleton(new TaskEventBus(store, Options.Create(new ProgressOptions())));
        Services.AddSingleton(TimeProvider.System);
        Services.AddSingleton(Options.Create(new DashboardOptions { RenderInterval = TimeSpan.FromMilliseconds(100) }));
        var authorization = AddAuthorization();
        authorization.SetAuthorized("someone");
        authorization.SetClaims(new Claim(ClaimTypes.NameIdentifier, "someone"));
    }

    [Fact]
    public async Task ABurstOfEvents_IsAppliedInFull_ButRenderedAtMostTenTimesASecond()
    {
        var feed = new SubscriberBuffer(capacity: 400);
        var cut = Render<LiveProbe>(p => p.Add(c => c.Feed, new TaskEventSubscription(feed, _ => { })));
        var rendersBefore = cut.Instance.Renders;
        var watch = Stopwatch.StartNew();

        for (var i = 1; i <= 400; i++)
        {
            feed.TryWrite(new TaskEvent(Guid.Empty, i, "progress", TaskState.Running, i % 100, null, null, DateTimeOffset.UtcNow));
            if (i % 4 == 0)
            {
                await Task.Delay(5, Xunit.TestContext.Current.CancellationToken);
            }
        }

        cut.WaitForAssertion(() => Assert.Equal(400, cut.Instance.Applied), TimeSpan.FromSeconds(5));
        await Task.Delay(300, Xunit.TestContext.Current.CancellationToken);
        var elapsed = watch.Elapsed;
        var renders = cut.Instance.Renders - rendersBefore;

        Assert.InRange(renders, 2, (int)(elapsed.TotalMilliseconds / 100) + 2);
        Assert.Contains("400", cut.Markup);
    }

    /// <summary>A minimal live page: counts the events it applied and the times it rendered.</summary>
    public sealed class LiveProbe : LiveComponentBase
    {
        [Microsoft.AspNetCore.Components.Parameter]
        public TaskEventSubscription Feed { get; set; } = null!;

        public int Applied { get; private set; }

        public int Renders { get; private set; }

        protected override Task OnLoadAsync() => Task.CompletedTask;

        protected override void OnAfterRender(bool firstRender)
        {
            Renders++;
            if (firstRender)
            {
                Watch(Feed, _ =>
                {
                    Applied++;
                    MarkDirty();
                    return Task.CompletedTask;
                });
            }
        }

        protected override void BuildRenderTree(Microsoft.AspNetCore.Components.Rendering.RenderTreeBuilder builder) =>
            builder.AddContent(0, $"applied {Applied}");
    }
}
