//! The process's TLS crypto provider. reqwest 0.13 (under the S3 client and
//! the OTLP exporter) is built with rustls but without a provider of its
//! own, the default one (aws-lc) being a C build of minutes; ring, which we
//! have anyway, is installed instead. Every reqwest 0.13 client must be
//! built after [`install_crypto_provider`] ran (reqwest panics otherwise),
//! so each place that builds one calls it first.

/// Installs ring as the process's rustls provider; idempotent, and a
/// provider installed before (by us or anyone) is kept.
pub fn install_crypto_provider() {
    // rustls deprecates ring's provider for lacking post-quantum key
    // exchange; classical ECDHE towards the storage and the trace
    // collector is the trade-off taken for the build time.
    #[allow(deprecated)]
    let ring = rustls::crypto::ring::default_provider();
    // An error only means a provider is installed already.
    let _ = ring.install_default();
}

#[cfg(test)]
mod tests {
    #[test]
    fn installing_twice_is_harmless() {
        super::install_crypto_provider();
        super::install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
