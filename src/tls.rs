//! TLS for outbound requests: rustls with the ring provider, chosen once per process (reqwest is
//! built without a provider of its own, to keep aws-lc's C build out of the tree).

pub fn install_crypto_provider() {
    // `Err` means a provider is installed already, which is all that is needed.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
