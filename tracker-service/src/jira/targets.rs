//! Where the tracker may send requests: an integration's base URL is a place
//! the tracker's own credentials travel to, so a loopback or link-local target
//! (the host itself, a cloud metadata service at 169.254.169.254) is refused
//! unless `--jira-allow-loopback` says this is a test set-up. Private networks
//! (10/8, 172.16/12, 192.168/16, fd00::/8) stay allowed: Jira Data Center
//! often lives there.
//!
//! Checked twice: when an integration is registered or changed (a literal
//! address, or a `localhost` name), and when a request is sent (the resolver
//! drops addresses of refused kinds, so a name that resolves to one fails).

use std::net::{IpAddr, SocketAddr};

use crate::domain::BaseUrl;

/// Which targets are allowed.
#[derive(Debug, Clone, Copy, Default)]
pub struct TargetPolicy {
    /// Allow loopback and link-local targets (tests, local simulators).
    pub allow_loopback: bool,
}

/// Whether an address is one the policy refuses by default.
fn refused_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| refused_address(IpAddr::V4(v4)))
        }
    }
}

impl TargetPolicy {
    /// Checks a base URL's host.
    ///
    /// # Errors
    /// Why the target is refused.
    pub fn check(&self, url: &BaseUrl) -> Result<(), String> {
        if self.allow_loopback {
            return Ok(());
        }
        let host = url.host().to_ascii_lowercase();
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        if literal.is_some_and(refused_address)
            || host == "localhost"
            || host.ends_with(".localhost")
        {
            return Err(format!(
                "{host} is a loopback or link-local address; the tracker does not send credentials there (start it with --jira-allow-loopback for a local test set-up)"
            ));
        }
        Ok(())
    }

    /// A DNS resolver for the Jira client that applies the policy to resolved
    /// addresses.
    pub fn resolver(self) -> PolicyResolver {
        PolicyResolver { policy: self }
    }
}

/// Resolves names with the system resolver and drops refused addresses.
#[derive(Debug, Clone, Copy)]
pub struct PolicyResolver {
    policy: TargetPolicy,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| policy.allow_loopback || !refused_address(addr.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(format!(
                    "{host} resolves only to loopback or link-local addresses, which the tracker does not send requests to"
                )
                .into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_link_local_targets_are_refused_private_ones_are_not() {
        let strict = TargetPolicy::default();
        let cases = [
            ("https://acme.atlassian.net", true),
            ("http://10.1.2.3:8080", true),
            ("http://192.168.1.10", true),
            ("http://172.16.0.5", true),
            ("http://[fd00::5]", true),
            ("http://127.0.0.1:8080", false),
            ("http://169.254.169.254", false),
            ("http://0.0.0.0", false),
            ("http://localhost:8080", false),
            ("http://jira.localhost", false),
            ("http://[::1]:8080", false),
            ("http://[fe80::1]", false),
            ("http://[::ffff:127.0.0.1]", false),
        ];
        for (url, allowed) in cases {
            let url = BaseUrl::parse(url).expect("url");
            assert_eq!(strict.check(&url).is_ok(), allowed, "{url}");
            assert!(
                TargetPolicy {
                    allow_loopback: true
                }
                .check(&url)
                .is_ok()
            );
        }
    }
}
