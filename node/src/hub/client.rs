//! HTTP client for the hub (the origin): releases, blocks and stats.
//!
//! The client caps every body at the length the caller allows and never reads past it; it
//! does not verify blocks — the caller (the store) verifies and decides.

use std::time::Duration;

use bootswarm_protocol::block::Cid;
use bootswarm_protocol::release::{MAX_RELEASE_SIZE, SignedRelease};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::tls::Tls;

/// How long to wait for a TCP connection to the hub.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a response may stay silent before it is abandoned.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Cap on the bodies of small JSON answers (stats, errors).
const MAX_JSON_BODY: usize = 64 * 1024;

/// The hub's traffic counters, as served by `GET /v1/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct RemoteStats {
    /// Body bytes of blocks and releases sent.
    pub egress_bytes: u64,
    /// Requests answered.
    pub requests: u64,
    /// Blocks served.
    pub blocks_served: u64,
}

/// The `host[:port]` of a hub URL (`http://…` or `https://…`) and its scheme's default port.
pub(crate) fn authority(url: &str) -> Result<(&str, u16)> {
    let trimmed = url.trim().trim_end_matches('/');
    let (rest, port) = if let Some(r) = trimmed.strip_prefix("http://") {
        (r, 80)
    } else if let Some(r) = trimmed.strip_prefix("https://") {
        (r, 443)
    } else {
        return Err(Error::new(format!(
            "hub URL '{url}' is not an http:// or https:// URL; pass --hub like http://127.0.0.1:8080"
        )));
    };
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(Error::new(format!(
            "hub URL '{url}' has no valid host; pass --hub like http://127.0.0.1:8080"
        )));
    }
    Ok((host, port))
}

/// A client for one hub, identified by its base URL (`http://host:port`).
#[derive(Debug, Clone)]
pub struct HubClient {
    base: String,
    http: reqwest::Client,
}

/// What a capped body read produced.
enum Body {
    Complete(Vec<u8>),
    TooLong,
}

impl HubClient {
    /// A client for the hub at `url` (`http://host:port` or `https://…`, optionally with a
    /// path prefix), trusting the platform's roots.
    pub fn new(url: &str) -> Result<HubClient> {
        Self::with_tls(url, &Tls::default())
    }

    /// A client for the hub at `url` whose HTTPS trusts `tls`.
    pub fn with_tls(url: &str, tls: &Tls) -> Result<HubClient> {
        authority(url)?;
        let trimmed = url.trim().trim_end_matches('/');
        let http = tls
            .builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .no_proxy()
            .tcp_nodelay(true)
            .build()
            .map_err(|e| Error::new(format!("cannot set up an HTTP client for hub {url}: {e}")))?;
        Ok(HubClient {
            base: trimmed.to_string(),
            http,
        })
    }

    /// The hub's base URL, without a trailing slash.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The latest signed release of `channel`, with its encoded bytes (at most
    /// [`MAX_RELEASE_SIZE`]). The release is decoded but not checked against a trust root.
    pub async fn release(&self, channel: &str) -> Result<(SignedRelease, Vec<u8>)> {
        let url = format!("{}/v1/channels/{channel}", self.base);
        let mut resp = self.get(&url).await?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(Error::new(format!(
                "hub at {} has no channel '{channel}'; check --channel or publish the channel first",
                self.base
            )));
        }
        if !status.is_success() {
            return Err(self.status_error(&url, status, &mut resp).await);
        }
        let bytes = match self.read_capped(&url, &mut resp, MAX_RELEASE_SIZE).await? {
            Body::Complete(b) => b,
            Body::TooLong => {
                return Err(Error::new(format!(
                    "hub at {} sent a release for channel '{channel}' larger than {MAX_RELEASE_SIZE} bytes; the hub is misbehaving, nothing was installed",
                    self.base
                )));
            }
        };
        let signed = SignedRelease::decode(&bytes).map_err(|e| {
            Error::new(format!(
                "hub at {} sent an undecodable release for channel '{channel}' ({e}); nothing was installed",
                self.base
            ))
        })?;
        Ok((signed, bytes))
    }

    /// The bytes the hub serves under `cid`, at most `max_len` of them. More bytes than
    /// `max_len` are refused as soon as they arrive. The bytes are NOT verified.
    pub async fn block(&self, cid: &Cid, max_len: usize) -> Result<Vec<u8>> {
        self.block_or_missing(cid, max_len).await?.ok_or_else(|| {
            Error::new(format!(
                "hub at {} does not have block {cid}; the release on the hub is incomplete, re-publish it",
                self.base
            ))
        })
    }

    /// [`Self::block`], with `None` when the hub answers that it does not have the block: the
    /// hub was reached, which a node judging its own route to the hub must tell apart.
    pub async fn block_or_missing(&self, cid: &Cid, max_len: usize) -> Result<Option<Vec<u8>>> {
        let url = format!("{}/v1/blocks/{cid}", self.base);
        let mut resp = self.get(&url).await?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(self.status_error(&url, status, &mut resp).await);
        }
        match self.read_capped(&url, &mut resp, max_len).await? {
            Body::Complete(b) => Ok(Some(b)),
            Body::TooLong => Err(Error::new(format!(
                "block {cid} from the hub is longer than the {max_len} bytes its manifest gives; the hub is serving corrupt data, nothing was installed"
            ))),
        }
    }

    /// The hub's traffic counters.
    pub async fn stats(&self) -> Result<RemoteStats> {
        let url = format!("{}/v1/stats", self.base);
        let mut resp = self.get(&url).await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(self.status_error(&url, status, &mut resp).await);
        }
        let bytes = match self.read_capped(&url, &mut resp, MAX_JSON_BODY).await? {
            Body::Complete(b) => b,
            Body::TooLong => {
                return Err(Error::new(format!(
                    "hub answered {url} with more than {MAX_JSON_BODY} bytes; is --hub a bootswarm hub?"
                )));
            }
        };
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::new(format!(
                "hub answered {url} with unexpected JSON ({e}); is --hub a bootswarm hub?"
            ))
        })
    }

    async fn get(&self, url: &str) -> Result<reqwest::Response> {
        self.http
            .get(url)
            .send()
            .await
            .map_err(|e| self.transport_error(url, &e))
    }

    /// Reads the body, refusing it as soon as it exceeds `max_len` bytes.
    async fn read_capped(
        &self,
        url: &str,
        resp: &mut reqwest::Response,
        max_len: usize,
    ) -> Result<Body> {
        if let Some(announced) = resp.content_length()
            && announced > max_len as u64
        {
            return Ok(Body::TooLong);
        }
        let initial = resp.content_length().map_or(0, |n| n as usize).min(max_len);
        let mut out = Vec::with_capacity(initial);
        while let Some(piece) = resp
            .chunk()
            .await
            .map_err(|e| self.transport_error(url, &e))?
        {
            if out.len() + piece.len() > max_len {
                return Ok(Body::TooLong);
            }
            out.extend_from_slice(&piece);
        }
        Ok(Body::Complete(out))
    }

    async fn status_error(
        &self,
        url: &str,
        status: reqwest::StatusCode,
        resp: &mut reqwest::Response,
    ) -> Error {
        // The hub answers errors as {"error": "..."}; show it when it is small and well formed.
        let detail = match self.read_capped(url, resp, MAX_JSON_BODY).await {
            Ok(Body::Complete(b)) => serde_json::from_slice::<serde_json::Value>(&b)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned)),
            _ => None,
        };
        match detail {
            Some(d) => Error::new(format!(
                "hub answered {url} with {status} ({}); check --hub and the hub's log",
                d.trim_end_matches('.')
            )),
            None => Error::new(format!(
                "hub answered {url} with {status}; check --hub and the hub's log"
            )),
        }
    }

    fn transport_error(&self, url: &str, e: &reqwest::Error) -> Error {
        let cause = root_cause(e);
        if e.is_connect() {
            Error::new(format!(
                "hub at {} is unreachable ({cause}); check --hub and that the hub is running",
                self.base
            ))
        } else if e.is_timeout() {
            Error::new(format!(
                "hub at {} timed out on {url}; check the network and the hub",
                self.base
            ))
        } else {
            Error::new(format!(
                "request to {url} failed ({cause}); check the network and the hub"
            ))
        }
    }
}

/// The innermost cause of an error, which is the most specific ("connection refused").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let text = cur.to_string();
    // io::Error renders as "Connection refused (os error 111)": keep the words.
    let text = match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    text.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootswarm_protocol::block::{Codec, cid_of};

    #[tokio::test]
    async fn a_block_the_hub_lacks_is_told_apart_from_a_hub_out_of_reach() {
        let dir = tempfile::tempdir().unwrap();
        let held = b"a block the hub holds".to_vec();
        let cid = cid_of(Codec::Raw, &held);
        let path = crate::hub::block_path(dir.path(), &cid);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &held).unwrap();
        let missing = cid_of(Codec::Raw, b"a block it lacks");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hub_dir = dir.path().to_path_buf();
        let server = tokio::spawn(crate::hub::server::serve(hub_dir, listener, None));
        let client = HubClient::new(&url).unwrap();
        let got = client.block_or_missing(&cid, 1024).await.unwrap();
        assert_eq!(got, Some(held));
        assert_eq!(client.block_or_missing(&missing, 1024).await.unwrap(), None);
        let err = client.block(&missing, 1024).await.unwrap_err().to_string();
        assert!(err.contains("does not have block"), "{err}");
        server.abort();
        assert!(server.await.unwrap_err().is_cancelled());
        // A hub out of reach is an error, not a missing block.
        let gone = HubClient::new(&url).unwrap();
        assert!(gone.block_or_missing(&missing, 1024).await.is_err());
    }
}
