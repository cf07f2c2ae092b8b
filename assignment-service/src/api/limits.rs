//! The limits of the assignment API: every string and list it accepts has one
//! (a longer one is INVALID_ARGUMENT naming the field), and every list RPC has
//! a largest page, chosen so that a full page of items of the largest size
//! stays under the 4 MiB message limit that default clients enforce. The tests
//! below check it by encoding such items.

/// Display names of users, organizations and projects, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Group titles, in characters.
pub const MAX_GROUP_TITLE_CHARS: usize = 1000;
/// An external issue's title, in characters.
pub const MAX_ISSUE_TITLE_CHARS: usize = 500;
/// An external issue's URL, in bytes.
pub const MAX_URL_BYTES: usize = 1024;
/// E-mail addresses per user.
pub const MAX_EMAILS_PER_USER: usize = 20;
/// Groups named in one call (link, unlink).
pub const MAX_GROUPS_PER_CALL: usize = 100;
/// Changes in one SyncAssigneeInboundBatch call.
pub const MAX_BATCHED_CHANGES: usize = 64;
/// Ids in each list of a stream filter.
pub const MAX_FILTER_IDS: usize = 100;
pub use crate::external_issues::{MAX_GROUPS_PER_ISSUE, MAX_LINKS_PER_GROUP};

/// Largest page of ListGroups (a group carries its title and links).
pub const GROUPS_PAGE: u64 = 100;
/// Largest page of ListUsers and ListProjectMembers (a user carries addresses).
pub const USERS_PAGE: u64 = 100;
/// Largest page of ListExternalIssues (a record carries its linked group ids).
pub const EXTERNAL_ISSUES_PAGE: u64 = 100;
/// Largest page of the other lists, whose items are small.
pub const SMALL_ITEMS_PAGE: u64 = 1000;

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use proto::assignment::v1 as pb;

    use super::*;

    /// The message limit default clients enforce, less room for the rest of
    /// the response.
    const BUDGET: usize = 4 * 1024 * 1024 - 64 * 1024;

    /// A string of `chars` characters of the widest UTF-8 encoding.
    fn widest(chars: usize) -> String {
        "\u{10348}".repeat(chars)
    }

    fn ts() -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp {
            seconds: i64::MAX / 2,
            nanos: 999_999_999,
        })
    }

    #[test]
    fn a_full_page_of_the_largest_groups_fits() {
        let link = pb::LinkedIssue {
            integration_id: "x".repeat(63),
            key: format!("{}-{}", "X".repeat(234), u64::MAX),
            url: "u".repeat(MAX_URL_BYTES),
        };
        let group = pb::Group {
            id: i64::MAX,
            organization_id: i64::MAX,
            project_id: i64::MAX,
            title: widest(MAX_GROUP_TITLE_CHARS),
            status: 2,
            assignee_user_id: Some(i64::MAX),
            assign_time: ts(),
            linked_issues: vec![link; MAX_LINKS_PER_GROUP],
            create_time: ts(),
        };
        let page = usize::try_from(GROUPS_PAGE).unwrap_or(usize::MAX) * (group.encoded_len() + 8);
        assert!(page < BUDGET, "{page} bytes");
    }

    #[test]
    fn a_full_page_of_the_largest_users_fits() {
        let user = pb::User {
            id: i64::MAX,
            display_name: widest(MAX_NAME_CHARS),
            emails: vec![
                pb::UserEmail {
                    email: widest(254),
                    verified: true,
                };
                MAX_EMAILS_PER_USER
            ],
            active: true,
            create_time: ts(),
            owner_organization_id: i64::MAX,
        };
        let page = usize::try_from(USERS_PAGE).unwrap_or(usize::MAX) * (user.encoded_len() + 8);
        assert!(page < BUDGET, "{page} bytes");
    }

    #[test]
    fn a_full_page_of_the_largest_external_issues_fits() {
        let issue = pb::ExternalIssue {
            id: i64::MAX,
            organization_id: i64::MAX,
            integration_id: "x".repeat(63),
            key: format!("{}-{}", "X".repeat(234), u64::MAX),
            jira_issue_id: "9".repeat(20),
            title: widest(MAX_ISSUE_TITLE_CHARS),
            url: "u".repeat(MAX_URL_BYTES),
            group_ids: vec![i64::MAX; MAX_GROUPS_PER_ISSUE],
            assignee_watermark_time: ts(),
            status_watermark_time: ts(),
            create_time: ts(),
        };
        let page =
            usize::try_from(EXTERNAL_ISSUES_PAGE).unwrap_or(usize::MAX) * (issue.encoded_len() + 8);
        assert!(page < BUDGET, "{page} bytes");
    }

    #[test]
    fn a_full_page_of_the_other_lists_fits() {
        let activity = pb::Activity {
            id: i64::MAX,
            group_id: i64::MAX,
            organization_id: i64::MAX,
            kind: 6,
            user_id: Some(i64::MAX),
            previous_user_id: Some(i64::MAX),
            source_integration_id: "x".repeat(63),
            external_issue_key: format!("{}-{}", "X".repeat(234), u64::MAX),
            request_id: "r".repeat(128),
            create_time: ts(),
            actor_user_id: Some(i64::MAX),
        };
        let organization = pb::Organization {
            id: i64::MAX,
            slug: "s".repeat(63),
            name: widest(MAX_NAME_CHARS),
            create_time: ts(),
        };
        for size in [activity.encoded_len(), organization.encoded_len()] {
            let page = usize::try_from(SMALL_ITEMS_PAGE).unwrap_or(usize::MAX) * (size + 8);
            assert!(page < BUDGET, "{page} bytes");
        }
    }
}
