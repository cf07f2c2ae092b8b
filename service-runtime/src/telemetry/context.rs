//! W3C trace context (`traceparent`) between our spans and the rows and
//! messages that carry it across queues, processes and streams.
//!
//! A webhook's trace context is stored with the delivery, sent to the
//! assignment service as gRPC metadata, and stored with each notification, so
//! work that resumes later (a dispatcher after a restart, a subscriber reading
//! the stream) continues the same trace. With export on, the stored context is
//! the span's own, and spans resumed from a row are made its children
//! ([`set_parent`]); a span doing the work of many (a group commit) is the
//! child of the first and links the others ([`group_span`]). With export off,
//! every function here is a no-op and the context passes through unchanged.

use std::sync::atomic::{AtomicBool, Ordering};

use tracing::Span;

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported; spans that exist only for traces (per
/// transaction, per delivered notification) are created only then.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

#[cfg_attr(not(feature = "otel"), allow(dead_code))]
pub(super) fn set_exporting(on: bool) {
    EXPORTING.store(on, Ordering::Relaxed);
}

/// The most contexts a group span links to (the rest are counted only).
pub const MAX_LINKS: usize = 128;

/// The parts of a well-formed `traceparent` (version 00): trace id, span id,
/// flags. `None` for anything else, including all-zero ids.
pub fn parse(traceparent: &str) -> Option<(u128, u64, u8)> {
    let mut parts = traceparent.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || version != "00"
        || trace.len() != 32
        || span.len() != 16
        || flags.len() != 2
        || ![trace, span, flags].iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
    {
        return None;
    }
    let trace = u128::from_str_radix(trace, 16).ok()?;
    let span = u64::from_str_radix(span, 16).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    (trace != 0 && span != 0).then_some((trace, span, flags))
}

/// A `traceparent` from its parts.
pub fn format(trace: u128, span: u64, flags: u8) -> String {
    format!("00-{trace:032x}-{span:016x}-{flags:02x}")
}

/// Makes `span` a child of `traceparent` (ignored when malformed or when not
/// exporting).
pub fn set_parent(span: &Span, traceparent: &str) {
    #[cfg(feature = "otel")]
    if exporting()
        && let Some(remote) = span_context(traceparent)
    {
        use opentelemetry::trace::TraceContextExt as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let parent = opentelemetry::Context::new().with_remote_span_context(remote);
        let _ = span.set_parent(parent);
    }
    #[cfg(not(feature = "otel"))]
    let _ = (span, traceparent);
}

/// Links `span` to `traceparent` (ignored when malformed or when not
/// exporting).
pub fn add_link(span: &Span, traceparent: &str) {
    #[cfg(feature = "otel")]
    if exporting()
        && let Some(remote) = span_context(traceparent)
    {
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        span.add_link(remote);
    }
    #[cfg(not(feature = "otel"))]
    let _ = (span, traceparent);
}

/// `span`'s own context as a `traceparent`, when exporting.
pub fn of(span: &Span) -> Option<String> {
    #[cfg(feature = "otel")]
    if exporting() && !span.is_none() {
        use opentelemetry::trace::TraceContextExt as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let context = span.context();
        let own = context.span().span_context().clone();
        if own.is_valid() {
            return Some(format(
                u128::from_be_bytes(own.trace_id().to_bytes()),
                u64::from_be_bytes(own.span_id().to_bytes()),
                own.trace_flags().to_u8(),
            ));
        }
    }
    #[cfg(not(feature = "otel"))]
    let _ = span;
    None
}

/// The current span's context as a `traceparent`, or `fallback` (the context
/// that came with the request) when not exporting.
pub fn current_or(fallback: &str) -> String {
    of(&Span::current()).unwrap_or_else(|| fallback.to_owned())
}

/// A span doing the work of many (a group commit): the child of the first
/// context, linked to the others (at most [`MAX_LINKS`]); a disabled span when
/// not exporting, so the work is not traced at all.
pub fn group_span<'a>(name: &'static str, contexts: impl IntoIterator<Item = &'a str>) -> Span {
    if !exporting() {
        return Span::none();
    }
    let span = tracing::info_span!(
        "group",
        otel.name = name,
        group.size = tracing::field::Empty,
    );
    let mut size = 0_usize;
    for (i, context) in contexts.into_iter().enumerate() {
        if i == 0 {
            set_parent(&span, context);
        } else if i <= MAX_LINKS {
            add_link(&span, context);
        }
        size = i + 1;
    }
    span.record("group.size", size);
    span
}

#[cfg(feature = "otel")]
fn span_context(traceparent: &str) -> Option<opentelemetry::trace::SpanContext> {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    let (trace, span, flags) = parse(traceparent)?;
    Some(SpanContext::new(
        TraceId::from_bytes(trace.to_be_bytes()),
        SpanId::from_bytes(span.to_be_bytes()),
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_parse_only_when_well_formed() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = parse(good);
        assert_eq!(
            parsed,
            Some((0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7, 1))
        );
        let (t, s, f) = parsed.unwrap_or_default();
        assert_eq!(format(t, s, f), good);
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-00",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn nothing_is_traced_when_not_exporting() {
        assert!(!exporting());
        assert!(
            group_span(
                "x",
                ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"]
            )
            .is_none()
        );
        assert_eq!(current_or("given"), "given");
    }
}
