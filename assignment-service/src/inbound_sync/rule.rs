//! The one rule deciding whether an inbound event reaches a record's groups,
//! used by the assignee path (group commit, [`super::batch`]) and the status
//! path alike.
//!
//! For one organization's record of the issue:
//! 1. the record learns Jira's issue id from the event when it lacks it (a
//!    record linked by key alone still finds later events sent by id);
//! 2. the organization's installation must enable this direction of sync, else
//!    every linked group is `SYNC_DISABLED`;
//! 3. the event's provider time is compared with the direction's watermark: an
//!    older event is `STALE`; an equal one is applied again for the assignee
//!    but is `STALE` for the status (as Sentry's `test_equal_event_is_stale`:
//!    once groups can be resolved locally, a redelivered status event must not
//!    undo a local resolve); an event without a time is applied, unordered;
//! 4. an applied event moves the watermark forward (never backwards).

use chrono::{DateTime, Utc};
use service_runtime::ids::JiraIssueId;

use crate::domain::SyncOutcome;
use crate::external_issues::IssueRecord;

/// Which of a record's watermarks orders an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Assignee changes.
    Assignee,
    /// Status changes.
    Status,
}

/// An inbound event, as the rule sees it.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// Which watermark orders it.
    pub direction: Direction,
    /// Jira's `issue.fields.updated`, when the event carries one.
    pub provider_time: Option<DateTime<Utc>>,
    /// Jira's issue id, when the event carries one.
    pub jira_issue_id: Option<&'a JiraIssueId>,
}

/// What the rule decided for one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// `None`: apply the event to the record's groups; else what every linked
    /// group's outcome is (`SYNC_DISABLED` or `STALE`).
    pub verdict: Option<SyncOutcome>,
    /// Whether the record changed (Jira's id learned, watermark moved), so it
    /// must be written back.
    pub changed: bool,
}

/// Applies the rule to `record`, whose organization has this direction of sync
/// `enabled`, updating it in place.
pub fn admit(record: &mut IssueRecord, enabled: bool, event: &Event<'_>) -> Admission {
    let mut changed = false;
    if record.jira_issue_id.is_none()
        && let Some(id) = event.jira_issue_id
    {
        record.jira_issue_id = Some(id.clone());
        changed = true;
    }
    let watermark = match event.direction {
        Direction::Assignee => &mut record.assignee_watermark,
        Direction::Status => &mut record.status_watermark,
    };
    let verdict = if !enabled {
        Some(SyncOutcome::SyncDisabled)
    } else if matches!((event.provider_time, *watermark), (Some(t), Some(w))
        if t < w || (t == w && event.direction == Direction::Status))
    {
        Some(SyncOutcome::Stale)
    } else {
        None
    };
    if verdict.is_none()
        && let Some(time) = event.provider_time
        && watermark.is_none_or(|w| time > w)
    {
        *watermark = Some(time);
        changed = true;
    }
    Admission { verdict, changed }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;
    use service_runtime::ids::{IntegrationId, IssueKey};

    use super::*;
    use crate::domain::{ExternalIssueId, OrganizationId};

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, minute, 0)
            .single()
            .expect("valid time")
    }

    fn record(watermark: Option<u32>, jira_id: Option<&str>) -> IssueRecord {
        IssueRecord {
            id: ExternalIssueId::from_row(1),
            organization_id: OrganizationId::from_row(1),
            integration_id: IntegrationId::parse("acme").expect("id"),
            key: IssueKey::parse("APP-1").expect("key"),
            jira_issue_id: jira_id.map(|id| JiraIssueId::parse(id).expect("id")),
            assignee_watermark: watermark.map(at),
            status_watermark: None,
        }
    }

    /// (enabled, watermark, event time, event's Jira id) → (verdict, new
    /// watermark, record changed).
    type Case = (
        bool,
        Option<u32>,
        Option<u32>,
        Option<&'static str>,
        Option<SyncOutcome>,
        Option<u32>,
        bool,
    );

    #[test]
    fn the_rule() {
        use SyncOutcome::{Stale, SyncDisabled};
        #[rustfmt::skip]
        let cases: &[Case] = &[
            // enabled, watermark, event, jira id → verdict, watermark after, changed
            (true,  None,     Some(5), None,        None,               Some(5), true),  // first event sets it
            (true,  Some(5),  Some(6), None,        None,               Some(6), true),  // newer moves it
            (true,  Some(5),  Some(5), None,        None,               Some(5), false), // equal: applied again
            (true,  Some(5),  Some(4), None,        Some(Stale),        Some(5), false), // older: stale
            (true,  Some(5),  None,    None,        None,               Some(5), false), // unordered: applied
            (false, Some(5),  Some(6), None,        Some(SyncDisabled), Some(5), false), // disabled: untouched
            (false, None,     Some(6), Some("101"), Some(SyncDisabled), None,    true),  // still learns the id
            (true,  Some(5),  Some(4), Some("101"), Some(Stale),        Some(5), true),  // stale, learns the id
        ];
        for &(enabled, watermark, time, jira_id, verdict, after, changed) in cases {
            let mut r = record(watermark, None);
            let id = jira_id.map(|id| JiraIssueId::parse(id).expect("id"));
            let admission = admit(
                &mut r,
                enabled,
                &Event {
                    direction: Direction::Assignee,
                    provider_time: time.map(at),
                    jira_issue_id: id.as_ref(),
                },
            );
            let case = (enabled, watermark, time, jira_id);
            assert_eq!(admission.verdict, verdict, "{case:?}");
            assert_eq!(r.assignee_watermark, after.map(at), "{case:?}");
            assert_eq!(admission.changed, changed, "{case:?}");
            assert_eq!(
                r.status_watermark, None,
                "{case:?}: the other direction moved"
            );
            if jira_id.is_some() {
                assert_eq!(r.jira_issue_id, id, "{case:?}");
            }
        }
    }

    /// Sentry's `test_equal_event_is_stale`: a status event as old as the
    /// watermark is stale (a redelivery must not undo a local resolve), while
    /// an equal assignee event is applied again.
    #[test]
    fn an_equal_status_time_is_stale_and_an_equal_assignee_time_is_not() {
        for (direction, verdict) in [
            (Direction::Status, Some(SyncOutcome::Stale)),
            (Direction::Assignee, None),
        ] {
            let mut r = record(Some(5), None);
            r.status_watermark = Some(at(5));
            let admission = admit(
                &mut r,
                true,
                &Event {
                    direction,
                    provider_time: Some(at(5)),
                    jira_issue_id: None,
                },
            );
            assert_eq!(admission.verdict, verdict, "{direction:?}");
            assert!(!admission.changed);
        }
    }

    #[test]
    fn a_known_jira_id_is_kept_and_directions_are_separate() {
        let mut r = record(None, Some("7"));
        let other = JiraIssueId::parse("8").expect("id");
        let admission = admit(
            &mut r,
            true,
            &Event {
                direction: Direction::Status,
                provider_time: Some(at(3)),
                jira_issue_id: Some(&other),
            },
        );
        assert_eq!(admission.verdict, None);
        assert_eq!(r.jira_issue_id.as_ref().map(JiraIssueId::as_str), Some("7"));
        assert_eq!(r.status_watermark, Some(at(3)));
        assert_eq!(r.assignee_watermark, None);
    }
}
