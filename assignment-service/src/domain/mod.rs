//! Domain types: values that parse, so an invalid one cannot be built.
//!
//! Nothing here touches the database or the wire. The API edge converts protobuf
//! messages into these types (`TryFrom`, naming the offending field), and the
//! logic modules work only with them.

pub mod email;
pub mod ids;
pub mod kinds;
pub mod messages;
pub mod records;
pub mod slug;

pub use email::Email;
pub use ids::{ActivityId, ExternalIssueId, GroupId, OrganizationId, ProjectId, Sequence, UserId};
pub use kinds::{
    ActivityKind, GroupStatus, NotificationKind, ParticipantReason, StatusAction, SyncOutcome,
};
pub use slug::Slug;
