using System.Security.Claims;
using TaskDashboard.Jobs.Tasks;

namespace TaskDashboard.Web.Security;

/// <summary>The signed-in user as claims: id (the tasks' owner id), name and roles.</summary>
public static class CurrentUser
{
    public static ClaimsIdentity Identity(UserAccount user, string authenticationType) => new(
        [
            new Claim(ClaimTypes.NameIdentifier, user.Id),
            new Claim(ClaimTypes.Name, user.UserName),
            .. user.Roles.Select(role => new Claim(ClaimTypes.Role, role)),
        ],
        authenticationType,
        ClaimTypes.Name,
        ClaimTypes.Role);

    /// <summary>The user's id; every endpoint that calls this requires a signed-in user.</summary>
    public static string Id(this ClaimsPrincipal user) =>
        user.FindFirstValue(ClaimTypes.NameIdentifier)
        ?? throw new InvalidOperationException("No signed-in user: the endpoint must require authorization.");

    /// <summary>What the user may see: their own tasks, or everyone's for the ops role.</summary>
    public static TaskScope TaskScope(this ClaimsPrincipal user) => new(user.Id(), user.IsInRole(SecurityOptions.OpsRole));

    /// <summary>Only the user's own tasks, whatever the role (streams of "my tasks").</summary>
    public static TaskScope OwnScope(this ClaimsPrincipal user) => new(user.Id());
}
