//! Identifiers both services exchange over gRPC, as types that parse.
//!
//! Each constructor validates, so a value of these types is always well-formed;
//! the parse errors are phrased to be shown to a caller next to the field name.

use std::fmt;

/// Why an identifier was refused; the text is shown to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdError(String);

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The identifier as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Checks the slug rule: lowercase ASCII letters, digits and `-`, 1 to 63
/// characters, starting with a letter, not ending with `-`.
pub fn check_slug(s: &str) -> Result<(), IdError> {
    let err = |why: &str| {
        Err(IdError(format!(
            "{why} (lowercase letters, digits and '-', 1 to 63 characters, starting with a letter)"
        )))
    };
    if s.is_empty() {
        return err("must not be empty");
    }
    if s.len() > 63 {
        return err("is longer than 63 characters");
    }
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        return err("must start with a lowercase letter");
    }
    if s.ends_with('-') {
        return err("must not end with '-'");
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return err(&format!("{s:?} has a character that is not allowed"));
    }
    Ok(())
}

string_id!(
    /// A Jira integration's id, chosen by whoever registers it (a slug). It names
    /// the webhook URL and ties the assignment service's installations to the
    /// tracker's integrations.
    IntegrationId
);

impl IntegrationId {
    /// Parses an integration id.
    ///
    /// # Errors
    /// When `s` is not a slug.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        check_slug(s)?;
        Ok(Self(s.to_owned()))
    }
}

string_id!(
    /// A Jira issue key such as `APP-123`: a project key, `-`, and a number. It
    /// changes when the issue moves to another project.
    IssueKey
);

impl IssueKey {
    /// Parses an issue key. Jira project keys are letters, digits and `_`,
    /// starting with a letter; the number is positive.
    ///
    /// # Errors
    /// When `s` is not of that form.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if s.is_empty() {
            return Err(IdError("must not be empty".into()));
        }
        if s.len() > 255 {
            return Err(IdError("is longer than 255 characters".into()));
        }
        let well_formed = s.rsplit_once('-').is_some_and(|(project, number)| {
            project.starts_with(|c: char| c.is_ascii_alphabetic())
                && project
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !number.is_empty()
                && number.chars().all(|c| c.is_ascii_digit())
                && !number.starts_with('0')
        });
        if well_formed {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError(format!(
                "{s:?} is not a Jira issue key (PROJECT-123)"
            )))
        }
    }

    /// The project part of the key (`APP` for `APP-123`).
    pub fn project_key(&self) -> &str {
        self.0.rsplit_once('-').map_or(&self.0, |(p, _)| p)
    }
}

string_id!(
    /// Jira's numeric issue id (`10001`): stable when the key changes.
    JiraIssueId
);

impl JiraIssueId {
    /// Parses a Jira issue id: 1 to 20 ASCII digits.
    ///
    /// # Errors
    /// When `s` is not of that form.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if !s.is_empty() && s.len() <= 20 && s.chars().all(|c| c.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError(format!("{s:?} is not a Jira issue id (digits)")))
        }
    }
}

string_id!(
    /// An idempotency key (AIP-155): repeating a mutating call with the same
    /// request id returns the first response and changes nothing.
    RequestId
);

impl RequestId {
    /// The longest request id accepted.
    pub const MAX_LEN: usize = 200;

    /// Parses a request id: 1 to 200 printable ASCII characters without spaces
    /// (a UUID is typical).
    ///
    /// # Errors
    /// When `s` is not of that form.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if s.is_empty() {
            return Err(IdError("must not be empty".into()));
        }
        if s.len() > Self::MAX_LEN {
            return Err(IdError(format!(
                "is longer than {} characters",
                Self::MAX_LEN
            )));
        }
        if !s.chars().all(|c| c.is_ascii_graphic()) {
            return Err(IdError(
                "must be printable ASCII without spaces (a UUID is typical)".into(),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// Parses an optional request id: empty means none (AIP-155 makes it optional).
    ///
    /// # Errors
    /// When `s` is not empty and not a request id.
    pub fn parse_optional(s: &str) -> Result<Option<Self>, IdError> {
        if s.is_empty() {
            Ok(None)
        } else {
            Self::parse(s).map(Some)
        }
    }

    /// A request id derived from parts (for example a webhook delivery and the
    /// action taken for it), so a redelivery maps to the same id.
    pub fn derived(parts: &[&str]) -> Self {
        use sha2::{Digest as _, Sha256};
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        let digest = hasher.finalize();
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        Self(format!("derived-{hex}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integration_ids_are_slugs() {
        assert!(IntegrationId::parse("acme-jira").is_ok());
        assert!(IntegrationId::parse("a").is_ok());
        for bad in ["", "Acme", "1acme", "acme-", "ac me", &"a".repeat(64)] {
            assert!(IntegrationId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn issue_keys() {
        let key = IssueKey::parse("APP-123").expect("valid");
        assert_eq!(key.project_key(), "APP");
        assert!(IssueKey::parse("MY_PROJ2-1").is_ok());
        for bad in [
            "", "APP", "APP-", "-1", "APP-01", "1APP-1", "APP-1x", "AP P-1",
        ] {
            assert!(IssueKey::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn jira_issue_ids() {
        assert!(JiraIssueId::parse("10001").is_ok());
        for bad in ["", "1a", "-1", &"1".repeat(21)] {
            assert!(JiraIssueId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn request_ids() {
        assert_eq!(RequestId::parse_optional("").expect("ok"), None);
        assert!(RequestId::parse("0b6f7c1e-1b7e-4a8e-9d55-1c1f3e1f2a3b").is_ok());
        assert!(RequestId::parse("has space").is_err());
        assert!(RequestId::parse(&"x".repeat(201)).is_err());
        assert_eq!(
            RequestId::derived(&["a", "bc"]),
            RequestId::derived(&["a", "bc"])
        );
        assert_ne!(
            RequestId::derived(&["a", "bc"]),
            RequestId::derived(&["ab", "c"])
        );
    }
}
