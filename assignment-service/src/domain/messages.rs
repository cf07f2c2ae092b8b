//! What notifications say.
//!
//! A chat bot edits the message of a thread (`update = true`) rather than posting
//! again, so each text stands alone: it states the current situation, names the
//! group and the Jira key, and says what happened.

use super::{GroupId, NotificationKind, UserId};

/// The facts a notification text is made of.
#[derive(Debug, Clone, Copy)]
pub struct MessageFacts<'a> {
    /// What happened.
    pub kind: NotificationKind,
    /// The group's id.
    pub group_id: GroupId,
    /// The group's title.
    pub group_title: &'a str,
    /// The Jira issue key, when the change came from Jira.
    pub issue_key: Option<&'a str>,
    /// The recipient follows the group rather than being its assignee.
    pub follower: bool,
    /// For [`NotificationKind::AssigneeChanged`]: the new assignee's name, or
    /// `None` when the group has none now.
    pub assignee_name: Option<&'a str>,
}

/// Renders the human-readable text of a notification.
pub fn notification_text(facts: &MessageFacts<'_>) -> String {
    let title = shorten(facts.group_title, 200);
    let group = format!("\u{201c}{title}\u{201d} (group {})", facts.group_id);
    let via = facts
        .issue_key
        .map(|key| format!(" in Jira issue {key}"))
        .unwrap_or_default();
    let whose = if facts.follower {
        "which you follow"
    } else {
        "assigned to you"
    };
    match facts.kind {
        NotificationKind::Assigned => format!("You were assigned to {group}{via}."),
        NotificationKind::Unassigned => {
            format!("You are no longer assigned to {group} after a change{via}.")
        }
        NotificationKind::Resolved => format!("{group}, {whose}, was resolved{via}."),
        NotificationKind::Unresolved => format!("{group}, {whose}, was reopened{via}."),
        NotificationKind::AssigneeChanged => match facts.assignee_name {
            Some(name) => {
                let name = shorten(name, 200);
                format!("{group}, which you follow, is now assigned to {name}{via}.")
            }
            None => format!("{group}, which you follow, is no longer assigned to anyone{via}."),
        },
    }
}

/// The message key of the thread (recipient, group): stable for the thread's life.
pub fn thread_message_key(recipient: UserId, group: GroupId) -> String {
    format!("group-{group}-user-{recipient}")
}

fn shorten(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max_chars - 1).collect();
        out.push('\u{2026}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_name_the_group_and_key() {
        let facts = MessageFacts {
            kind: NotificationKind::Assigned,
            group_id: GroupId::from_row(7),
            group_title: "TypeError in checkout",
            issue_key: Some("APP-123"),
            follower: false,
            assignee_name: None,
        };
        let text = notification_text(&facts);
        assert!(text.contains("TypeError in checkout"));
        assert!(text.contains("APP-123"));
        assert!(text.contains("assigned"));
    }

    #[test]
    fn followers_read_what_happened_to_a_group_they_follow() {
        let facts = |kind, name| MessageFacts {
            kind,
            group_id: GroupId::from_row(7),
            group_title: "TypeError",
            issue_key: None,
            follower: true,
            assignee_name: name,
        };
        assert_eq!(
            notification_text(&facts(NotificationKind::AssigneeChanged, Some("Kim"))),
            "\u{201c}TypeError\u{201d} (group 7), which you follow, is now assigned to Kim."
        );
        assert_eq!(
            notification_text(&facts(NotificationKind::AssigneeChanged, None)),
            "\u{201c}TypeError\u{201d} (group 7), which you follow, is no longer assigned to anyone."
        );
        assert_eq!(
            notification_text(&facts(NotificationKind::Resolved, None)),
            "\u{201c}TypeError\u{201d} (group 7), which you follow, was resolved."
        );
    }

    #[test]
    fn long_titles_are_shortened() {
        let long = "x".repeat(500);
        let facts = MessageFacts {
            kind: NotificationKind::Resolved,
            group_id: GroupId::from_row(1),
            group_title: &long,
            issue_key: None,
            follower: false,
            assignee_name: None,
        };
        assert!(notification_text(&facts).chars().count() < 300);
    }
}
