//! `assignment.v1.NotificationService`: the stream and durable subscribers.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use proto::assignment::v1 as pb;
use service_runtime::database::Database;
use service_runtime::pagination::PageRequest;
use service_runtime::status::Violations;
use service_runtime::telemetry::context as trace;
use service_runtime::time::to_timestamp;
use tonic::{Request, Response, Status};

use super::Scope;
use super::limits::{MAX_FILTER_IDS, SMALL_ITEMS_PAGE};
use crate::domain::{NotificationKind, OrganizationId, Sequence, UserId};
use crate::error::{AssignmentError, Reason};
use crate::notification_log::StoredNotification;
use crate::stream::{
    self, NotificationFilter, StartPosition, StreamEvent, StreamHub, SubscribeRequest,
};
use crate::subscribers::{self, DurableSubscriber, SubscriberName};

/// Serves `NotificationService`.
#[derive(Debug, Clone)]
pub struct NotificationApi {
    db: Database,
    hub: StreamHub,
}

impl NotificationApi {
    /// A handler over `db`, streaming through `hub`.
    pub fn new(db: Database, hub: StreamHub) -> Self {
        Self { db, hub }
    }
}

impl From<NotificationKind> for pb::NotificationKind {
    fn from(kind: NotificationKind) -> Self {
        match kind {
            NotificationKind::Assigned => Self::Assigned,
            NotificationKind::Unassigned => Self::Unassigned,
            NotificationKind::Resolved => Self::Resolved,
            NotificationKind::Unresolved => Self::Unresolved,
            NotificationKind::AssigneeChanged => Self::AssigneeChanged,
        }
    }
}

fn notification(n: &StoredNotification) -> pb::Notification {
    pb::Notification {
        sequence: n.sequence.get(),
        recipient_user_id: n.recipient.get(),
        organization_id: n.organization_id.get(),
        group_id: n.group_id.get(),
        external_issue_key: n.external_issue_key.clone(),
        integration_id: n.integration_id.clone(),
        kind: pb::NotificationKind::from(n.kind).into(),
        message: n.message.clone(),
        message_key: n.message_key.clone(),
        update: n.update,
        create_time: Some(to_timestamp(n.created_at)),
        activity_id: n.activity_id.get(),
        traceparent: n.traceparent.clone(),
    }
}

/// Marks a notification's hand-over to this stream with a span in the trace
/// of the call that wrote it (the last step of a webhook's trace); the
/// subscriber continues it from the notification's `traceparent`.
fn traced_delivery(n: &StoredNotification) {
    let span = tracing::info_span!(
        "notification delivered",
        otel.name = "deliver notification",
        otel.kind = "producer",
        notification.sequence = n.sequence.get(),
        notification.recipient = n.recipient.get(),
        notification.update = n.update,
    );
    trace::set_parent(&span, &n.traceparent);
}

fn subscriber(s: DurableSubscriber) -> pb::Subscriber {
    pb::Subscriber {
        name: s.name.to_string(),
        acknowledged_sequence: s.acknowledged.get(),
        update_time: Some(to_timestamp(s.updated_at)),
    }
}

fn subscriber_name(raw: &str) -> Result<SubscriberName, AssignmentError> {
    SubscriberName::parse(raw)
        .map_err(|e| AssignmentError::invalid_field("subscriber_name", e.to_string()))
}

impl TryFrom<pb::SubscribeRequest> for SubscribeRequest {
    type Error = AssignmentError;
    fn try_from(r: pb::SubscribeRequest) -> Result<Self, Self::Error> {
        use pb::subscribe_request::Start;
        let mut v = Violations::new();
        let start = match r.start {
            None => Some(StartPosition::Oldest),
            Some(Start::AfterSequence(after)) => Some(StartPosition::After(Sequence::new(after))),
            Some(Start::StartAtHead(true)) => Some(StartPosition::Head),
            Some(Start::StartAtHead(false)) => {
                v.add(
                    "start_at_head",
                    "must be true when set (leave the start unset to begin at the oldest retained notification)",
                );
                None
            }
            Some(Start::SubscriberName(name)) => v
                .check("subscriber_name", SubscriberName::parse(&name))
                .map(StartPosition::Durable),
        };
        let filter = r.filter.unwrap_or_default();
        for (field, count) in [
            ("filter.recipient_user_ids", filter.recipient_user_ids.len()),
            ("filter.organization_ids", filter.organization_ids.len()),
            ("filter.kinds", filter.kinds.len()),
        ] {
            if count > MAX_FILTER_IDS {
                v.add(
                    field,
                    format!("has {count} items; at most {MAX_FILTER_IDS} are accepted"),
                );
            }
        }
        let recipients: Vec<UserId> = filter
            .recipient_user_ids
            .iter()
            .enumerate()
            .filter_map(|(i, id)| {
                v.check(
                    &format!("filter.recipient_user_ids[{i}]"),
                    UserId::parse(*id),
                )
            })
            .collect();
        let organizations: Vec<OrganizationId> = filter
            .organization_ids
            .iter()
            .enumerate()
            .filter_map(|(i, id)| {
                v.check(
                    &format!("filter.organization_ids[{i}]"),
                    OrganizationId::parse(*id),
                )
            })
            .collect();
        let mut kinds = Vec::with_capacity(filter.kinds.len());
        for (i, raw) in filter.kinds.iter().enumerate() {
            match pb::NotificationKind::try_from(*raw) {
                Ok(pb::NotificationKind::Assigned) => kinds.push(NotificationKind::Assigned),
                Ok(pb::NotificationKind::Unassigned) => kinds.push(NotificationKind::Unassigned),
                Ok(pb::NotificationKind::Resolved) => kinds.push(NotificationKind::Resolved),
                Ok(pb::NotificationKind::Unresolved) => kinds.push(NotificationKind::Unresolved),
                Ok(pb::NotificationKind::AssigneeChanged) => {
                    kinds.push(NotificationKind::AssigneeChanged);
                }
                Ok(pb::NotificationKind::Unspecified) | Err(_) => v.add(
                    format!("filter.kinds[{i}]"),
                    format!("{raw} is not a notification kind"),
                ),
            }
        }
        Ok(v.finish_with(|| {
            Some(SubscribeRequest {
                start: start?,
                filter: NotificationFilter {
                    recipients,
                    organizations,
                    kinds,
                },
                peer: None,
            })
        })?)
    }
}

/// The gRPC side of a subscription: converts events, and makes sure the stream
/// ends with an error status, never a clean OK.
pub struct EventStream {
    receiver: stream::EventReceiver,
    ended: bool,
}

impl Stream for EventStream {
    type Item = Result<pb::SubscribeResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        use pb::subscribe_response::Event;
        if self.ended {
            return Poll::Ready(None);
        }
        match self.receiver.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(StreamEvent::Notification(n)))) => {
                if trace::exporting() {
                    traced_delivery(&n);
                }
                // Encoded once for every stream that sends it.
                let encoded = n.encoded.get_or_init(|| {
                    pb::SubscribeResponse::encode_event(Event::Notification(notification(&n)))
                });
                Poll::Ready(Some(Ok(pb::SubscribeResponse::from_encoded(encoded))))
            }
            Poll::Ready(Some(Ok(StreamEvent::Progress(sequence, time)))) => Poll::Ready(Some(Ok(
                pb::SubscribeResponse::from(Event::Progress(pb::Progress {
                    sequence: sequence.get(),
                    time: Some(to_timestamp(time)),
                })),
            ))),
            Poll::Ready(Some(Err(error))) => {
                self.ended = true;
                Poll::Ready(Some(Err((*error).into())))
            }
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(Some(Err(AssignmentError::ShuttingDown.into())))
            }
        }
    }
}

/// Narrows an organization's subscription to its own notifications. Durable
/// cursors are shared between the pair's services and not given to an
/// organization.
fn confine(request: &mut SubscribeRequest, own: OrganizationId) -> Result<(), AssignmentError> {
    if let StartPosition::Durable(_) = request.start {
        return Err(AssignmentError::refused(
            Reason::RoleForbidden,
            "an organization's token may not use a durable subscriber (subscriber_name); start after a sequence instead",
        ));
    }
    if let Some(other) = request.filter.organizations.iter().find(|o| **o != own) {
        return Err(AssignmentError::NotFound {
            resource: "organization",
            id: other.to_string(),
        });
    }
    request.filter.organizations = vec![own];
    Ok(())
}

#[tonic::async_trait]
impl pb::notification_service_server::NotificationService for NotificationApi {
    type SubscribeStream = EventStream;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let peer = request.remote_addr();
        let scope = Scope::of(&request);
        let mut request = SubscribeRequest::try_from(request.into_inner())?;
        request.peer = peer;
        if let Some(own) = scope.organization() {
            confine(&mut request, own)?;
        }
        let receiver = stream::subscribe(&self.hub, request).await?;
        Ok(Response::new(EventStream {
            receiver,
            ended: false,
        }))
    }

    async fn acknowledge_notifications(
        &self,
        request: Request<pb::AcknowledgeNotificationsRequest>,
    ) -> Result<Response<pb::AcknowledgeNotificationsResponse>, Status> {
        let r = request.into_inner();
        let name = subscriber_name(&r.subscriber_name)?;
        let stored = subscribers::acknowledge(&self.db, &name, Sequence::new(r.sequence)).await?;
        Ok(Response::new(pb::AcknowledgeNotificationsResponse {
            subscriber: Some(subscriber(stored)),
        }))
    }

    async fn get_subscriber(
        &self,
        request: Request<pb::GetSubscriberRequest>,
    ) -> Result<Response<pb::GetSubscriberResponse>, Status> {
        let name = subscriber_name(&request.into_inner().subscriber_name)?;
        let stored = subscribers::get(&self.db, &name).await?;
        Ok(Response::new(pb::GetSubscriberResponse {
            subscriber: Some(subscriber(stored)),
        }))
    }

    async fn list_subscribers(
        &self,
        request: Request<pb::ListSubscribersRequest>,
    ) -> Result<Response<pb::ListSubscribersResponse>, Status> {
        let r = request.into_inner();
        let page = PageRequest::<String>::parse(r.page_size, &r.page_token, "")
            .map_err(|v| AssignmentError::InvalidArgument(vec![v]))?
            .at_most(SMALL_ITEMS_PAGE);
        let result = subscribers::list(&self.db, &page).await?;
        Ok(Response::new(pb::ListSubscribersResponse {
            subscribers: result.items.into_iter().map(subscriber).collect(),
            next_page_token: result.next_page_token,
        }))
    }

    async fn delete_subscriber(
        &self,
        request: Request<pb::DeleteSubscriberRequest>,
    ) -> Result<Response<pb::DeleteSubscriberResponse>, Status> {
        let name = subscriber_name(&request.into_inner().subscriber_name)?;
        subscribers::delete(&self.db, &name).await?;
        Ok(Response::new(pb::DeleteSubscriberResponse {}))
    }
}
