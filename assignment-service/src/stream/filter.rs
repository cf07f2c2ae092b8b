//! Which notifications a subscriber wants.

use crate::domain::{NotificationKind, OrganizationId, UserId};
use crate::notification_log::StoredNotification;

/// Each non-empty list must match; an empty filter matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotificationFilter {
    /// Only notifications to these users.
    pub recipients: Vec<UserId>,
    /// Only notifications about these organizations' groups.
    pub organizations: Vec<OrganizationId>,
    /// Only these kinds.
    pub kinds: Vec<NotificationKind>,
}

impl NotificationFilter {
    /// Whether `notification` passes.
    pub fn matches(&self, notification: &StoredNotification) -> bool {
        (self.recipients.is_empty() || self.recipients.contains(&notification.recipient))
            && (self.organizations.is_empty()
                || self.organizations.contains(&notification.organization_id))
            && (self.kinds.is_empty() || self.kinds.contains(&notification.kind))
    }
}
