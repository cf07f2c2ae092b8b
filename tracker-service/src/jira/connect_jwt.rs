//! Atlassian Connect JWTs: signing our requests to Jira, and verifying Jira's
//! webhooks.
//!
//! A Connect JWT is HS256 with the installation's shared secret. Its `qsh` claim
//! binds it to one request: the SHA-256 (hex) of `METHOD&path&query`, where the
//! path has its trailing `/` removed and the query is sorted by key, `jwt`
//! dropped, keys and values percent-encoded (RFC 3986 unreserved characters kept,
//! space as `%20`), and repeated values sorted and joined with `,` (Sentry's
//! `get_query_hash`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// How long a token we sign stays valid.
pub const TOKEN_LIFETIME_SECS: i64 = 300;

/// Leeway for clock skew when checking `exp` (and `iat`) of Jira's tokens.
pub const CLOCK_SKEW_SECS: i64 = 60;

/// Percent-encodes as Atlassian's canonical request does.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Which query parameters count in the canonical request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlankValues {
    /// Dropped (Sentry's outbound signing).
    Drop,
    /// Kept (inbound verification).
    Keep,
}

/// The canonical request string: `METHOD&path&sorted-query`.
pub fn canonical_request(method: &str, path: &str, query: &str, blanks: BlankValues) -> String {
    let path = path.trim_end_matches('/');
    let mut params: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(key);
        let value = percent_decode(value);
        if key == "jwt" || (blanks == BlankValues::Drop && value.is_empty()) {
            continue;
        }
        params.entry(key).or_default().push(value);
    }
    let query = params
        .into_iter()
        .map(|(key, mut values)| {
            values.sort();
            let values: Vec<String> = values.iter().map(|v| percent_encode(v)).collect();
            format!("{}={}", percent_encode(&key), values.join(","))
        })
        .collect::<Vec<_>>()
        .join("&");
    format!("{}&{path}&{query}", method.to_uppercase())
}

/// The `qsh` claim of a request.
pub fn query_hash(method: &str, path: &str, query: &str, blanks: BlankValues) -> String {
    hex::encode(Sha256::digest(
        canonical_request(method, path, query, blanks).as_bytes(),
    ))
}

#[derive(Serialize, Deserialize)]
struct Header {
    typ: String,
    alg: String,
}

/// The claims of a Connect JWT (in the order Atlassian and Sentry write them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer: our app key when we sign, the installation's client key when Jira
    /// signs.
    pub iss: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// The query hash binding the token to one request.
    pub qsh: String,
}

fn sign(input: &str, secret: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(input.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Signs a token for `METHOD path?query`, issued by `issuer` at `now`.
pub fn sign_request(
    issuer: &str,
    secret: &str,
    method: &str,
    path: &str,
    query: &str,
    now: i64,
) -> String {
    let header = Header {
        typ: "JWT".into(),
        alg: "HS256".into(),
    };
    let claims = Claims {
        iss: issuer.to_owned(),
        iat: now,
        exp: now + TOKEN_LIFETIME_SECS,
        qsh: query_hash(method, path, query, BlankValues::Drop),
    };
    let input = format!("{}.{}", b64_json(&header), b64_json(&claims));
    let signature = URL_SAFE_NO_PAD.encode(sign(&input, secret.as_bytes()));
    format!("{input}.{signature}")
}

fn b64_json<T: Serialize>(value: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default())
}

/// Why a token was refused; the text is returned to the sender (it names no
/// secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts with JSON inside.
    #[error("the JWT is malformed")]
    Malformed,
    /// `alg` is not HS256.
    #[error("the JWT algorithm must be HS256")]
    Algorithm,
    /// The signature does not match the shared secret.
    #[error("the JWT signature is invalid")]
    Signature,
    /// `exp` is in the past.
    #[error("the JWT has expired")]
    Expired,
    /// `iat` is in the future (beyond the allowed clock skew).
    #[error("the JWT is issued in the future")]
    IssuedInFuture,
    /// `qsh` does not match this request.
    #[error("the JWT query hash does not match this request")]
    QueryHash,
}

/// Reads a token's claims without verifying it (to find the integration by
/// `iss` before its secret is known).
///
/// # Errors
/// When the token is malformed.
pub fn unverified_claims(token: &str) -> Result<Claims, JwtError> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| JwtError::Malformed)?;
    serde_json::from_slice(&payload).map_err(|_| JwtError::Malformed)
}

/// Verifies a token Jira sent with `METHOD path?query`: HS256 with `secret`, not
/// expired at `now`, and a `qsh` matching the request.
///
/// # Errors
/// Why the token is refused.
pub fn verify_request(
    token: &str,
    secret: &str,
    method: &str,
    path: &str,
    query: &str,
    now: i64,
) -> Result<Claims, JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header: Header = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or(JwtError::Malformed)?;
    if header.alg != "HS256" {
        return Err(JwtError::Algorithm);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| JwtError::Malformed)?;
    let expected = sign(
        &format!("{}.{payload}", token.split('.').next().unwrap_or_default()),
        secret.as_bytes(),
    );
    if !constant_time_eq(&signature, &expected) {
        return Err(JwtError::Signature);
    }
    let claims = unverified_claims(token)?;
    if claims.exp + CLOCK_SKEW_SECS < now {
        return Err(JwtError::Expired);
    }
    if claims.iat > now + CLOCK_SKEW_SECS {
        return Err(JwtError::IssuedInFuture);
    }
    let want = query_hash(method, path, query, BlankValues::Keep);
    if !constant_time_eq(claims.qsh.as_bytes(), want.as_bytes()) {
        return Err(JwtError::QueryHash);
    }
    Ok(claims)
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sentry's vector for an outbound request (fixtures/jira/README.md).
    #[test]
    fn outbound_token_matches_sentrys_vector() {
        let now = 1_672_534_861; // 2023-01-01T01:01:01Z
        let canonical = canonical_request(
            "GET",
            "/rest/api/2/serverInfo",
            "query=1&user=me",
            BlankValues::Drop,
        );
        assert_eq!(canonical, "GET&/rest/api/2/serverInfo&query=1&user=me");
        assert_eq!(
            query_hash(
                "GET",
                "/rest/api/2/serverInfo",
                "query=1&user=me",
                BlankValues::Drop
            ),
            "de952010640ab2cfd2062781b54e94b78fce16731006db7deeaffceb425fe242"
        );
        let token = sign_request(
            "testserver.jira",
            "a-super-secret-key-from-atlassian",
            "GET",
            "/rest/api/2/serverInfo",
            "query=1&user=me",
            now,
        );
        assert_eq!(
            token,
            "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJ0ZXN0c2VydmVyLmppcmEiLCJpYXQiOjE2NzI1MzQ4NjEsImV4cCI6MTY3MjUzNTE2MSwicXNoIjoiZGU5NTIwMTA2NDBhYjJjZmQyMDYyNzgxYjU0ZTk0Yjc4ZmNlMTY3MzEwMDZkYjdkZWVhZmZjZWI0MjVmZTI0MiJ9.tydfCeXBICtX_xtgsOEiDJFmVPo6MmaAh1Bojouprjc"
        );
    }

    /// Sentry's vector for an inbound request.
    #[test]
    fn inbound_query_hash_matches_sentrys_vector() {
        assert_eq!(
            canonical_request(
                "GET",
                "/extensions/jira/configure/",
                "a=1&b=2&c=3&test=pass",
                BlankValues::Keep
            ),
            "GET&/extensions/jira/configure&a=1&b=2&c=3&test=pass"
        );
        assert_eq!(
            query_hash(
                "GET",
                "/extensions/jira/configure/",
                "test=pass&c=3&b=2&a=1",
                BlankValues::Keep
            ),
            "36f43b88d6a8cdf89bb8f744e2378bb0ceb6378e80ab0b513082a8b72396bccc"
        );
    }

    #[test]
    fn canonicalisation_rules() {
        assert_eq!(
            canonical_request(
                "post",
                "/a/b/",
                "z=1&jwt=x&a=b%20c&a=a&e=",
                BlankValues::Drop
            ),
            "POST&/a/b&a=a,b%20c&z=1"
        );
        assert_eq!(
            canonical_request("GET", "/p", "k=%2F~&e=", BlankValues::Keep),
            "GET&/p&e=&k=%2F~"
        );
    }

    #[test]
    fn verification_checks_signature_expiry_and_query_hash() {
        let now = 1_700_000_000;
        let token = sign_request("client-key", "secret", "POST", "/webhooks/jira", "", now);
        assert!(verify_request(&token, "secret", "POST", "/webhooks/jira", "", now).is_ok());
        assert_eq!(
            verify_request(&token, "other", "POST", "/webhooks/jira", "", now),
            Err(JwtError::Signature)
        );
        assert_eq!(
            verify_request(&token, "secret", "POST", "/webhooks/jira/x", "", now),
            Err(JwtError::QueryHash)
        );
        assert_eq!(
            verify_request(&token, "secret", "POST", "/webhooks/jira", "", now + 1000),
            Err(JwtError::Expired)
        );
        assert_eq!(
            verify_request("a.b", "secret", "POST", "/", "", now),
            Err(JwtError::Malformed)
        );
        assert_eq!(
            unverified_claims(&token).map(|c| c.iss),
            Ok("client-key".to_owned())
        );
    }
}
