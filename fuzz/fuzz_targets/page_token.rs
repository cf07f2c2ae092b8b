//! Page-token decoding: any string a caller sends as `page_token` is refused or
//! accepted without panicking or allocating without bound.

#![no_main]

use libfuzzer_sys::fuzz_target;
use service_runtime::pagination::{PageRequest, fuzz_decode};

fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    fuzz_decode(&token);
    let _ = PageRequest::<i64>::parse(10, &token, "filters");
    let _ = PageRequest::<String>::parse(-1, &token, "");
});
