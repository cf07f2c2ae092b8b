//! Time conversions at the edge: `google.protobuf.Timestamp` to and from `chrono`.

use chrono::{DateTime, TimeZone as _, Utc};
use prost_types::Timestamp;

/// Converts a UTC time into a protobuf timestamp.
pub fn to_timestamp(time: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// Converts a protobuf timestamp into UTC time; `None` when it is out of range
/// or its nanoseconds are not in `0..1_000_000_000`.
pub fn from_timestamp(ts: &Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(ts.nanos).ok()?;
    if nanos >= 1_000_000_000 {
        return None;
    }
    Utc.timestamp_opt(ts.seconds, nanos).single()
}

/// The current time truncated to microseconds, the precision both databases keep,
/// so a value read back equals the value written.
pub fn now() -> DateTime<Utc> {
    truncate_to_micros(Utc::now())
}

/// Drops sub-microsecond precision.
pub fn truncate_to_micros(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(time.timestamp_micros()).unwrap_or(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_round_trips() {
        let t = now();
        assert_eq!(from_timestamp(&to_timestamp(t)), Some(t));
    }

    #[test]
    fn bad_nanos_are_refused() {
        let ts = Timestamp {
            seconds: 1,
            nanos: -1,
        };
        assert_eq!(from_timestamp(&ts), None);
        let ts = Timestamp {
            seconds: 1,
            nanos: 1_000_000_000,
        };
        assert_eq!(from_timestamp(&ts), None);
    }
}
