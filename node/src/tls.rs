//! HTTPS for the node's HTTP clients (the hub, the 0-hub, rfs http stores): rustls with the
//! ring provider, the platform's roots, plus the certificates of `--ca FILE` for a private CA.

use std::path::{Path, PathBuf};
use std::sync::Once;

use crate::error::{Error, Result};

/// Largest `--ca` file read.
const MAX_CA_FILE: usize = 1024 * 1024;

/// What the HTTP clients trust beyond the platform's roots.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    extra: Vec<reqwest::Certificate>,
    /// The file the extra roots came from, for messages.
    ca: Option<PathBuf>,
}

impl Tls {
    /// The platform's roots plus, with `ca`, every certificate of that PEM file.
    pub fn load(ca: Option<&Path>) -> Result<Tls> {
        let Some(path) = ca else {
            return Ok(Tls::default());
        };
        let pem = crate::fsutil::read_capped(path, MAX_CA_FILE).map_err(|e| {
            Error::new(format!(
                "cannot read --ca {} ({e}); give a PEM file of CA certificates",
                path.display()
            ))
        })?;
        let extra = reqwest::Certificate::from_pem_bundle(&pem)
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                Error::new(format!(
                    "--ca {} holds no PEM certificate; give a PEM file of CA certificates",
                    path.display()
                ))
            })?;
        Ok(Tls {
            extra,
            ca: Some(path.to_path_buf()),
        })
    }

    /// A client builder that speaks HTTPS with these roots.
    pub fn builder(&self) -> reqwest::ClientBuilder {
        client_builder().tls_certs_merge(self.extra.iter().cloned())
    }

    /// The `--ca` file, if any.
    pub fn ca(&self) -> Option<&Path> {
        self.ca.as_deref()
    }
}

/// A reqwest client builder with the TLS provider installed: every HTTP client of the node
/// and its tests is made from one (reqwest panics on a client built before a provider is).
pub fn client_builder() -> reqwest::ClientBuilder {
    install_provider();
    reqwest::Client::builder()
}

/// Makes ring rustls's process-wide provider (reqwest is built without one, so that no
/// aws-lc is compiled).
fn install_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // An error means a provider is installed already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_one_sentence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = Tls::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("holds no PEM certificate"), "{err}");
        let err = Tls::load(Some(&dir.path().join("missing")))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cannot read --ca"), "{err}");
        assert!(Tls::load(None).unwrap().builder().build().is_ok());
    }
}
