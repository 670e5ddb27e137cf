using System.Net;
using Microsoft.Extensions.Options;
using TaskDashboard.Jobs.Webhooks;
using TaskDashboard.Tests.Infrastructure;

namespace TaskDashboard.Tests.Webhooks;

public sealed class CallbackUrlPolicyTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("127.0.0.1", false, false, false)]
    [InlineData("127.0.0.1", true, false, true)]
    [InlineData("::1", false, false, false)]
    [InlineData("10.0.0.5", false, false, false)]
    [InlineData("10.0.0.5", false, true, true)]
    [InlineData("172.20.1.1", false, false, false)]
    [InlineData("192.168.1.1", false, false, false)]
    [InlineData("169.254.10.10", false, false, false)]
    [InlineData("169.254.169.254", true, true, false)]
    [InlineData("fd00:ec2::254", true, true, false)]
    [InlineData("fe80::1", false, false, false)]
    [InlineData("fc00::1", false, false, false)]
    [InlineData("100.64.0.1", false, false, false)]
    [InlineData("0.0.0.0", false, false, false)]
    [InlineData("224.0.0.1", false, false, false)]
    [InlineData("::ffff:10.0.0.1", false, false, false)]
    [InlineData("93.184.216.34", false, false, true)]
    [InlineData("2606:2800:220:1:248:1893:25c8:1946", false, false, true)]
    public void IsAllowed_FollowsTheRanges_AndTheConfiguration(string address, bool loopback, bool privateNetworks, bool allowed)
    {
        var policy = Policy(loopback, privateNetworks);

        Assert.Equal(allowed, policy.IsAllowed(IPAddress.Parse(address)));
    }

    [Fact]
    public async Task Sender_RefusesToConnect_WhenTheNameResolvesToAnAddressNotAllowedNow()
    {
        // "localhost" stands for a name that resolved to a public address on submit and to an
        // internal one at delivery time (DNS rebinding): the check runs when connecting.
        await using var receiver = new WebhookReceiver();
        using var sender = new WebhookSender(Policy(loopback: false, privateNetworks: false), Monitor(new WebhookOptions()));

        var result = await sender.SendAsync($"http://localhost:{receiver.Port}/hook", "msg_1", 1, "v1,x", "{}", Ct);

        Assert.False(result.Delivered);
        Assert.Contains("may not reach", result.Error);
        Assert.Empty(receiver.Received);
    }

    [Fact]
    public async Task Sender_Delivers_WhenTheAddressIsAllowed()
    {
        await using var receiver = new WebhookReceiver(_ => Task.FromResult(202));
        using var sender = new WebhookSender(Policy(loopback: true, privateNetworks: false), Monitor(new WebhookOptions()));

        var result = await sender.SendAsync(receiver.Url, "msg_1", 1, "v1,x", "{}", Ct);

        Assert.True(result.Delivered, result.Error);
        Assert.Equal("msg_1", Assert.Single(receiver.Received).Id);
    }

    [Fact]
    public async Task Check_RefusesAName_ThatResolvesToLoopback_WhenLoopbackIsNotAllowed()
    {
        var error = await Policy(loopback: false, privateNetworks: false).CheckAsync("http://localhost:8080/hook", Ct);

        Assert.Contains("may not reach", error);
    }

    private static CallbackUrlPolicy Policy(bool loopback, bool privateNetworks) =>
        new(Monitor(new WebhookOptions { AllowLoopback = loopback, AllowPrivateNetworks = privateNetworks }));

    private static IOptionsMonitor<WebhookOptions> Monitor(WebhookOptions options) => new StaticOptionsMonitor<WebhookOptions>(options);
}
