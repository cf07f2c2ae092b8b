//! Service-to-service authentication: bearer tokens, each with a name for logs.
//!
//! Tokens are compared through their SHA-256 digests in constant time, so neither
//! a token's content nor its length shows in the response time.

use std::fmt;

use sha2::{Digest as _, Sha256};

use crate::secret::Secret;

/// Why a token configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TokenConfigError(String);

/// The tokens a server accepts.
#[derive(Clone, Default)]
pub struct AuthTokens {
    tokens: Vec<(String, [u8; 32])>,
}

impl fmt::Debug for AuthTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.tokens.iter().map(|(n, _)| n.as_str()).collect();
        write!(f, "AuthTokens({names:?})")
    }
}

impl AuthTokens {
    /// Reads `NAME=TOKEN` entries (from flags, an environment variable or a
    /// file's lines; blank lines and `#` comments are skipped).
    ///
    /// # Errors
    /// When an entry has no name or an empty or short token, or a name repeats.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, TokenConfigError> {
        let mut tokens: Vec<(String, [u8; 32])> = Vec::new();
        for entry in entries {
            let entry = entry.trim();
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            let (name, token) = entry.split_once('=').ok_or_else(|| {
                TokenConfigError("an auth token must be given as NAME=TOKEN".into())
            })?;
            let (name, token) = (name.trim(), token.trim());
            if name.is_empty() {
                return Err(TokenConfigError(
                    "an auth token needs a name (NAME=TOKEN)".into(),
                ));
            }
            if token.len() < 16 {
                return Err(TokenConfigError(format!(
                    "auth token {name:?} is shorter than 16 characters"
                )));
            }
            if tokens.iter().any(|(n, _)| n == name) {
                return Err(TokenConfigError(format!(
                    "auth token {name:?} is given twice"
                )));
            }
            tokens.push((name.to_owned(), Sha256::digest(token.as_bytes()).into()));
        }
        Ok(Self { tokens })
    }

    /// Whether any token is configured (no tokens: authentication is off).
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The name of the token `presented` matches, if any. Every configured token
    /// is compared, in constant time.
    pub fn check(&self, presented: &Secret<String>) -> Option<&str> {
        let digest: [u8; 32] = Sha256::digest(presented.expose().as_bytes()).into();
        let mut found = None;
        for (name, expected) in &self.tokens {
            let diff = expected
                .iter()
                .zip(digest.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 {
                found = Some(name.as_str());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_named_and_checked() {
        let tokens = AuthTokens::parse([
            "tracker=0123456789abcdef-tracker",
            "# comment",
            "",
            "bot=0123456789abcdef-bot",
        ])
        .expect("valid");
        assert!(tokens.enabled());
        assert_eq!(
            tokens.check(&Secret::new("0123456789abcdef-bot".into())),
            Some("bot")
        );
        assert_eq!(
            tokens.check(&Secret::new("0123456789abcdef-bo".into())),
            None
        );
        assert_eq!(tokens.check(&Secret::new(String::new())), None);
        assert!(!format!("{tokens:?}").contains("0123456789"));
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in [
            "no-equals",
            "=0123456789abcdef",
            "a=short",
            "a=0123456789abcdef,a",
        ] {
            let entries: Vec<&str> = bad.split(',').collect();
            let entries = if bad.ends_with(",a") {
                vec!["a=0123456789abcdef", "a=0123456789abcdef"]
            } else {
                entries
            };
            assert!(AuthTokens::parse(entries).is_err(), "{bad:?} accepted");
        }
        assert!(!AuthTokens::parse([]).expect("empty is fine").enabled());
    }
}
