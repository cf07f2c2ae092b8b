//! Scoped credentials: bearer tokens, each with a name (for logs) and a role
//! that decides what its holder may do.
//!
//! - **admin**: everything (operators, set-up tools);
//! - **service**: what another service of the pair needs (the tracker: sync,
//!   link and move; notification subscribers: the stream) and nothing else;
//! - **organization** `<id>`: only that organization's data and actions; a
//!   resource of another organization is NOT_FOUND to it, as if it did not
//!   exist.
//!
//! Each RPC lists the roles that may call it ([`AccessRules`], checked by the
//! gate before the handler runs); handlers then narrow an organization's calls
//! to its own resources. With no token configured authentication is off and
//! every call acts as admin (a local set-up).
//!
//! Tokens are given as `NAME:ROLE=TOKEN` (`ROLE` is `admin`, `service` or
//! `org:<id>`); in a tokens file the token may be stored hashed, as
//! `NAME:ROLE=sha256:<64 hex digits>`. They are compared through their SHA-256
//! digests in constant time, so neither a token's content nor its length shows
//! in the response time.

use std::collections::HashMap;
use std::fmt;

use sha2::{Digest as _, Sha256};

use crate::secret::Secret;

/// Why a token configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TokenConfigError(String);

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything.
    Admin,
    /// What the other service of the pair needs.
    Service,
    /// One organization's data and actions only.
    Organization(i64),
}

/// A role without its organization: what an access rule names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoleKind {
    /// [`Role::Admin`].
    Admin,
    /// [`Role::Service`].
    Service,
    /// [`Role::Organization`], any organization.
    Organization,
}

impl Role {
    /// The role's kind.
    pub fn kind(self) -> RoleKind {
        match self {
            Self::Admin => RoleKind::Admin,
            Self::Service => RoleKind::Service,
            Self::Organization(_) => RoleKind::Organization,
        }
    }

    /// The organization the caller is confined to, if any.
    pub fn organization(self) -> Option<i64> {
        match self {
            Self::Organization(id) => Some(id),
            Self::Admin | Self::Service => None,
        }
    }

    fn parse(raw: &str) -> Result<Self, TokenConfigError> {
        match raw {
            "admin" => Ok(Self::Admin),
            "service" => Ok(Self::Service),
            other => match other.strip_prefix("org:").map(str::parse::<i64>) {
                Some(Ok(id)) if id > 0 => Ok(Self::Organization(id)),
                _ => Err(TokenConfigError(format!(
                    "unknown role {other:?}: use admin, service or org:<organization id>"
                ))),
            },
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Admin => f.write_str("admin"),
            Self::Service => f.write_str("service"),
            Self::Organization(id) => write!(f, "org:{id}"),
        }
    }
}

/// Who is calling: the token's name and its role. The gate puts it in the
/// request's extensions; a call without one (authentication off) acts as
/// admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name, for logs.
    pub name: String,
    /// What the caller may do.
    pub role: Role,
}

impl Caller {
    /// The caller of a request: the one the gate recorded, else admin.
    pub fn of<T>(request: &tonic::Request<T>) -> Role {
        request
            .extensions()
            .get::<Self>()
            .map_or(Role::Admin, |caller| caller.role)
    }
}

/// One configured token.
#[derive(Clone)]
struct Token {
    name: String,
    role: Role,
    digest: [u8; 32],
}

/// The tokens a server accepts.
#[derive(Clone, Default)]
pub struct AuthTokens {
    tokens: Vec<Token>,
}

impl fmt::Debug for AuthTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .tokens
            .iter()
            .map(|t| format!("{}:{}", t.name, t.role))
            .collect();
        write!(f, "AuthTokens({names:?})")
    }
}

impl AuthTokens {
    /// Reads `NAME:ROLE=TOKEN` entries (from flags, an environment variable or
    /// a file's lines; blank lines and `#` comments are skipped). A token may be
    /// given as `sha256:<hex digest>`, so a tokens file need not hold it.
    ///
    /// # Errors
    /// When an entry has no name or role, an unknown role, an empty or short
    /// token, a malformed digest, or a name repeats.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, TokenConfigError> {
        let mut tokens: Vec<Token> = Vec::new();
        for entry in entries {
            let entry = entry.trim();
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            let (label, token) = entry.split_once('=').ok_or_else(|| {
                TokenConfigError("an auth token must be given as NAME:ROLE=TOKEN".into())
            })?;
            let (name, role) = label.trim().split_once(':').ok_or_else(|| {
                TokenConfigError(format!(
                    "auth token {:?} needs a role: NAME:admin=…, NAME:service=… or NAME:org:<id>=…",
                    label.trim()
                ))
            })?;
            let (name, token) = (name.trim(), token.trim());
            if name.is_empty() {
                return Err(TokenConfigError(
                    "an auth token needs a name (NAME:ROLE=TOKEN)".into(),
                ));
            }
            let role = Role::parse(role.trim())?;
            let digest = match token.strip_prefix("sha256:") {
                Some(hex_digest) => {
                    let bytes = decode_hex(hex_digest).ok_or_else(|| {
                        TokenConfigError(format!(
                            "auth token {name:?}: sha256: must be followed by 64 hex digits"
                        ))
                    })?;
                    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                        TokenConfigError(format!(
                            "auth token {name:?}: sha256: must be followed by 64 hex digits"
                        ))
                    })?
                }
                None => {
                    if token.len() < 16 {
                        return Err(TokenConfigError(format!(
                            "auth token {name:?} is shorter than 16 characters"
                        )));
                    }
                    Sha256::digest(token.as_bytes()).into()
                }
            };
            if tokens.iter().any(|t| t.name == name) {
                return Err(TokenConfigError(format!(
                    "auth token {name:?} is given twice"
                )));
            }
            tokens.push(Token {
                name: name.to_owned(),
                role,
                digest,
            });
        }
        Ok(Self { tokens })
    }

    /// Whether any token is configured (no tokens: authentication is off).
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The caller whose token `presented` is, if any. Every configured token
    /// is compared, in constant time.
    pub fn check(&self, presented: &Secret<String>) -> Option<Caller> {
        let digest: [u8; 32] = Sha256::digest(presented.expose().as_bytes()).into();
        let mut found = None;
        for token in &self.tokens {
            let diff = token
                .digest
                .iter()
                .zip(digest.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 {
                found = Some(Caller {
                    name: token.name.clone(),
                    role: token.role,
                });
            }
        }
        found
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Which roles may call which RPC: every RPC a server serves has a rule, and a
/// call of a path without one is refused (deny by default).
#[derive(Debug, Clone, Default)]
pub struct AccessRules {
    rules: HashMap<String, Vec<RoleKind>>,
}

impl AccessRules {
    /// Rules from `(path, roles)` pairs, paths as gRPC calls them
    /// (`/assignment.v1.GroupService/GetGroup`).
    pub fn new(rules: &[(&str, &[RoleKind])]) -> Self {
        Self {
            rules: rules
                .iter()
                .map(|(path, roles)| ((*path).to_owned(), roles.to_vec()))
                .collect(),
        }
    }

    /// Adds `other`'s rules (a process serving several services).
    #[must_use]
    pub fn merged(mut self, other: &Self) -> Self {
        self.rules
            .extend(other.rules.iter().map(|(k, v)| (k.clone(), v.clone())));
        self
    }

    /// Whether `role` may call `path`.
    pub fn allows(&self, path: &str, role: Role) -> bool {
        self.rules
            .get(path)
            .is_some_and(|roles| roles.contains(&role.kind()))
    }

    /// The paths that have a rule.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.rules.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_named_scoped_and_checked() {
        let hashed = format!(
            "ui:org:7=sha256:{}",
            Sha256::digest(b"0123456789abcdef-ui")
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let tokens = AuthTokens::parse([
            "tracker:service=0123456789abcdef-tracker",
            "# comment",
            "",
            "ops:admin=0123456789abcdef-ops",
            hashed.as_str(),
        ])
        .expect("valid");
        assert!(tokens.enabled());
        let caller = |t: &str| {
            tokens
                .check(&Secret::new(t.into()))
                .map(|c| (c.name, c.role))
        };
        assert_eq!(
            caller("0123456789abcdef-tracker"),
            Some(("tracker".into(), Role::Service))
        );
        assert_eq!(
            caller("0123456789abcdef-ops"),
            Some(("ops".into(), Role::Admin))
        );
        assert_eq!(
            caller("0123456789abcdef-ui"),
            Some(("ui".into(), Role::Organization(7)))
        );
        assert_eq!(caller("0123456789abcdef-op"), None);
        assert_eq!(caller(""), None);
        assert!(!format!("{tokens:?}").contains("0123456789"));
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in [
            &["no-equals"][..],
            &["no-role=0123456789abcdef"],
            &[":admin=0123456789abcdef"],
            &["a:admin=short"],
            &["a:root=0123456789abcdef"],
            &["a:org:0=0123456789abcdef"],
            &["a:org:x=0123456789abcdef"],
            &["a:admin=sha256:abc"],
            &["a:admin=0123456789abcdef", "a:service=0123456789abcdef"],
        ] {
            assert!(
                AuthTokens::parse(bad.iter().copied()).is_err(),
                "{bad:?} accepted"
            );
        }
        assert!(!AuthTokens::parse([]).expect("empty is fine").enabled());
    }

    #[test]
    fn rules_deny_by_default() {
        let rules = AccessRules::new(&[
            ("/p.S/Admin", &[RoleKind::Admin]),
            ("/p.S/Tenant", &[RoleKind::Admin, RoleKind::Organization]),
        ]);
        assert!(rules.allows("/p.S/Admin", Role::Admin));
        assert!(!rules.allows("/p.S/Admin", Role::Service));
        assert!(rules.allows("/p.S/Tenant", Role::Organization(3)));
        assert!(!rules.allows("/p.S/Tenant", Role::Service));
        assert!(!rules.allows("/p.S/Unknown", Role::Admin));
    }
}
