//! Webhook parsing with authenticity checks: whatever arrives, classifying the
//! body and verifying an HMAC signature or a Connect JWT never panics.
//!
//! Input layout: the first byte splits the rest into a header value (signature or
//! token) and the body.

#![no_main]

use libfuzzer_sys::fuzz_target;
use service_runtime::secret::Secret;
use service_runtime::ids::IntegrationId;
use tracker_service::domain::delivery::classify;
use tracker_service::domain::{BaseUrl, Credentials, Integration};
use tracker_service::webhooks::authenticity::verify;

fn integration(connect: bool) -> Integration {
    let credentials = if connect {
        Credentials::Connect {
            client_key: "jira:fuzz".into(),
            shared_secret: Secret::new("shared-secret".into()),
        }
    } else {
        Credentials::PersonalAccessToken {
            token: Secret::new("token".into()),
        }
    };
    Integration {
        id: IntegrationId::parse("fuzz").expect("valid id"),
        display_name: "fuzz".into(),
        base_url: BaseUrl::parse("https://fuzz.example").expect("valid url"),
        credentials,
        webhook_secret: (!connect).then(|| Secret::new("webhook-secret".into())),
        email_api_allowed: false,
        group_link_template: None,
        created_at: chrono::Utc::now(),
        updated_at: chrono::Utc::now(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let split = usize::from(split).min(rest.len());
    let (header, body) = rest.split_at(split);
    let _ = classify(body);
    let header = String::from_utf8_lossy(header);
    for connect in [false, true] {
        let mut headers = http::HeaderMap::new();
        if let Ok(value) = http::HeaderValue::from_str(&header) {
            headers.insert("x-hub-signature", value.clone());
            headers.insert(http::header::AUTHORIZATION, value);
        }
        let _ = verify(&integration(connect), &headers, "/webhooks/jira/fuzz", "a=1", body);
    }
});
