//! TLS set-up shared by both services.
//!
//! The workspace uses one rustls crypto provider (`ring`, which the database
//! driver already builds) rather than two; rustls then needs it installed as the
//! process default before any client or server is built.

/// Installs `ring` as the process-wide rustls provider. Idempotent.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider was installed first; that one serves too.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
