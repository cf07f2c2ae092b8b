//! The gRPC API (`notifier.v1.NotifierService`): requests are parsed into
//! domain values here, answers built from them; nothing generated goes
//! further in.

use proto::notifier::v1 as pb;
use proto::notifier::v1::notifier_service_server::{NotifierService, NotifierServiceServer};
use service_runtime::database::Database;
use service_runtime::error::retrying;
use service_runtime::grpc::GrpcServices;
use service_runtime::ids::RequestId;
use service_runtime::pagination::PageRequest;
use service_runtime::status::Violations;
use service_runtime::time::to_timestamp;
use tonic::{Request, Response, Status};

use crate::deliveries::{self, Delivery, ListFilter};
use crate::destinations::{self, DestinationView};
use crate::domain::{self, Channel, DeliveryState, Target, WebhookSecret};
use crate::error::NotifierError;
use crate::pipeline::Wakers;

/// The largest page of deliveries.
const MAX_DELIVERIES_PAGE: u64 = 500;

/// The service, over the notifier's database.
#[derive(Debug, Clone)]
pub struct Api {
    db: Database,
    wakers: Wakers,
    allow_http_webhooks: bool,
}

/// The gRPC services the notifier serves.
pub fn services(
    db: &Database,
    wakers: &Wakers,
    allow_http_webhooks: bool,
    max_message_bytes: usize,
) -> GrpcServices {
    let api = Api {
        db: db.clone(),
        wakers: wakers.clone(),
        allow_http_webhooks,
    };
    GrpcServices::new().with(
        NotifierServiceServer::new(api)
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes),
    )
}

fn user_id(v: &mut Violations, field: &str, id: i64) -> Option<i64> {
    if id > 0 {
        Some(id)
    } else {
        v.add(field, "must be a positive user id");
        None
    }
}

/// Parses a destination's target.
fn target(
    v: &mut Violations,
    raw: Option<pb::destination::Target>,
    allow_http: bool,
) -> Option<Target> {
    use pb::destination::Target as T;
    match raw {
        None => {
            v.add("destination.target", "set one of slack, discord or webhook");
            None
        }
        Some(T::Slack(s)) => {
            let channel = v.check(
                "destination.slack.channel",
                domain::slack_channel(&s.channel),
            );
            let bot_token = v.check(
                "destination.slack.bot_token",
                domain::bot_token(&s.bot_token),
            );
            Some(Target::Slack {
                channel: channel?,
                bot_token: bot_token?,
            })
        }
        Some(T::Discord(d)) => {
            let channel_id = v.check(
                "destination.discord.channel_id",
                domain::discord_channel(&d.channel_id),
            );
            let bot_token = v.check(
                "destination.discord.bot_token",
                domain::bot_token(&d.bot_token),
            );
            Some(Target::Discord {
                channel_id: channel_id?,
                bot_token: bot_token?,
            })
        }
        Some(T::Webhook(w)) => {
            let url = v.check(
                "destination.webhook.url",
                domain::webhook_url(&w.url, allow_http),
            );
            let secret = v.check(
                "destination.webhook.secret",
                WebhookSecret::parse(&w.secret),
            );
            Some(Target::Webhook {
                url: url?,
                secret: secret?,
            })
        }
    }
}

/// A destination as answered: the address without the secret.
fn destination(view: &DestinationView) -> pb::Destination {
    use pb::destination::Target as T;
    let address = view.address.clone();
    let target = match view.channel {
        Channel::Slack => T::Slack(pb::SlackDestination {
            channel: address,
            bot_token: String::new(),
        }),
        Channel::Discord => T::Discord(pb::DiscordDestination {
            channel_id: address,
            bot_token: String::new(),
        }),
        Channel::Webhook => T::Webhook(pb::WebhookDestination {
            url: address,
            secret: String::new(),
        }),
    };
    pb::Destination {
        user_id: view.user_id,
        target: Some(target),
        update_time: Some(to_timestamp(view.updated_at)),
    }
}

fn state(s: DeliveryState) -> pb::DeliveryState {
    match s {
        DeliveryState::Pending => pb::DeliveryState::Pending,
        DeliveryState::Sending => pb::DeliveryState::Sending,
        DeliveryState::Retrying => pb::DeliveryState::Retrying,
        DeliveryState::Sent => pb::DeliveryState::Sent,
        DeliveryState::Stopped => pb::DeliveryState::Stopped,
        DeliveryState::Undeliverable => pb::DeliveryState::Undeliverable,
    }
}

fn delivery(d: &Delivery) -> pb::Delivery {
    let n = &d.notification;
    pb::Delivery {
        sequence: u64::try_from(n.sequence).unwrap_or(0),
        recipient_user_id: n.recipient,
        message_key: n.message_key.clone(),
        update: n.update,
        state: state(d.state).into(),
        channel: d.channel.map(|c| c.as_str().to_owned()).unwrap_or_default(),
        reason: d.reason.clone(),
        attempts: d.attempts,
        external_id: d.external_id.clone(),
        next_attempt_time: d.next_attempt_at.map(to_timestamp),
        update_time: Some(to_timestamp(d.updated_at)),
    }
}

fn sequence(v: &mut Violations, raw: u64) -> Option<i64> {
    match i64::try_from(raw) {
        Ok(s) if s > 0 => Some(s),
        _ => {
            v.add("sequence", "must be a notification's sequence (1 or more)");
            None
        }
    }
}

#[tonic::async_trait]
impl NotifierService for Api {
    async fn set_destination(
        &self,
        request: Request<pb::SetDestinationRequest>,
    ) -> Result<Response<pb::SetDestinationResponse>, Status> {
        let request = request.into_inner();
        let mut v = Violations::new();
        let raw = request.destination.unwrap_or_default();
        let user = user_id(&mut v, "destination.user_id", raw.user_id);
        let target = target(&mut v, raw.target, self.allow_http_webhooks);
        let request_id = v.check("request_id", RequestId::parse(&request.request_id));
        let (user, target, request_id) = v
            .finish_with(|| Some((user?, target?, request_id?)))
            .map_err(NotifierError::from)?;
        let view = retrying(|| destinations::set(&self.db, user, &target, &request_id)).await?;
        tracing::info!(
            user_id = user,
            channel = view.channel.as_str(),
            "destination set"
        );
        self.wakers.destinations.forget(user);
        // Deliveries waiting for a fixed destination may go now.
        self.wakers.dispatch.notify_one();
        Ok(Response::new(pb::SetDestinationResponse {
            destination: Some(destination(&view)),
        }))
    }

    async fn get_destination(
        &self,
        request: Request<pb::GetDestinationRequest>,
    ) -> Result<Response<pb::GetDestinationResponse>, Status> {
        let mut v = Violations::new();
        let user = user_id(&mut v, "user_id", request.get_ref().user_id);
        let user = v.finish_with(|| user).map_err(NotifierError::from)?;
        let view = destinations::view(&self.db, user).await?;
        Ok(Response::new(pb::GetDestinationResponse {
            destination: Some(destination(&view)),
        }))
    }

    async fn delete_destination(
        &self,
        request: Request<pb::DeleteDestinationRequest>,
    ) -> Result<Response<pb::DeleteDestinationResponse>, Status> {
        let mut v = Violations::new();
        let user = user_id(&mut v, "user_id", request.get_ref().user_id);
        let user = v.finish_with(|| user).map_err(NotifierError::from)?;
        let deleted = destinations::delete(&self.db, user).await?;
        self.wakers.destinations.forget(user);
        Ok(Response::new(pb::DeleteDestinationResponse { deleted }))
    }

    async fn list_deliveries(
        &self,
        request: Request<pb::ListDeliveriesRequest>,
    ) -> Result<Response<pb::ListDeliveriesResponse>, Status> {
        let request = request.into_inner();
        let mut v = Violations::new();
        let state = match pb::DeliveryState::try_from(request.state) {
            Ok(pb::DeliveryState::Unspecified) => None,
            Ok(s) => DeliveryState::ALL.into_iter().find(|d| state(*d) == s),
            Err(_) => {
                v.add(
                    "state",
                    format!("{} is not a delivery state", request.state),
                );
                None
            }
        };
        let recipient = match request.recipient_user_id {
            0 => None,
            id => user_id(&mut v, "recipient_user_id", id),
        };
        let filter = ListFilter { state, recipient };
        let page = v.check(
            "page_token",
            PageRequest::<i64>::parse(request.page_size, &request.page_token, &filter.describe())
                .map(|p| p.at_most(MAX_DELIVERIES_PAGE)),
        );
        let page = v.finish_with(|| page).map_err(NotifierError::from)?;
        let (found, next_page_token) = deliveries::list(&self.db, &filter, &page).await?;
        Ok(Response::new(pb::ListDeliveriesResponse {
            deliveries: found.iter().map(delivery).collect(),
            next_page_token,
        }))
    }

    async fn retry_delivery(
        &self,
        request: Request<pb::RetryDeliveryRequest>,
    ) -> Result<Response<pb::RetryDeliveryResponse>, Status> {
        let mut v = Violations::new();
        let sequence = sequence(&mut v, request.get_ref().sequence);
        let sequence = v.finish_with(|| sequence).map_err(NotifierError::from)?;
        let retried = deliveries::retry(&self.db, sequence).await?;
        self.wakers.dispatch.notify_one();
        Ok(Response::new(pb::RetryDeliveryResponse {
            delivery: Some(delivery(&retried)),
        }))
    }
}
