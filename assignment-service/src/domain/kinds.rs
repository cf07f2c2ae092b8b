//! The closed sets of the domain: group status, activity and notification kinds,
//! status actions and sync outcomes. Each has one stored spelling.

use serde::{Deserialize, Serialize};

macro_rules! stored_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The stored spelling.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            /// Reads the stored spelling back; `None` for anything else.
            pub fn from_stored(s: &str) -> Option<Self> {
                match s { $($text => Some(Self::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

stored_enum!(
    /// Whether a group still needs work.
    GroupStatus {
        /// Needs attention.
        Unresolved => "unresolved",
        /// Done.
        Resolved => "resolved",
    }
);

stored_enum!(
    /// Why a user follows a group.
    ParticipantReason {
        /// They subscribed (GroupService.SubscribeToGroup).
        Subscribed => "subscribed",
        /// They were assigned the group once (assignees are subscribed
        /// automatically, and stay subscribed after being unassigned).
        Assignee => "assignee",
    }
);

stored_enum!(
    /// What an activity (audit row) records.
    ActivityKind {
        /// Assigned to a user (possibly replacing another).
        Assigned => "assigned",
        /// Assignee removed.
        Unassigned => "unassigned",
        /// Marked resolved.
        Resolved => "resolved",
        /// Reopened (unresolved again).
        Unresolved => "unresolved",
        /// Linked to an external issue.
        Linked => "linked",
        /// Unlinked from an external issue.
        Unlinked => "unlinked",
    }
);

stored_enum!(
    /// What a notification tells its recipient.
    NotificationKind {
        /// You were assigned.
        Assigned => "assigned",
        /// You are no longer assigned.
        Unassigned => "unassigned",
        /// Your group was resolved.
        Resolved => "resolved",
        /// Your group was reopened.
        Unresolved => "unresolved",
        /// A group you follow got another assignee, or none.
        AssigneeChanged => "assignee_changed",
    }
);

stored_enum!(
    /// The direction of an inbound status change.
    StatusAction {
        /// Into Jira's done category: resolve.
        Resolve => "resolve",
        /// Out of Jira's done category: reopen.
        Unresolve => "unresolve",
    }
);

stored_enum!(
    /// What inbound sync did to one linked group, and why.
    SyncOutcome {
        /// Assigned to the matching user.
        Assigned => "assigned",
        /// Assignee removed.
        Deassigned => "deassigned",
        /// Already in the requested state; nothing written.
        Unchanged => "unchanged",
        /// No active, verified, permitted user matches; untouched.
        NoMatchingUser => "no_matching_user",
        /// Older than the watermark; untouched.
        Stale => "stale",
        /// The organization has this direction of sync off; untouched.
        SyncDisabled => "sync_disabled",
        /// The group was marked resolved.
        Resolved => "resolved",
        /// The group was reopened.
        Unresolved => "unresolved",
    }
);

impl StatusAction {
    /// The status a group has after the action.
    pub fn target_status(self) -> GroupStatus {
        match self {
            Self::Resolve => GroupStatus::Resolved,
            Self::Unresolve => GroupStatus::Unresolved,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_spellings_round_trip() {
        for kind in SyncOutcome::ALL {
            assert_eq!(SyncOutcome::from_stored(kind.as_str()), Some(*kind));
        }
        for kind in ActivityKind::ALL {
            assert_eq!(ActivityKind::from_stored(kind.as_str()), Some(*kind));
        }
        assert_eq!(GroupStatus::from_stored("nope"), None);
    }
}
