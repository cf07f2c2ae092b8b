//! Slugs: short, URL-safe names of organizations and projects.

use std::fmt;

use serde::{Deserialize, Serialize};
use service_runtime::ids::{IdError, check_slug};

/// Lowercase letters, digits and `-`, 1 to 63 characters, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    /// Parses a slug.
    ///
    /// # Errors
    /// When `s` breaks the slug rule.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        check_slug(s)?;
        Ok(Self(s.to_owned()))
    }

    /// The slug as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
