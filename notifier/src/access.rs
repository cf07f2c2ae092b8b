//! Who may call which RPC of `notifier.v1` (the roles are described in
//! [`service_runtime::auth`]): operators and services; organizations none,
//! since destinations hold the operator's chat credentials.

use service_runtime::auth::AccessRules;
use service_runtime::auth::RoleKind::{self, Admin, Service};

const OPERATORS: &[RoleKind] = &[Admin, Service];

/// The rule of every RPC of `notifier.v1`.
pub const RULES: &[(&str, &[RoleKind])] = &[
    ("/notifier.v1.NotifierService/SetDestination", OPERATORS),
    ("/notifier.v1.NotifierService/GetDestination", OPERATORS),
    ("/notifier.v1.NotifierService/DeleteDestination", OPERATORS),
    ("/notifier.v1.NotifierService/ListDeliveries", OPERATORS),
    ("/notifier.v1.NotifierService/RetryDelivery", OPERATORS),
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
            .filter(|p| p.starts_with("/notifier.v1."))
            .collect();
        let mut ruled: Vec<String> = super::RULES.iter().map(|(p, _)| (*p).to_owned()).collect();
        served.sort();
        ruled.sort();
        assert_eq!(served, ruled);
    }
}
