//! The gRPC request path of both services: any bytes a caller sends as a
//! request message are decoded (prost, as the servers' codec does) and, when
//! they decode, converted into domain values by the handlers' `TryFrom`
//! conversions; every input is accepted or refused, none panics or allocates
//! without bound.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    assignment_service::api::fuzz_requests(data);
    tracker_service::api::fuzz_requests(data);
});
