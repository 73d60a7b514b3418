//! The stores rfs keeps blocks in, read the way rfs reads them (`src/store/{zdb,http,dir}.rs`):
//!
//! - `zdb://[user[:password]@]host[:port]/namespace`: 0-db over RESP (port 9900 by default);
//!   `SELECT namespace [password]` unless the namespace is absent or `default`, then
//!   `GET <the 32 id bytes>`; nil or an empty value is a miss;
//! - `http(s)://base`: `base/{hex[0..2]}/{hex}`, then `base/{hex}`; 404 is a miss;
//! - `dir://path`: `path/{hex[0..2]}/{hex}` (rfs master), then `path/{hex}` (rfs 2.0.6).
//!
//! A store only fetches bytes, capped at what the caller allows; the caller verifies them.

use std::io::{ErrorKind, Read};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

use super::hex;
use super::resp::{self, Reply};
use crate::task::blocking_value;

/// Default port of 0-db.
pub const ZDB_PORT: u16 = 9900;
/// How long to wait for a connection to a store.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take before the store counts as failing.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle 0-db connections kept per store.
const IDLE_CONNECTIONS: usize = 8;

/// A parsed store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// A 0-db (or any RESP server).
    Zdb {
        /// Host name or address (an IPv6 address without brackets).
        host: String,
        /// TCP port.
        port: u16,
        /// Namespace to `SELECT`, if any.
        namespace: Option<String>,
        /// Password given with `SELECT`.
        password: Option<String>,
    },
    /// An HTTP(S) block server.
    Http {
        /// Base URL without a trailing slash.
        base: String,
    },
    /// A directory of block files.
    Dir {
        /// The directory.
        root: PathBuf,
    },
}

impl StoreUrl {
    /// Parses `url`; the error says what is wrong, for a sentence of the caller's.
    pub fn parse(url: &str) -> Result<StoreUrl, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| "it has no scheme (zdb://, http://, https:// or dir://)".to_string())?;
        match scheme {
            "zdb" => parse_zdb(rest),
            "http" | "https" => {
                let host = rest.split('/').next().unwrap_or("");
                if host.is_empty() || host.contains(char::is_whitespace) {
                    return Err("it has no valid host".into());
                }
                Ok(StoreUrl::Http {
                    base: url.trim_end_matches('/').to_string(),
                })
            }
            "dir" if !rest.is_empty() => Ok(StoreUrl::Dir {
                root: PathBuf::from(rest),
            }),
            "dir" => Err("it names no directory".into()),
            other => Err(format!(
                "bootswarm does not read {other}:// stores (only zdb://, http://, https:// and dir://)"
            )),
        }
    }
}

fn parse_zdb(rest: &str) -> Result<StoreUrl, String> {
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let password = userinfo
        .and_then(|u| u.split_once(':'))
        .map(|(_, p)| p.to_string());
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| "its IPv6 address has no closing ']'".to_string())?;
        (host, after.strip_prefix(':'))
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err("it has no host (a unix socket is not supported)".into());
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("its port '{p}' is not a port number"))?,
        None => ZDB_PORT,
    };
    // rfs takes the last path segment as the namespace.
    let namespace = path
        .rsplit('/')
        .next()
        .filter(|ns| !ns.is_empty() && *ns != "default")
        .map(str::to_string);
    Ok(StoreUrl::Zdb {
        host: host.to_string(),
        port,
        namespace,
        password,
    })
}

/// What a store said about one block.
pub type Got = Result<Option<Vec<u8>>, String>;

/// A client for one store.
#[derive(Debug)]
pub struct Store {
    url: StoreUrl,
    /// The URL as given, without its password (for messages).
    shown: String,
    http: reqwest::Client,
    idle: Mutex<Vec<BufStream<TcpStream>>>,
}

impl Store {
    /// A client for `url`, using `http` for HTTP(S) stores.
    pub fn new(url: StoreUrl, shown: String, http: reqwest::Client) -> Store {
        Store {
            url,
            shown,
            http,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The store's URL without a password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The stored bytes of block `id`, `None` if the store does not have it; more than `cap`
    /// bytes are refused.
    pub async fn get(&self, id: &[u8; 32], cap: usize) -> Got {
        let got = tokio::time::timeout(REQUEST_TIMEOUT, async {
            match &self.url {
                StoreUrl::Zdb { .. } => self.get_zdb(id, cap).await,
                StoreUrl::Http { base } => self.get_http(base, id, cap).await,
                StoreUrl::Dir { root } => get_dir(root.clone(), hex(id), cap).await,
            }
        })
        .await;
        got.unwrap_or_else(|_| Err(format!("timed out after {} s", REQUEST_TIMEOUT.as_secs())))
    }

    async fn get_zdb(&self, id: &[u8; 32], cap: usize) -> Got {
        let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
        let mut conn = match idle {
            Some(c) => c,
            None => self.connect().await?,
        };
        conn.write_all(&resp::command(&[b"GET", id]))
            .await
            .map_err(|e| e.to_string())?;
        conn.flush().await.map_err(|e| e.to_string())?;
        let reply = resp::read_reply(&mut conn, cap)
            .await
            .map_err(|e| e.to_string())?;
        let got = match reply {
            Reply::Bulk(Some(b)) if !b.is_empty() => Ok(Some(b)),
            Reply::Bulk(_) => Ok(None),
            Reply::Error(e) => Err(format!("GET answered {e:?}")),
            other => Err(format!("GET answered {other:?}")),
        };
        // A connection is reused only after a reply was read whole.
        if let Ok(mut v) = self.idle.lock()
            && v.len() < IDLE_CONNECTIONS
        {
            v.push(conn);
        }
        got
    }

    /// A new connection, with its namespace selected.
    async fn connect(&self) -> Result<BufStream<TcpStream>, String> {
        let StoreUrl::Zdb {
            host,
            port,
            namespace,
            password,
        } = &self.url
        else {
            return Err("not a zdb store".into());
        };
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host.as_str(), *port)))
            .await
            .map_err(|_| "the connection timed out".to_string())?
            .map_err(|e| format!("cannot connect ({})", e.to_string().to_lowercase()))?;
        let _ = tcp.set_nodelay(true);
        let mut conn = BufStream::new(tcp);
        if let Some(ns) = namespace {
            let mut args: Vec<&[u8]> = vec![b"SELECT", ns.as_bytes()];
            if let Some(p) = password {
                args.push(p.as_bytes());
            }
            conn.write_all(&resp::command(&args))
                .await
                .map_err(|e| e.to_string())?;
            conn.flush().await.map_err(|e| e.to_string())?;
            match resp::read_reply(&mut conn, 1024).await {
                Ok(Reply::Simple(_)) => {}
                Ok(other) => return Err(format!("SELECT {ns} answered {other:?}")),
                Err(e) => return Err(format!("SELECT {ns} failed ({e})")),
            }
        }
        Ok(conn)
    }

    async fn get_http(&self, base: &str, id: &[u8; 32], cap: usize) -> Got {
        let name = hex(id);
        for url in [
            format!("{base}/{}/{name}", &name[..2]),
            format!("{base}/{name}"),
        ] {
            let mut resp = self
                .http
                .get(&url)
                .send()
                .await
                .map_err(|e| format!("GET {url} failed ({})", root_cause(&e)))?;
            let status = resp.status();
            if status == reqwest::StatusCode::NOT_FOUND {
                continue;
            }
            if !status.is_success() {
                return Err(format!("GET {url} answered {status}"));
            }
            if resp.content_length().is_some_and(|n| n > cap as u64) {
                return Err(format!(
                    "it sent more than the {cap} bytes the block may have"
                ));
            }
            let mut out = Vec::new();
            while let Some(piece) = resp.chunk().await.map_err(|e| root_cause(&e))? {
                if out.len() + piece.len() > cap {
                    return Err(format!(
                        "it sent more than the {cap} bytes the block may have"
                    ));
                }
                out.extend_from_slice(&piece);
            }
            return Ok((!out.is_empty()).then_some(out));
        }
        Ok(None)
    }
}

/// Reads `root/{hex[..2]}/{hex}`, then `root/{hex}`, at most `cap` bytes.
async fn get_dir(root: PathBuf, name: String, cap: usize) -> Got {
    let read = move || -> Got {
        for path in [root.join(&name[..2]).join(&name), root.join(&name)] {
            let file = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(format!("cannot read {} ({e})", path.display())),
            };
            let mut out = Vec::new();
            file.take(cap as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("cannot read {} ({e})", path.display()))?;
            if out.len() > cap {
                return Err(format!(
                    "{} is longer than the {cap} bytes the block may have",
                    path.display()
                ));
            }
            return Ok((!out.is_empty()).then_some(out));
        }
        Ok(None)
    };
    blocking_value(read)
        .await
        .unwrap_or_else(|| Err("the read was cancelled".into()))
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zdb(host: &str, port: u16, ns: Option<&str>, pw: Option<&str>) -> StoreUrl {
        StoreUrl::Zdb {
            host: host.into(),
            port,
            namespace: ns.map(Into::into),
            password: pw.map(Into::into),
        }
    }

    #[test]
    fn store_urls_parse_like_rfs() {
        assert_eq!(
            StoreUrl::parse("zdb://hub.grid.tf:9900"),
            Ok(zdb("hub.grid.tf", 9900, None, None))
        );
        assert_eq!(
            StoreUrl::parse("zdb://username@hub.grid.tf/custom"),
            Ok(zdb("hub.grid.tf", 9900, Some("custom"), None))
        );
        assert_eq!(
            StoreUrl::parse("zdb://u:secret@[::1]:6379/ns"),
            Ok(zdb("::1", 6379, Some("ns"), Some("secret")))
        );
        assert_eq!(
            StoreUrl::parse("zdb://h/default"),
            Ok(zdb("h", 9900, None, None))
        );
        assert_eq!(
            StoreUrl::parse("https://hub.example/blocks/"),
            Ok(StoreUrl::Http {
                base: "https://hub.example/blocks".into()
            })
        );
        assert_eq!(
            StoreUrl::parse("dir:///var/blocks"),
            Ok(StoreUrl::Dir {
                root: "/var/blocks".into()
            })
        );
        for bad in [
            "hub.grid.tf",
            "s3://bucket",
            "zdb:///socket",
            "zdb://h:port",
            "zdb://[::1",
            "dir://",
            "http:///x",
        ] {
            assert!(StoreUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn dir_stores_read_both_layouts_and_cap() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = ([0xab; 32], [0x01; 32]);
        std::fs::create_dir(dir.path().join("ab")).unwrap();
        std::fs::write(dir.path().join("ab").join(hex(&a)), b"two-level").unwrap();
        std::fs::write(dir.path().join(hex(&b)), b"flat").unwrap();
        let store = Store::new(
            StoreUrl::Dir {
                root: dir.path().into(),
            },
            "dir://x".into(),
            crate::tls::client_builder().build().unwrap(),
        );
        assert_eq!(store.get(&a, 100).await, Ok(Some(b"two-level".to_vec())));
        assert_eq!(store.get(&b, 100).await, Ok(Some(b"flat".to_vec())));
        assert_eq!(store.get(&[9; 32], 100).await, Ok(None));
        assert!(store.get(&a, 3).await.is_err());
    }
}
