//! Who may call which RPC of `tracker.v1` (the roles are described in
//! [`service_runtime::auth`]). The gate applies these rules before a handler
//! runs; handlers then confine an organization to what it installed and owns.

use service_runtime::auth::AccessRules;
use service_runtime::auth::RoleKind::{self, Admin, Organization};

/// Operators only: integrations hold credentials, and webhook deliveries span
/// every organization that installed an integration.
const ADMIN: &[RoleKind] = &[Admin];
/// Operators, and an organization for the integrations it installed.
const TENANT: &[RoleKind] = &[Admin, Organization];

/// The rule of every RPC of `tracker.v1`.
pub const RULES: &[(&str, &[RoleKind])] = &[
    ("/tracker.v1.TrackerService/CreateIntegration", ADMIN),
    ("/tracker.v1.TrackerService/UpdateIntegration", ADMIN),
    ("/tracker.v1.TrackerService/GetIntegration", TENANT),
    ("/tracker.v1.TrackerService/ListIntegrations", ADMIN),
    ("/tracker.v1.TrackerService/GetCreateIssueConfig", TENANT),
    ("/tracker.v1.TrackerService/SearchJira", TENANT),
    ("/tracker.v1.TrackerService/CreateIssue", TENANT),
    ("/tracker.v1.TrackerService/GetIssueCreation", TENANT),
    ("/tracker.v1.TrackerService/GetLinkIssueConfig", TENANT),
    ("/tracker.v1.TrackerService/LinkIssue", TENANT),
    ("/tracker.v1.TrackerService/ListWebhookDeliveries", ADMIN),
    ("/tracker.v1.TrackerService/GetWebhookDelivery", ADMIN),
    ("/tracker.v1.TrackerService/RetryWebhookDelivery", ADMIN),
    ("/tracker.v1.TrackerService/GetStatusSyncConfig", TENANT),
    ("/tracker.v1.TrackerService/ListJiraProjectStatuses", TENANT),
    ("/tracker.v1.TrackerService/SetStatusMappings", TENANT),
    ("/tracker.v1.TrackerService/ListOutboundSyncs", ADMIN),
    ("/tracker.v1.TrackerService/GetOutboundSync", ADMIN),
    ("/tracker.v1.TrackerService/RetryOutboundSync", ADMIN),
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
            .filter(|p| p.starts_with("/tracker.v1."))
            .collect();
        let mut ruled: Vec<String> = super::RULES.iter().map(|(p, _)| (*p).to_owned()).collect();
        served.sort();
        ruled.sort();
        assert_eq!(served, ruled);
    }
}
