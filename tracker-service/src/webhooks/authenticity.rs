//! Verifying that a webhook comes from Jira, before anything is stored.
//!
//! - HMAC: `X-Hub-Signature: sha256=<hex>` must be the HMAC-SHA256 of the raw
//!   body with the integration's webhook secret (length checked, compared in
//!   constant time).
//! - Atlassian Connect: `Authorization: JWT <token>` (`Bearer` is accepted too),
//!   HS256 with the shared secret, not expired, not issued in the future, its
//!   `qsh` matching `POST&<path>&<sorted query>`.
//!
//! In two steps, so an unauthenticated client spends as little as possible:
//! [`verify_headers`] runs before the body is read (the whole Connect token, and
//! that an HMAC signature is there and well-formed), [`verify_body`] after (the
//! HMAC itself, which covers the body).

use hmac::{Hmac, Mac as _};
use http::HeaderMap;
use sha2::Sha256;

use crate::domain::{Credentials, Integration};
use crate::jira::connect_jwt::{self, JwtError};

/// Why a webhook was refused (answered 401; the text names no secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unauthentic {
    /// No `X-Hub-Signature` although the integration has a webhook secret.
    #[error("missing X-Hub-Signature header (sha256=<hex HMAC of the body>)")]
    MissingSignature,
    /// The header is not `sha256=` and 64 hex digits.
    #[error("malformed X-Hub-Signature header: expected sha256= and 64 hex digits")]
    MalformedSignature,
    /// The HMAC does not match.
    #[error("X-Hub-Signature does not match the body")]
    WrongSignature,
    /// No JWT although the integration is a Connect app.
    #[error("missing Authorization: JWT <token> header")]
    MissingToken,
    /// The JWT was refused.
    #[error("{0}")]
    Token(#[from] JwtError),
    /// No integration has the JWT's issuer as its Connect client key.
    #[error("no integration has the JWT's issuer as its Connect client key")]
    UnknownIssuer,
}

/// The token of an `Authorization: JWT …` (or `Bearer …`) header.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("jwt") || scheme.eq_ignore_ascii_case("bearer"))
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The 32 bytes of a well-formed `X-Hub-Signature: sha256=<64 hex digits>`.
fn signature(headers: &HeaderMap) -> Result<Vec<u8>, Unauthentic> {
    let header = headers
        .get("x-hub-signature")
        .ok_or(Unauthentic::MissingSignature)?
        .to_str()
        .map_err(|_| Unauthentic::MalformedSignature)?;
    let hex_digest = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(Unauthentic::MalformedSignature)?;
    let given = hex::decode(hex_digest).map_err(|_| Unauthentic::MalformedSignature)?;
    if given.len() != 32 {
        return Err(Unauthentic::MalformedSignature);
    }
    Ok(given)
}

fn check_hmac(secret: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), Unauthentic> {
    let given = signature(headers)?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&given)
        .map_err(|_| Unauthentic::WrongSignature)
}

/// Checks what can be checked before the body is read: the Connect token (it
/// covers the method, path and query, not the body) and the presence and form
/// of the HMAC signature.
///
/// # Errors
/// Why the delivery is not authentic.
pub fn verify_headers(
    integration: &Integration,
    headers: &HeaderMap,
    path: &str,
    query: &str,
) -> Result<(), Unauthentic> {
    if integration.webhook_secret.is_some() {
        signature(headers)?;
    }
    if let Credentials::Connect { shared_secret, .. } = &integration.credentials {
        let token = bearer_token(headers).ok_or(Unauthentic::MissingToken)?;
        connect_jwt::verify_request(
            token,
            shared_secret.expose(),
            "POST",
            path,
            query,
            chrono::Utc::now().timestamp(),
        )?;
    }
    Ok(())
}

/// Checks the HMAC over the body, when the integration has a webhook secret.
///
/// # Errors
/// Why the delivery is not authentic.
pub fn verify_body(
    integration: &Integration,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Unauthentic> {
    match &integration.webhook_secret {
        Some(secret) => check_hmac(secret.expose(), headers, body),
        None => Ok(()),
    }
}

/// Both steps, for callers that have the body already.
///
/// # Errors
/// Why the delivery is not authentic.
pub fn verify(
    integration: &Integration,
    headers: &HeaderMap,
    path: &str,
    query: &str,
    body: &[u8],
) -> Result<(), Unauthentic> {
    verify_headers(integration, headers, path, query)?;
    verify_body(integration, headers, body)
}

/// The `X-Hub-Signature` value for `body` (for clients and tests).
pub fn sign_body(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::BaseUrl;
    use service_runtime::ids::IntegrationId;
    use service_runtime::secret::Secret;

    fn integration(credentials: Credentials, webhook_secret: Option<&str>) -> Integration {
        Integration {
            id: IntegrationId::parse("acme").expect("id"),
            display_name: "Acme".into(),
            base_url: BaseUrl::parse("https://acme.atlassian.net").expect("url"),
            credentials,
            webhook_secret: webhook_secret.map(|s| Secret::new(s.to_owned())),
            email_api_allowed: false,
            group_link_template: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    fn token_auth() -> Credentials {
        Credentials::ApiToken {
            account_email: "bot@acme.example".into(),
            api_token: Secret::new("t".into()),
        }
    }

    #[test]
    fn hmac_signatures_are_checked() {
        let i = integration(token_auth(), Some("s3cret"));
        let body = br#"{"a":1}"#;
        let mut headers = HeaderMap::new();
        assert_eq!(
            verify(&i, &headers, "/", "", body),
            Err(Unauthentic::MissingSignature)
        );
        headers.insert(
            "x-hub-signature",
            sign_body("s3cret", body).parse().expect("header"),
        );
        assert_eq!(verify(&i, &headers, "/", "", body), Ok(()));
        assert_eq!(
            verify(&i, &headers, "/", "", b"{}"),
            Err(Unauthentic::WrongSignature)
        );
        headers.insert(
            "x-hub-signature",
            sign_body("other", body).parse().expect("header"),
        );
        assert_eq!(
            verify(&i, &headers, "/", "", body),
            Err(Unauthentic::WrongSignature)
        );
        headers.insert("x-hub-signature", "sha256=abcd".parse().expect("header"));
        assert_eq!(
            verify(&i, &headers, "/", "", body),
            Err(Unauthentic::MalformedSignature)
        );
        headers.insert("x-hub-signature", "sha1=abcd".parse().expect("header"));
        assert_eq!(
            verify(&i, &headers, "/", "", body),
            Err(Unauthentic::MalformedSignature)
        );
    }

    #[test]
    fn connect_tokens_are_checked() {
        let i = integration(
            Credentials::Connect {
                client_key: "jira:abc".into(),
                shared_secret: Secret::new("shared".into()),
            },
            None,
        );
        let now = chrono::Utc::now().timestamp();
        let token =
            connect_jwt::sign_request("jira:abc", "shared", "POST", "/webhooks/jira", "", now);
        let mut headers = HeaderMap::new();
        assert_eq!(
            verify(&i, &headers, "/webhooks/jira", "", b"{}"),
            Err(Unauthentic::MissingToken)
        );
        headers.insert(
            http::header::AUTHORIZATION,
            format!("JWT {token}").parse().expect("header"),
        );
        assert_eq!(verify(&i, &headers, "/webhooks/jira", "", b"{}"), Ok(()));
        headers.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("header"),
        );
        assert_eq!(verify(&i, &headers, "/webhooks/jira/", "", b"{}"), Ok(()));
        assert_eq!(
            verify(&i, &headers, "/webhooks/jira/acme", "", b"{}"),
            Err(Unauthentic::Token(JwtError::QueryHash))
        );
    }
}
