//! Who may call which RPC of `assignment.v1` (the roles are described in
//! [`service_runtime::auth`]). The gate applies these rules before a handler
//! runs; handlers then confine an organization to its own resources (another
//! organization's are NOT_FOUND).

use service_runtime::auth::AccessRules;
use service_runtime::auth::RoleKind::{self, Admin, Organization, Service};

/// Operators only.
const ADMIN: &[RoleKind] = &[Admin];
/// Operators, and an organization for its own resources.
const TENANT: &[RoleKind] = &[Admin, Organization];
/// Operators and the tracker (inbound sync, moves).
const SYNC: &[RoleKind] = &[Admin, Service];
/// Operators, the tracker (which links created issues), and an organization
/// for its own groups.
const LINKING: &[RoleKind] = &[Admin, Service, Organization];

/// The rule of every RPC of `assignment.v1`.
pub const RULES: &[(&str, &[RoleKind])] = &[
    ("/assignment.v1.DirectoryService/CreateOrganization", ADMIN),
    ("/assignment.v1.DirectoryService/GetOrganization", TENANT),
    ("/assignment.v1.DirectoryService/ListOrganizations", TENANT),
    ("/assignment.v1.DirectoryService/CreateProject", TENANT),
    ("/assignment.v1.DirectoryService/GetProject", TENANT),
    ("/assignment.v1.DirectoryService/ListProjects", TENANT),
    ("/assignment.v1.DirectoryService/CreateUser", TENANT),
    ("/assignment.v1.DirectoryService/GetUser", TENANT),
    ("/assignment.v1.DirectoryService/ListUsers", TENANT),
    ("/assignment.v1.DirectoryService/UpdateUser", TENANT),
    ("/assignment.v1.DirectoryService/GrantProjectAccess", TENANT),
    (
        "/assignment.v1.DirectoryService/RevokeProjectAccess",
        TENANT,
    ),
    ("/assignment.v1.DirectoryService/ListProjectMembers", TENANT),
    ("/assignment.v1.DirectoryService/InstallIntegration", TENANT),
    ("/assignment.v1.DirectoryService/SetInstallSecret", ADMIN),
    // The tracker checks that an organization installed an integration before
    // acting for it.
    ("/assignment.v1.DirectoryService/GetInstallation", LINKING),
    ("/assignment.v1.DirectoryService/ListInstallations", TENANT),
    ("/assignment.v1.DirectoryService/UpdateInstallation", TENANT),
    (
        "/assignment.v1.DirectoryService/UninstallIntegration",
        TENANT,
    ),
    ("/assignment.v1.GroupService/CreateGroup", TENANT),
    ("/assignment.v1.GroupService/GetGroup", TENANT),
    ("/assignment.v1.GroupService/ListGroups", TENANT),
    ("/assignment.v1.GroupService/ListActivities", TENANT),
    ("/assignment.v1.GroupService/AssignGroup", TENANT),
    ("/assignment.v1.GroupService/UnassignGroup", TENANT),
    ("/assignment.v1.GroupService/ResolveGroup", TENANT),
    ("/assignment.v1.GroupService/UnresolveGroup", TENANT),
    ("/assignment.v1.GroupService/SubscribeToGroup", TENANT),
    ("/assignment.v1.GroupService/UnsubscribeFromGroup", TENANT),
    ("/assignment.v1.GroupService/ListGroupParticipants", TENANT),
    (
        "/assignment.v1.ExternalIssueService/LinkExternalIssue",
        LINKING,
    ),
    (
        "/assignment.v1.ExternalIssueService/UnlinkExternalIssue",
        LINKING,
    ),
    (
        "/assignment.v1.ExternalIssueService/GetExternalIssue",
        LINKING,
    ),
    (
        "/assignment.v1.ExternalIssueService/ListExternalIssues",
        TENANT,
    ),
    (
        "/assignment.v1.ExternalIssueService/MoveExternalIssue",
        SYNC,
    ),
    (
        "/assignment.v1.ExternalIssueService/DeleteExternalIssue",
        SYNC,
    ),
    (
        "/assignment.v1.ExternalIssueService/SyncAssigneeInbound",
        SYNC,
    ),
    (
        "/assignment.v1.ExternalIssueService/SyncAssigneeInboundBatch",
        SYNC,
    ),
    (
        "/assignment.v1.ExternalIssueService/SyncStatusInbound",
        SYNC,
    ),
    ("/assignment.v1.ExternalIssueService/ResetWatermarks", ADMIN),
    // The tracker reads what Jira must show.
    (
        "/assignment.v1.ExternalIssueService/WatchOutboundSyncs",
        SYNC,
    ),
    // Subscribers are services (chat bots, mailers); an organization may watch
    // its own notifications, without a durable cursor.
    ("/assignment.v1.NotificationService/Subscribe", LINKING),
    (
        "/assignment.v1.NotificationService/AcknowledgeNotifications",
        SYNC,
    ),
    ("/assignment.v1.NotificationService/GetSubscriber", SYNC),
    ("/assignment.v1.NotificationService/ListSubscribers", SYNC),
    ("/assignment.v1.NotificationService/DeleteSubscriber", SYNC),
];

/// The rules, for the gate.
pub fn rules() -> AccessRules {
    AccessRules::new(RULES)
}

#[cfg(test)]
mod tests {
    /// A new RPC without a rule fails here (and would be refused to everyone).
    #[test]
    fn every_rpc_has_a_rule_and_every_rule_an_rpc() {
        let mut served: Vec<String> = proto::method_paths()
            .into_iter()
            .filter(|p| p.starts_with("/assignment.v1."))
            .collect();
        let mut ruled: Vec<String> = super::RULES.iter().map(|(p, _)| (*p).to_owned()).collect();
        served.sort();
        ruled.sort();
        assert_eq!(served, ruled);
    }
}
