//! The closed set of `google.rpc.ErrorInfo.reason` values the services return.
//!
//! A reason is part of the wire contract: clients branch on it, so every reason
//! a client can receive is listed here, with the one gRPC status code it comes
//! with, and named in the comments of the RPCs that return it (a test checks that
//! each appears in the `.proto` files). Adding a reason is a contract change
//! (CHANGELOG.md); reusing one for another meaning is a breaking change.

use tonic::Code;

macro_rules! reasons {
    ($($(#[$doc:meta])* $variant:ident => ($text:literal, $code:ident)),+ $(,)?) => {
        /// An `ErrorInfo.reason`: what went wrong, machine-readably.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($(#[$doc])* $variant),+
        }

        impl Reason {
            /// Every reason.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The reason as sent in `ErrorInfo.reason`.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            /// The status code every error with this reason carries.
            pub fn code(self) -> Code {
                match self { $(Self::$variant => Code::$code),+ }
            }
        }
    };
}

reasons! {
    // --- Any RPC of either service -------------------------------------------
    /// A field of the request is invalid; a `BadRequest` names each one.
    InvalidArgument => ("INVALID_ARGUMENT", InvalidArgument),
    /// The request id was already used for a request with other content.
    RequestIdReused => ("REQUEST_ID_REUSED", InvalidArgument),
    /// A resource the request names does not exist (or is not visible to the
    /// caller); metadata `resource` and `id` say which.
    NotFound => ("NOT_FOUND", NotFound),
    /// A create would duplicate an existing resource; metadata as `NOT_FOUND`.
    AlreadyExists => ("ALREADY_EXISTS", AlreadyExists),
    /// A concurrent call with the same request id committed first; retrying
    /// returns its response.
    ConcurrentDuplicate => ("CONCURRENT_DUPLICATE", Aborted),
    /// The server is shutting down; retry on another replica or later.
    ShuttingDown => ("SHUTTING_DOWN", Unavailable),
    /// A dependency (the database, the assignment service) failed in a way
    /// worth retrying.
    Unavailable => ("UNAVAILABLE", Unavailable),
    /// A defect or corrupt stored data; the cause is in the server log under the
    /// `error_id` in the metadata.
    Internal => ("INTERNAL", Internal),
    /// The server is at its concurrency limit; retry with backoff.
    Overloaded => ("OVERLOADED", ResourceExhausted),
    /// The server needs `authorization: Bearer <token>` and none was sent.
    MissingToken => ("MISSING_TOKEN", Unauthenticated),
    /// The bearer token is not one the server accepts.
    InvalidToken => ("INVALID_TOKEN", Unauthenticated),
    /// The server, or the caller's connection, has as many notification streams
    /// open as it may.
    TooManyStreams => ("TOO_MANY_STREAMS", ResourceExhausted),
    /// The caller's role may not call this RPC.
    RoleForbidden => ("ROLE_FORBIDDEN", PermissionDenied),
    /// The message could not be decoded (for example a string that is not
    /// UTF-8); domain `grpc`.
    UndecodableRequest => ("UNDECODABLE_REQUEST", InvalidArgument),

    // --- assignment.v1 -------------------------------------------------------
    /// The organization has not installed the integration.
    IntegrationNotInstalled => ("INTEGRATION_NOT_INSTALLED", FailedPrecondition),
    /// The user cannot be assigned the group (metadata `why`: `inactive`, or
    /// `no_project_access` to the group's project).
    AssigneeNotEligible => ("ASSIGNEE_NOT_ELIGIBLE", FailedPrecondition),
    /// The user cannot follow the group (metadata `why`: `inactive`, or
    /// `no_project_access` to the group's project).
    ParticipantNotEligible => ("PARTICIPANT_NOT_ELIGIBLE", FailedPrecondition),
    /// The group has as many participants as it may (metadata `limit`).
    ParticipantLimitReached => ("PARTICIPANT_LIMIT_REACHED", FailedPrecondition),
    /// A link would exceed a limit (external issues per group, groups per
    /// issue).
    LinkLimitReached => ("LINK_LIMIT_REACHED", FailedPrecondition),
    /// Installing the integration needs its install secret, and the request
    /// had none or another.
    InstallNotAuthorized => ("INSTALL_NOT_AUTHORIZED", PermissionDenied),
    /// The organization already has another record of the issue key.
    IssueKeyTaken => ("ISSUE_KEY_TAKEN", FailedPrecondition),
    /// A stream cursor is behind retention; metadata `oldest_available_sequence`
    /// and `head_sequence`.
    CursorOutOfRange => ("CURSOR_OUT_OF_RANGE", OutOfRange),
    /// A cursor or acknowledged sequence is beyond the head of the log; metadata
    /// `head_sequence`.
    CursorBeyondHead => ("CURSOR_BEYOND_HEAD", OutOfRange),

    // --- tracker.v1 ----------------------------------------------------------
    /// Jira refused the request (HTTP 400); a `BadRequest` names each field
    /// Jira complained about, metadata `jira_status`.
    JiraRejected => ("JIRA_REJECTED", InvalidArgument),
    /// Jira rejected the integration's credentials (HTTP 401).
    JiraCredentialsRejected => ("JIRA_CREDENTIALS_REJECTED", FailedPrecondition),
    /// The integration's Jira account lacks a permission (HTTP 403).
    JiraPermissionDenied => ("JIRA_PERMISSION_DENIED", PermissionDenied),
    /// Jira has no such resource (HTTP 404), e.g. an unknown issue key.
    JiraNotFound => ("JIRA_NOT_FOUND", NotFound),
    /// Jira rate-limits the integration (HTTP 429) beyond the retry budget; a
    /// `RetryInfo` says when to come back.
    JiraRateLimited => ("JIRA_RATE_LIMITED", ResourceExhausted),
    /// Jira failed (HTTP 5xx) beyond the retry budget.
    JiraUnavailable => ("JIRA_UNAVAILABLE", Unavailable),
    /// Jira did not answer in time.
    JiraTimeout => ("JIRA_TIMEOUT", Unavailable),
    /// Jira could not be reached.
    JiraUnreachable => ("JIRA_UNREACHABLE", Unavailable),
    /// Jira answered with a status the tracker does not expect (a 4xx other
    /// than those above).
    JiraUnexpectedResponse => ("JIRA_UNEXPECTED_RESPONSE", FailedPrecondition),
    /// Jira answered with a body the tracker cannot read.
    JiraUnreadableResponse => ("JIRA_UNREADABLE_RESPONSE", Unavailable),
    /// An earlier CreateIssue with this request id may have created the issue;
    /// retrying with the same request id resolves it without a second issue.
    CreateOutcomeUnknown => ("CREATE_OUTCOME_UNKNOWN", Unavailable),
    /// Only a stopped outbound sync can be retried.
    OutboundSyncNotStopped => ("OUTBOUND_SYNC_NOT_STOPPED", FailedPrecondition),
    /// Only failed webhook deliveries can be retried.
    DeliveryNotFailed => ("DELIVERY_NOT_FAILED", FailedPrecondition),
    /// The integration's Jira account sees no project.
    NoJiraProjects => ("NO_JIRA_PROJECTS", FailedPrecondition),
    /// Only a stopped notification delivery can be retried.
    DeliveryNotStopped => ("DELIVERY_NOT_STOPPED", FailedPrecondition),
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Reason;

    fn proto_text() -> String {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        ["assignment/v1", "tracker/v1", "notifier/v1"]
            .iter()
            .flat_map(|dir| std::fs::read_dir(root.join(dir)).expect("proto dir"))
            .map(|entry| std::fs::read_to_string(entry.expect("entry").path()).expect("proto"))
            .collect()
    }

    /// A client learns the reasons it may receive from the RPCs' comments, so
    /// every reason must be named there.
    #[test]
    fn every_reason_is_documented_in_the_contracts() {
        let text = proto_text();
        let missing: Vec<&str> = Reason::ALL
            .iter()
            .map(|r| r.as_str())
            .filter(|r| !text.contains(r))
            .collect();
        assert!(missing.is_empty(), "not named in any .proto: {missing:?}");
    }

    #[test]
    fn reasons_are_distinct_upper_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for reason in Reason::ALL {
            let text = reason.as_str();
            assert!(seen.insert(text), "{text} twice");
            assert!(text.chars().all(|c| c.is_ascii_uppercase() || c == '_'));
        }
    }
}
