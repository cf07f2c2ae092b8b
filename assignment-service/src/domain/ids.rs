//! Row identifiers as distinct types, so a group id cannot be passed where a user
//! id is expected.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an id was refused; shown to the caller next to the field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be a positive id (got {0})")]
pub struct NotAnId(i64);

macro_rules! row_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(i64);

        impl $name {
            /// Parses an id received from a caller: ids are positive.
            ///
            /// # Errors
            /// When `raw` is zero or negative.
            pub fn parse(raw: i64) -> Result<Self, NotAnId> {
                if raw > 0 { Ok(Self(raw)) } else { Err(NotAnId(raw)) }
            }

            /// An id read from the database, which only holds valid ids.
            pub(crate) fn from_row(raw: i64) -> Self {
                Self(raw)
            }

            /// The id as stored and sent.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

row_id!(
    /// Identifies an organization.
    OrganizationId
);
row_id!(
    /// Identifies a project.
    ProjectId
);
row_id!(
    /// Identifies a user.
    UserId
);
row_id!(
    /// Identifies a group.
    GroupId
);
row_id!(
    /// Identifies one organization's record of an external issue.
    ExternalIssueId
);
row_id!(
    /// Identifies an activity.
    ActivityId
);

/// A position in the notification log. 0 is "before the first notification".
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Sequence(u64);

impl Sequence {
    /// Before the first notification.
    pub const ZERO: Self = Self(0);

    /// A sequence received from a caller or computed.
    pub fn new(raw: u64) -> Self {
        Self(raw)
    }

    /// A sequence read from the database (stored as a non-negative BIGINT).
    pub(crate) fn from_row(raw: i64) -> Self {
        Self(u64::try_from(raw).unwrap_or(0))
    }

    /// The sequence as sent on the wire.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The sequence as stored.
    pub fn to_row(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }

    /// The next position.
    #[must_use]
    pub fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

impl fmt::Display for Sequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_positive() {
        assert!(GroupId::parse(1).is_ok());
        assert!(GroupId::parse(0).is_err());
        assert!(GroupId::parse(-5).is_err());
    }
}
