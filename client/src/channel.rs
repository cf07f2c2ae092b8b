//! Connecting: a lazily connected channel to a service, every call carrying
//! the bearer token when one is given.

use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// How to reach a service.
#[derive(Clone, Default)]
pub struct ConnectOptions {
    /// The bearer token presented on every call, when the service requires one.
    pub token: Option<String>,
    /// A private CA's PEM certificate for `https://` URLs (the system's roots
    /// otherwise are not loaded: give the CA that signed the service).
    pub ca_pem: Option<Vec<u8>>,
    /// How long establishing a connection may take (5 s when unset).
    pub connect_timeout: Option<Duration>,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// Adds `authorization: Bearer …` to every call.
#[derive(Clone, Debug)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl Interceptor for BearerToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        Ok(request)
    }
}

/// A channel whose calls carry the token: what the generated clients take,
/// e.g. `NotificationServiceClient::new(connect(url, &options)?)`.
pub type Authed = InterceptedService<Channel, BearerToken>;

/// A lazily connected channel to `url` (`http://host:port` or
/// `https://host:port`); it connects on first use and reconnects after
/// failures.
///
/// # Errors
/// An invalid URL, token or certificate.
pub fn connect(url: &str, options: &ConnectOptions) -> Result<Authed, tonic::transport::Error> {
    let mut endpoint = Endpoint::from_shared(url.to_owned())?
        .connect_timeout(options.connect_timeout.unwrap_or(Duration::from_secs(5)))
        .tcp_nodelay(true);
    if url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = &options.ca_pem {
            tls = tls.ca_certificate(Certificate::from_pem(ca));
        }
        endpoint = endpoint.tls_config(tls)?;
    }
    let token = options.token.as_ref().and_then(|t| {
        let mut value: MetadataValue<Ascii> = format!("Bearer {t}").parse().ok()?;
        value.set_sensitive(true);
        Some(value)
    });
    Ok(InterceptedService::new(
        endpoint.connect_lazy(),
        BearerToken(token),
    ))
}
