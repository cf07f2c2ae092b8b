//! Pagination (AIP-158): `page_size`, `page_token`, `next_page_token`.
//!
//! A page token is opaque to callers: URL-safe base64 of a version byte, a
//! fingerprint of the request's filters, and the cursor (the sort key of the last
//! item returned). The fingerprint makes a token used with different filters an
//! INVALID_ARGUMENT instead of a silently wrong page. Tokens are bounded in size and
//! decoding never panics (it is fuzzed).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

use crate::status::FieldViolation;

/// Page size when the caller sends 0.
pub const DEFAULT_PAGE_SIZE: u64 = 100;
/// Largest page; larger requests are coerced down (AIP-158).
pub const MAX_PAGE_SIZE: u64 = 1000;
/// Longest token accepted, in characters.
pub const MAX_TOKEN_LEN: usize = 1024;

const VERSION: u8 = 1;
const FINGERPRINT_LEN: usize = 8;

/// A sort key a list can resume after.
pub trait Cursor: Sized {
    /// The cursor as text, inside the token.
    fn encode(&self) -> String;
    /// Reads a cursor back; `None` if it is not one.
    fn decode(s: &str) -> Option<Self>;
}

impl Cursor for i64 {
    fn encode(&self) -> String {
        self.to_string()
    }
    fn decode(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

impl Cursor for String {
    fn encode(&self) -> String {
        self.clone()
    }
    fn decode(s: &str) -> Option<Self> {
        Some(s.to_owned())
    }
}

/// Two-part cursor, for lists sorted by a pair of keys.
impl<A: Cursor, B: Cursor> Cursor for (A, B) {
    fn encode(&self) -> String {
        let a = self.0.encode();
        format!("{}:{a}{}", a.len(), self.1.encode())
    }
    fn decode(s: &str) -> Option<Self> {
        let (len, rest) = s.split_once(':')?;
        let len: usize = len.parse().ok()?;
        let a = rest.get(..len)?;
        let b = rest.get(len..)?;
        Some((A::decode(a)?, B::decode(b)?))
    }
}

/// One page request, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest<C> {
    /// How many items to return at most.
    pub size: u64,
    /// Resume after this cursor; `None` for the first page.
    pub after: Option<C>,
    fingerprint: [u8; FINGERPRINT_LEN],
}

impl<C: Cursor> PageRequest<C> {
    /// Parses `page_size` and `page_token`. `filters` describes the request's
    /// filters (any stable text); a token is only valid with the same filters.
    ///
    /// # Errors
    /// A violation of `page_size` (negative) or `page_token` (malformed, or made
    /// for other filters).
    pub fn parse(page_size: i32, page_token: &str, filters: &str) -> Result<Self, FieldViolation> {
        let size = match page_size {
            n if n < 0 => {
                return Err(FieldViolation::new("page_size", "must not be negative"));
            }
            0 => DEFAULT_PAGE_SIZE,
            n => u64::try_from(n).unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE),
        };
        let fingerprint = fingerprint(filters);
        let after = if page_token.is_empty() {
            None
        } else {
            Some(decode_token(page_token, &fingerprint)?)
        };
        Ok(Self {
            size,
            after,
            fingerprint,
        })
    }

    /// The same request with its size coerced down to `max` (a list whose items
    /// are large pages fewer of them, so a page stays under the message limit).
    #[must_use]
    pub fn at_most(mut self, max: u64) -> Self {
        self.size = self.size.min(max.max(1));
        self
    }

    /// How many rows to fetch: one more than the page, to know whether another
    /// page follows.
    pub fn fetch_limit(&self) -> u64 {
        self.size + 1
    }

    /// Cuts `rows` (fetched with [`Self::fetch_limit`]) to the page and returns
    /// the token of the next page, empty on the last page.
    pub fn finish<T>(&self, rows: &mut Vec<T>, cursor_of: impl Fn(&T) -> C) -> String {
        let size = usize::try_from(self.size).unwrap_or(usize::MAX);
        if rows.len() > size {
            rows.truncate(size);
            rows.last()
                .map(|last| encode_token(&self.fingerprint, &cursor_of(last)))
                .unwrap_or_default()
        } else {
            String::new()
        }
    }
}

fn fingerprint(filters: &str) -> [u8; FINGERPRINT_LEN] {
    let digest = Sha256::digest(filters.as_bytes());
    let mut out = [0; FINGERPRINT_LEN];
    out.copy_from_slice(&digest[..FINGERPRINT_LEN]);
    out
}

fn encode_token<C: Cursor>(fingerprint: &[u8; FINGERPRINT_LEN], cursor: &C) -> String {
    let cursor = cursor.encode();
    let mut bytes = Vec::with_capacity(1 + FINGERPRINT_LEN + cursor.len());
    bytes.push(VERSION);
    bytes.extend_from_slice(fingerprint);
    bytes.extend_from_slice(cursor.as_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_token<C: Cursor>(
    token: &str,
    fingerprint: &[u8; FINGERPRINT_LEN],
) -> Result<C, FieldViolation> {
    let bad = |why: &str| FieldViolation::new("page_token", why);
    if token.len() > MAX_TOKEN_LEN {
        return Err(bad("is too long to be a page token"));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad("is not a page token returned by this API"))?;
    let (&version, rest) = bytes
        .split_first()
        .ok_or_else(|| bad("is not a page token returned by this API"))?;
    if version != VERSION || rest.len() < FINGERPRINT_LEN {
        return Err(bad("is not a page token returned by this API"));
    }
    let (print, cursor) = rest.split_at(FINGERPRINT_LEN);
    if print != fingerprint {
        return Err(bad(
            "was returned for a request with other filters; repeat the first request's filters or start over without a token",
        ));
    }
    let cursor = std::str::from_utf8(cursor)
        .ok()
        .and_then(C::decode)
        .ok_or_else(|| bad("is not a page token returned by this API"))?;
    Ok(cursor)
}

/// Decodes a token without knowing the filters: for the fuzz target, which checks
/// that no input panics or allocates without bound.
pub fn fuzz_decode(token: &str) {
    let _ = decode_token::<i64>(token, &fingerprint(""));
    let _ = decode_token::<(i64, String)>(token, &fingerprint(""));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_defaults_and_caps() {
        let p = PageRequest::<i64>::parse(0, "", "").expect("valid");
        assert_eq!(p.size, DEFAULT_PAGE_SIZE);
        let p = PageRequest::<i64>::parse(5000, "", "").expect("valid");
        assert_eq!(p.size, MAX_PAGE_SIZE);
        let err = PageRequest::<i64>::parse(-1, "", "").expect_err("negative");
        assert_eq!(err.field, "page_size");
    }

    #[test]
    fn tokens_resume_after_the_last_item() {
        let p = PageRequest::<i64>::parse(2, "", "org=1").expect("valid");
        let mut rows = vec![10_i64, 11, 12];
        let token = p.finish(&mut rows, |r| *r);
        assert_eq!(rows, vec![10, 11]);
        let next = PageRequest::<i64>::parse(2, &token, "org=1").expect("valid");
        assert_eq!(next.after, Some(11));
        let mut last = vec![12_i64];
        assert_eq!(next.finish(&mut last, |r| *r), "");
    }

    #[test]
    fn tokens_are_bound_to_filters() {
        let p = PageRequest::<i64>::parse(1, "", "org=1").expect("valid");
        let token = p.finish(&mut vec![1_i64, 2], |r| *r);
        let err = PageRequest::<i64>::parse(1, &token, "org=2").expect_err("other filters");
        assert!(err.description.contains("other filters"));
    }

    #[test]
    fn garbage_tokens_are_refused() {
        for bad in ["!!!", "AA", "", &"A".repeat(2000)] {
            if bad.is_empty() {
                continue;
            }
            assert!(PageRequest::<i64>::parse(1, bad, "").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pair_cursors_round_trip() {
        let c = (42_i64, "a:b".to_owned());
        assert_eq!(<(i64, String)>::decode(&c.encode()), Some(c));
        assert_eq!(<(i64, String)>::decode("99:x"), None);
    }
}
