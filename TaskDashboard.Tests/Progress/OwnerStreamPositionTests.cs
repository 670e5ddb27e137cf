using TaskDashboard.Jobs.Tasks;
using TaskDashboard.Web.Progress;

namespace TaskDashboard.Tests.Progress;

public sealed class OwnerStreamPositionTests
{
    [Fact]
    public void Snapshot_ReadsPostgresText_AndWritesItBackAndCompactly()
    {
        var snapshot = LogSnapshot.FromPostgres("7261344:7261356:7261344,7261347,7261351");

        Assert.Equal(7261344UL, snapshot.Xmin);
        Assert.Equal(7261356UL, snapshot.Xmax);
        Assert.Equal([7261344UL, 7261347UL, 7261351UL], snapshot.InProgress);
        Assert.Equal("7261344:7261356:7261344,7261347,7261351", snapshot.ToPostgres());
        Assert.Equal("7261344:12:0,3,7", snapshot.ToCompact());
        Assert.True(LogSnapshot.TryParseCompact(snapshot.ToCompact(), out var back));
        Assert.Equal(snapshot, back);
    }

    [Theory]
    [InlineData("")]
    [InlineData("5:1")]
    [InlineData("5:1:2:3")]
    [InlineData("a:1:")]
    [InlineData("+5:1:")]
    [InlineData("1:1:")]
    [InlineData("5:2:2")]
    [InlineData("5:3:1,1")]
    [InlineData("5:3:2,1")]
    [InlineData("5:3:1,")]
    [InlineData("9223372036854775807:1:")]
    [InlineData("18446744073709551615:0:")]
    public void Snapshot_RefusesWhatPostgresWouldNot(string compact)
    {
        Assert.False(LogSnapshot.TryParseCompact(compact, out _));
    }

    [Fact]
    public void Snapshot_ShowsTheTransactionsThatHadFinished()
    {
        var snapshot = LogSnapshot.FromPostgres("100:110:103,107");

        Assert.True(snapshot.Shows(99));
        Assert.True(snapshot.Shows(100));
        Assert.False(snapshot.Shows(103));
        Assert.True(snapshot.Shows(104));
        Assert.False(snapshot.Shows(107));
        Assert.False(snapshot.Shows(110));
        Assert.False(snapshot.Shows(5000));
    }

    [Fact]
    public void Position_RoundTripsEveryForm()
    {
        var after = LogSnapshot.FromPostgres("100:105:101");
        var upTo = LogSnapshot.FromPostgres("104:110:");
        var task = Guid.Parse("01a22766-4d07-75ab-b639-3186a98a62d6");
        var other = Guid.Parse("01a22766-4d7b-766c-b452-740406756166");
        var delivered = new Dictionary<Guid, long> { [other] = 4, [task] = 7 };
        var whole = new OwnerStreamPosition(after);
        var sent = new OwnerStreamPosition(after, delivered);
        var inside = new OwnerStreamPosition(after, delivered, upTo, (task, 12));

        Assert.Equal("100:5:1", whole.ToString());
        Assert.Equal("100:5:1_01a227664d0775abb6393186a98a62d6.7_01a227664d7b766cb452740406756166.4", sent.ToString());
        Assert.Equal($"{sent}~104:6:~01a227664d0775abb6393186a98a62d6.12", inside.ToString());
        foreach (var position in new[] { whole, sent, inside })
        {
            Assert.True(OwnerStreamPosition.TryParse(position.ToString(), out var back));
            Assert.Equal(position, back);
        }
    }

    [Theory]
    [InlineData("100:5:1~104:6:")]
    [InlineData("100:5:1~104:6:~01a227664d0775abb6393186a98a62d6")]
    [InlineData("100:5:1~104:6:~01a227664d0775abb6393186a98a62d6.-1")]
    [InlineData("100:5:1~104:6:~01a22766-4d07-75ab-b639-3186a98a62d6.1")]
    [InlineData("100:20:1~104:6:~01a227664d0775abb6393186a98a62d6.1")]
    [InlineData("100:5:1~104:6:~01a227664d0775abb6393186a98a62d6.1~")]
    [InlineData("100:5:1_")]
    [InlineData("100:5:1_01a227664d0775abb6393186a98a62d6")]
    [InlineData("100:5:1_01a227664d0775abb6393186a98a62d6.1_01a227664d0775abb6393186a98a62d6.2")]
    [InlineData("_01a227664d0775abb6393186a98a62d6.1")]
    public void Position_RefusesAnythingElse(string text)
    {
        Assert.False(OwnerStreamPosition.TryParse(text, out _));
    }
}
