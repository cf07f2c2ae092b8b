//! `assignment.v1.SubscribeResponse`, written by hand so a server can send one
//! encoding of a notification to many streams.
//!
//! A notification fanned out to a hundred subscribers is the same message on
//! every stream. With the generated type each stream converted it into a
//! `SubscribeResponse` of its own (a handful of string copies) and encoded it;
//! the server now encodes it once ([`SubscribeResponse::encode_event`]) and
//! hands every stream a response wrapping those shared bytes
//! ([`SubscribeResponse::from_encoded`]), whose encoding is a copy.
//!
//! On the wire nothing changes: the type encodes and decodes exactly as the
//! generated one would (`build.rs` maps the proto message here with
//! `extern_path`; a test below checks the bytes), and clients only ever see the
//! decoded form.

use bytes::{Buf, BufMut, Bytes};
use prost::Message as _;
use prost::encoding::{DecodeContext, WireType};

/// Response of NotificationService.Subscribe: one stream message.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct SubscribeResponse {
    /// The message's payload. `None` in a response made by
    /// [`SubscribeResponse::from_encoded`], which holds it encoded.
    pub event: Option<subscribe_response::Event>,
    /// The complete encoding of this message when it was made from shared
    /// bytes; encoding writes these as they are.
    encoded: Option<Bytes>,
}

/// Nested message and enum types in `SubscribeResponse`.
pub mod subscribe_response {
    /// The message's payload.
    #[derive(Clone, PartialEq, Eq, Hash, prost::Oneof)]
    pub enum Event {
        /// A notification.
        #[prost(message, tag = "1")]
        Notification(crate::assignment::v1::Notification),
        /// A progress message on an idle stream.
        #[prost(message, tag = "2")]
        Progress(crate::assignment::v1::Progress),
    }
}

impl SubscribeResponse {
    /// The encoding of a response carrying `event`, to share between streams
    /// with [`SubscribeResponse::from_encoded`].
    pub fn encode_event(event: subscribe_response::Event) -> Bytes {
        Self::from(event).encode_to_vec().into()
    }

    /// A response whose encoding is `encoded`, which must come from
    /// [`SubscribeResponse::encode_event`] (or be an encoded
    /// `SubscribeResponse` otherwise). Its `event` is `None`: decode the bytes to
    /// read it.
    pub fn from_encoded(encoded: Bytes) -> Self {
        Self {
            event: None,
            encoded: Some(encoded),
        }
    }
}

impl From<subscribe_response::Event> for SubscribeResponse {
    fn from(event: subscribe_response::Event) -> Self {
        Self {
            event: Some(event),
            encoded: None,
        }
    }
}

impl std::fmt::Debug for SubscribeResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("SubscribeResponse");
        match &self.encoded {
            Some(bytes) => debug.field("encoded_len", &bytes.len()),
            None => debug.field("event", &self.event),
        };
        debug.finish()
    }
}

impl prost::Message for SubscribeResponse {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        match (&self.encoded, &self.event) {
            (Some(bytes), _) => buf.put_slice(bytes),
            (None, Some(event)) => event.encode(buf),
            (None, None) => {}
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        // Merging into shared bytes: decode them first, as if they had been
        // read before this field.
        if let Some(bytes) = self.encoded.take() {
            self.event = Self::decode(bytes)?.event;
        }
        match tag {
            1 | 2 => subscribe_response::Event::merge(&mut self.event, tag, wire_type, buf, ctx)
                .map_err(|mut error| {
                    error.push("SubscribeResponse", "event");
                    error
                }),
            _ => prost::encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        match (&self.encoded, &self.event) {
            (Some(bytes), _) => bytes.len(),
            (None, Some(event)) => event.encoded_len(),
            (None, None) => 0,
        }
    }

    fn clear(&mut self) {
        self.event = None;
        self.encoded = None;
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::subscribe_response::Event;
    use super::*;
    use crate::assignment::v1::{Notification, Progress};

    fn notification() -> Event {
        Event::Notification(Notification {
            sequence: 42,
            recipient_user_id: 7,
            organization_id: 1,
            group_id: 1_001,
            external_issue_key: "APP-1".into(),
            integration_id: "acme-jira".into(),
            kind: 1,
            message: "You were assigned to \"TypeError\" by Jira (APP-1).".into(),
            message_key: "group-1001-assignment".into(),
            update: true,
            create_time: Some(prost_types::Timestamp {
                seconds: 1_764_000_000,
                nanos: 5,
            }),
            activity_id: 9,
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        })
    }

    fn progress() -> Event {
        Event::Progress(Progress {
            sequence: 3,
            time: None,
        })
    }

    /// The generated type's encoding, by field: tag 1 or 2, length, message.
    fn by_hand(event: &Event) -> Vec<u8> {
        let (tag, body) = match event {
            Event::Notification(n) => (1, n.encode_to_vec()),
            Event::Progress(p) => (2, p.encode_to_vec()),
        };
        let mut bytes = vec![tag << 3 | 2];
        prost::encoding::encode_varint(body.len() as u64, &mut bytes);
        bytes.extend(body);
        bytes
    }

    #[test]
    fn shared_bytes_encode_and_decode_as_the_message_would() {
        for event in [notification(), progress()] {
            let expected = by_hand(&event);
            let direct = SubscribeResponse::from(event.clone());
            let shared =
                SubscribeResponse::from_encoded(SubscribeResponse::encode_event(event.clone()));
            assert_eq!(direct.encode_to_vec(), expected);
            assert_eq!(shared.encode_to_vec(), expected);
            assert_eq!(shared.encoded_len(), expected.len());
            assert_eq!(
                SubscribeResponse::decode(expected.as_slice()).expect("its own encoding decodes"),
                direct
            );
        }
        let empty = SubscribeResponse::default();
        assert!(empty.encode_to_vec().is_empty());
        assert_eq!(
            SubscribeResponse::decode(&[][..]).expect("nothing decodes as the empty message"),
            empty
        );
    }

    #[test]
    fn merging_into_shared_bytes_decodes_them_first() {
        let mut merged =
            SubscribeResponse::from_encoded(SubscribeResponse::encode_event(notification()));
        merged
            .merge(by_hand(&progress()).as_slice())
            .expect("a valid field merges");
        assert_eq!(merged, SubscribeResponse::from(progress()));
    }

    #[test]
    fn unknown_fields_are_skipped_and_bad_bytes_refused() {
        let mut with_unknown = by_hand(&progress());
        with_unknown.extend([3 << 3, 1]); // field 3, varint 1
        assert_eq!(
            SubscribeResponse::decode(with_unknown.as_slice()).expect("unknown fields are skipped"),
            SubscribeResponse::from(progress())
        );
        assert!(SubscribeResponse::decode(&[1 << 3 | 2, 9, 0][..]).is_err());
    }
}
