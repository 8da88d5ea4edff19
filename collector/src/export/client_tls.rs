//! TLS for `https://` OTLP endpoints: rustls (ring) trusting Mozilla's root
//! certificates, plus the CA file of --otlp-certificate (a private CA or a
//! self-signed collector).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The PEM certificates of a CA file; an error if it holds none.
pub fn load_ca_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let count = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a PEM certificate file", path.display()))?
        .len();
    anyhow::ensure!(count > 0, "{} holds no PEM certificate", path.display());
    Ok(pem)
}

/// gRPC (tonic) TLS settings.
pub fn grpc_tls(extra_ca: Option<&[u8]>) -> tonic::transport::ClientTlsConfig {
    let mut config = tonic::transport::ClientTlsConfig::new().with_webpki_roots();
    if let Some(pem) = extra_ca {
        config = config.ca_certificate(tonic::transport::Certificate::from_pem(pem));
    }
    config
}

/// A connector for HTTP/protobuf that speaks TLS to https:// URLs and plain
/// HTTP to http:// ones.
pub fn https_connector(extra_ca: Option<&[u8]>) -> anyhow::Result<HttpsConnector<HttpConnector>> {
    let mut roots =
        rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_ca {
        for cert in CertificateDer::pem_slice_iter(pem) {
            roots
                .add(cert.context("parsing the OTLP CA certificate")?)
                .context("adding the OTLP CA certificate")?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_files_must_hold_certificates() {
        let dir = std::env::temp_dir().join(format!("sonde-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = load_ca_file(&empty).unwrap_err().to_string();
        assert!(err.contains("holds no PEM certificate"), "{err}");
        let err = load_ca_file(&dir.join("missing.pem"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("reading"), "{err}");
        assert!(https_connector(None).is_ok());
    }
}
