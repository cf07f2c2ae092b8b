//! The token and role check: whatever token configuration an operator writes
//! and whatever token and path a caller presents, parsing, matching and the
//! access rules never panic; a configured token is recognised with its role,
//! any other is not; a path without a rule is refused to every role.
//!
//! Input layout: NUL-separated token configuration lines, presented token, and
//! method path.

#![no_main]

use libfuzzer_sys::fuzz_target;
use service_runtime::auth::{AuthTokens, Role};
use service_runtime::secret::Secret;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\0');
    let config = parts.next().unwrap_or_default();
    let presented = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or_default();

    let rules = assignment_service::api::access::rules()
        .merged(&tracker_service::api::access::rules());
    if let Ok(tokens) = AuthTokens::parse(config.lines()) {
        if let Some(caller) = tokens.check(&Secret::new(presented.to_owned())) {
            let _ = rules.allows(path, caller.role);
        }
    }
    if rules.paths().all(|known| known != path) {
        for role in [Role::Admin, Role::Service, Role::Organization(7)] {
            assert!(!rules.allows(path, role), "{path:?} has no rule");
        }
    }

    // A token configured in plain text is recognised, with its role; the same
    // token with one more character is not.
    let token = presented.trim();
    if token.starts_with("sha256:") || token.contains(['\n', '\r']) {
        return;
    }
    if let Ok(tokens) = AuthTokens::parse([format!("fuzz:org:7={token}").as_str()]) {
        let caller = tokens.check(&Secret::new(token.to_owned()));
        assert_eq!(caller.map(|c| c.role), Some(Role::Organization(7)));
        assert!(tokens.check(&Secret::new(format!("{token}x"))).is_none());
    }
});
