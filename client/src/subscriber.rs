//! A notification subscriber that survives broken streams.
//!
//! [`Subscriber::run`] subscribes, hands each event to the caller's handler
//! in order, and remembers the last sequence it handled (its cursor). When
//! the stream breaks (the service restarts, the network drops, the server
//! sheds load) it waits (100 ms, doubling up to [`SubscriberOptions::max_backoff`])
//! and subscribes again after that cursor: nothing handled is handed over
//! twice and nothing is skipped, since the service delivers sequences
//! contiguously after a cursor. It stops only when the handler fails, the
//! service refuses the subscription for good (a bad token, a bad filter), or
//! the cursor fell behind retention ([`SubscribeError::OutOfRange`], with the
//! oldest sequence still available, so the caller can decide to resume from
//! there knowingly).
//!
//! A durable subscriber (`Start::Durable`) also acknowledges: each
//! notification after its handler returned, and progress messages (which
//! move its cursor past notifications its filter skips). An acknowledgement
//! that fails is sent again before the next subscription, so the service's
//! stored cursor catches up with what was handled.

use std::future::Future;
use std::time::Duration;

use proto::assignment::v1 as pb;
use proto::assignment::v1::notification_service_client::NotificationServiceClient;
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::channel::{Authed, ConnectOptions, connect};

/// Where a subscriber starts the first time (later it resumes after its
/// cursor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// At the oldest notification the service still keeps.
    Oldest,
    /// At the head: only notifications written from now on.
    Head,
    /// After this sequence.
    After(u64),
    /// After the acknowledged cursor of the durable subscriber of this name
    /// (created on its first acknowledgement); the subscriber acknowledges
    /// what it handled.
    Durable(String),
}

/// How a [`Subscriber`] connects and what it asks for.
#[derive(Debug, Clone)]
pub struct SubscriberOptions {
    /// The assignment service's gRPC URL.
    pub url: String,
    /// Token and TLS.
    pub connect: ConnectOptions,
    /// Where to start.
    pub start: Start,
    /// Which notifications (none: all).
    pub filter: Option<pb::NotificationFilter>,
    /// The longest wait between attempts to subscribe again.
    pub max_backoff: Duration,
}

impl SubscriberOptions {
    /// Options for `url`, starting at `start`, every notification, waits of
    /// up to 10 s between attempts.
    pub fn new(url: impl Into<String>, start: Start) -> Self {
        Self {
            url: url.into(),
            connect: ConnectOptions::default(),
            start,
            filter: None,
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// What the handler is given.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A notification; its `sequence` is the successor of the last one
    /// handed over (or of the last progress).
    Notification(pb::Notification),
    /// The stream reached this sequence with nothing more for this
    /// subscriber (sent on idle streams and after filtered-out notifications).
    Progress(u64),
}

/// Why a subscriber stopped.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// The cursor is older than the oldest notification the service keeps:
    /// what lay between is gone. Start again `After(oldest - 1)` to go on
    /// knowingly.
    #[error(
        "the cursor {cursor:?} is behind retention; the oldest available notification is {oldest}"
    )]
    OutOfRange {
        /// The cursor that was asked for (`None`: the subscriber's start).
        cursor: Option<u64>,
        /// The oldest sequence still available.
        oldest: u64,
    },
    /// The service refused the subscription for a reason retrying cannot
    /// fix (authentication, permission, an invalid filter or name).
    #[error("the subscription was refused: {0}")]
    Refused(tonic::Status),
    /// The handler failed; the event it failed on is not acknowledged.
    #[error("the handler failed: {0}")]
    Handler(Box<dyn std::error::Error + Send + Sync>),
    /// The URL or the TLS set-up is invalid.
    #[error("cannot connect: {0}")]
    Connect(#[from] tonic::transport::Error),
}

/// A resumable subscription; see the module documentation.
#[derive(Debug)]
pub struct Subscriber {
    options: SubscriberOptions,
    client: NotificationServiceClient<Authed>,
    /// The last sequence handed to the handler (notification or progress).
    cursor: Option<u64>,
    /// A durable subscriber's handled position not yet acknowledged.
    unacknowledged: Option<u64>,
    /// Subscriptions made so far (1 after the first).
    subscriptions: u64,
}

/// The first wait before subscribing again.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

impl Subscriber {
    /// A subscriber; nothing connects until [`Self::run`].
    ///
    /// # Errors
    /// An invalid URL or TLS set-up.
    pub fn new(options: SubscriberOptions) -> Result<Self, SubscribeError> {
        let client = NotificationServiceClient::new(connect(&options.url, &options.connect)?)
            .max_decoding_message_size(16 * 1024 * 1024);
        Ok(Self {
            options,
            client,
            cursor: None,
            unacknowledged: None,
            subscriptions: 0,
        })
    }

    /// The last sequence handed to the handler.
    pub fn cursor(&self) -> Option<u64> {
        self.cursor
    }

    /// How many times it subscribed (more than 1: it resumed).
    pub fn subscriptions(&self) -> u64 {
        self.subscriptions
    }

    /// Subscribes and hands every event to `handler`, in order, resuming
    /// after broken streams, until the handler or the service says stop.
    ///
    /// # Errors
    /// See [`SubscribeError`]; a broken stream is never an error.
    pub async fn run<H, Fut, E>(&mut self, mut handler: H) -> Result<(), SubscribeError>
    where
        H: FnMut(Event) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.follow(&mut handler).await {
                Ok(Progressed::Yes) => backoff = FIRST_BACKOFF,
                Ok(Progressed::No) => {}
                Err(error) => return Err(error),
            }
            tracing::debug!(cursor = ?self.cursor, ?backoff, "notification stream broke; subscribing again");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.options.max_backoff);
        }
    }

    /// One subscription, until it breaks (`Ok`) or must stop (`Err`).
    async fn follow<H, Fut, E>(&mut self, handler: &mut H) -> Result<Progressed, SubscribeError>
    where
        H: FnMut(Event) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if self.flush_acknowledgement().await.is_err() {
            return Ok(Progressed::No);
        }
        let start = match (self.cursor, &self.options.start) {
            (Some(cursor), _) | (None, &Start::After(cursor)) => {
                pb::subscribe_request::Start::AfterSequence(cursor)
            }
            (None, Start::Head) => pb::subscribe_request::Start::StartAtHead(true),
            (None, Start::Durable(name)) => {
                pb::subscribe_request::Start::SubscriberName(name.clone())
            }
            (None, Start::Oldest) => return self.follow_from(None, handler).await,
        };
        self.follow_from(Some(start), handler).await
    }

    async fn follow_from<H, Fut, E>(
        &mut self,
        start: Option<pb::subscribe_request::Start>,
        handler: &mut H,
    ) -> Result<Progressed, SubscribeError>
    where
        H: FnMut(Event) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.subscriptions += 1;
        let request = pb::SubscribeRequest {
            start,
            filter: self.options.filter.clone(),
        };
        let mut stream = match self.client.subscribe(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => return self.stopped_by(status, Progressed::No),
        };
        let mut progressed = Progressed::No;
        loop {
            let message = match stream.message().await {
                Ok(Some(message)) => message,
                // The service never ends a stream with OK; treat it as broken.
                Ok(None) => return Ok(progressed),
                Err(status) => return self.stopped_by(status, progressed),
            };
            let (event, sequence) = match message.event {
                Some(pb::subscribe_response::Event::Notification(n)) => {
                    let sequence = n.sequence;
                    (Event::Notification(n), sequence)
                }
                Some(pb::subscribe_response::Event::Progress(p)) => {
                    if self.cursor.is_some_and(|c| c >= p.sequence) {
                        continue;
                    }
                    (Event::Progress(p.sequence), p.sequence)
                }
                None => continue,
            };
            handler(event)
                .await
                .map_err(|e| SubscribeError::Handler(e.into()))?;
            self.cursor = Some(sequence);
            progressed = Progressed::Yes;
            if matches!(self.options.start, Start::Durable(_)) {
                self.unacknowledged = Some(sequence);
                if self.flush_acknowledgement().await.is_err() {
                    return Ok(progressed);
                }
            }
        }
    }

    /// Acknowledges what was handled, if anything waits; an error means the
    /// service could not be reached (it is tried again later).
    async fn flush_acknowledgement(&mut self) -> Result<(), tonic::Status> {
        let (Start::Durable(name), Some(sequence)) = (&self.options.start, self.unacknowledged)
        else {
            return Ok(());
        };
        self.client
            .acknowledge_notifications(pb::AcknowledgeNotificationsRequest {
                subscriber_name: name.clone(),
                sequence,
            })
            .await?;
        self.unacknowledged = None;
        Ok(())
    }

    /// Whether a failed call ends the subscriber or only this subscription.
    fn stopped_by(
        &self,
        status: tonic::Status,
        progressed: Progressed,
    ) -> Result<Progressed, SubscribeError> {
        match status.code() {
            Code::OutOfRange => {
                let oldest = status
                    .get_details_error_info()
                    .and_then(|info| info.metadata.get("oldest_available_sequence").cloned())
                    .and_then(|v| v.parse().ok());
                match oldest {
                    Some(oldest) => Err(SubscribeError::OutOfRange {
                        cursor: self.cursor,
                        oldest,
                    }),
                    None => Err(SubscribeError::Refused(status)),
                }
            }
            Code::Unauthenticated
            | Code::PermissionDenied
            | Code::InvalidArgument
            | Code::NotFound
            | Code::FailedPrecondition
            | Code::Unimplemented => Err(SubscribeError::Refused(status)),
            _ => {
                tracing::debug!(%status, "notification stream ended");
                Ok(progressed)
            }
        }
    }
}

/// Whether a subscription handed anything over (to reset the backoff).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progressed {
    Yes,
    No,
}
