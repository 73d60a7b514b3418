//! Where a node fetches an rfs block it cannot get from its peers: the stores `--upstream`
//! names (in order), or else those of the routes of the flist that lists the block (every
//! route whose range holds the id's first byte). Each answer is verified against the block's
//! CID before it is used; a store that answers wrong bytes is named and the next one tried.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use bootswarm_protocol::block::{Cid, Codec, Verified, check_cid, digest, is_rfs_block};
use bootswarm_protocol::manifest::{Flist, Route};

use super::store::{Store, StoreUrl};
use crate::error::{Error, Result};
use crate::tls::Tls;

/// Most distinct stores a node keeps a client for.
const MAX_STORES: usize = 64;
/// Most rfs blocks whose routes are remembered.
const MAX_ROUTED: usize = 1 << 20;
/// Most distinct route sets remembered.
const MAX_ROUTE_SETS: usize = 4096;

/// Why no store gave a block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// No `--upstream` and no route covers the block.
    #[error(
        "rfs block {cid} has no upstream store: its flist names no route for it; pass --upstream URL"
    )]
    NoStore {
        /// The block.
        cid: Cid,
    },
    /// Every store was asked; none gave good bytes.
    #[error("no upstream store gave rfs block {cid}: {reasons}")]
    Failed {
        /// The block.
        cid: Cid,
        /// What each store did, `; `-separated.
        reasons: String,
        /// Whether some store sent bytes that do not match the CID (it is to blame).
        mismatch: bool,
    },
}

/// The rfs stores of a node.
#[derive(Debug)]
pub struct Upstreams {
    /// `--upstream` stores, which override every route.
    overrides: Vec<Arc<Store>>,
    learned: Mutex<Learned>,
    http: reqwest::Client,
}

#[derive(Debug, Default)]
struct Learned {
    /// Distinct route sets of the flists seen.
    sets: Vec<Vec<Route>>,
    /// Each rfs block's route set.
    by_cid: HashMap<Cid, u32>,
    /// One client per store URL.
    stores: HashMap<String, Arc<Store>>,
}

impl Upstreams {
    /// Stores from `--upstream` URLs (none: the flists' routes), HTTPS trusting `tls`.
    pub fn new(urls: &[String], tls: &Tls) -> Result<Upstreams> {
        let http = tls
            .builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .no_proxy()
            .build()
            .map_err(|e| {
                Error::new(format!(
                    "cannot set up an HTTP client for upstream stores ({e})"
                ))
            })?;
        let overrides = urls
            .iter()
            .map(|u| {
                let url = StoreUrl::parse(u).map_err(|why| {
                    Error::new(format!(
                        "--upstream '{}' is not a store URL: {why}; give zdb://host:port/namespace, http(s)://base or dir://path",
                        redact(u)
                    ))
                })?;
                Ok(Arc::new(Store::new(url, redact(u), http.clone())))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Upstreams {
            overrides,
            learned: Mutex::new(Learned::default()),
            http,
        })
    }

    /// Whether `--upstream` overrides the routes.
    pub fn has_overrides(&self) -> bool {
        !self.overrides.is_empty()
    }

    /// Remembers the routes of `flist` for its rfs blocks (nothing with `--upstream`).
    pub fn learn(&self, flist: &Flist) {
        let cids = flist
            .entries
            .iter()
            .flat_map(|e| e.chunks.iter().map(|c| c.cid));
        self.learn_routes(&flist.routes, cids);
    }

    /// Remembers `routes` as the stores of the rfs blocks `cids` (nothing with `--upstream`).
    pub fn learn_routes(&self, routes: &[Route], cids: impl Iterator<Item = Cid>) {
        if self.has_overrides() || routes.is_empty() {
            return;
        }
        let mut l = self.learned.lock().unwrap_or_else(PoisonError::into_inner);
        let set = match l.sets.iter().position(|s| s == routes) {
            Some(i) => i as u32,
            None if l.sets.len() < MAX_ROUTE_SETS => {
                l.sets.push(routes.to_vec());
                (l.sets.len() - 1) as u32
            }
            None => return,
        };
        for cid in cids {
            if is_rfs_block(&cid) && l.by_cid.len() < MAX_ROUTED {
                l.by_cid.entry(cid).or_insert(set);
            }
        }
    }

    /// Learns the routes of a verified block if it is a flist that has some (cheaply skips
    /// every other block).
    pub fn learn_block(&self, cid: &Cid, bytes: &[u8]) {
        if self.has_overrides()
            || check_cid(cid) != Ok(Codec::DagCbor)
            || !bytes.windows(7).any(|w| w == b"\x66routes")
        {
            return;
        }
        if let Ok(flist) = Flist::decode(bytes) {
            self.learn(&flist);
        }
    }

    /// The stores to ask for `cid`, in order.
    fn stores_for(&self, cid: &Cid) -> Vec<Arc<Store>> {
        if self.has_overrides() {
            return self.overrides.clone();
        }
        let first = digest(cid).map_or(0, |d| d[0]);
        let mut l = self.learned.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(&set) = l.by_cid.get(cid) else {
            return Vec::new();
        };
        let routes: Vec<Route> = l.sets[set as usize]
            .iter()
            .filter(|r| r.covers(first))
            .cloned()
            .collect();
        let mut out = Vec::new();
        for r in routes {
            if let Some(s) = l.stores.get(&r.url) {
                out.push(Arc::clone(s));
                continue;
            }
            let Ok(url) = StoreUrl::parse(&r.url) else {
                continue;
            };
            let store = Arc::new(Store::new(url, redact(&r.url), self.http.clone()));
            if l.stores.len() < MAX_STORES {
                l.stores.insert(r.url.clone(), Arc::clone(&store));
            }
            out.push(store);
        }
        out
    }

    /// Fetches rfs block `cid` (at most `cap` bytes) from its stores and verifies it.
    /// Returns the block and the store that gave it.
    pub async fn fetch(
        &self,
        cid: &Cid,
        cap: usize,
    ) -> std::result::Result<(Verified, String), UpstreamError> {
        let stores = self.stores_for(cid);
        let Some(id) = digest(cid).filter(|_| is_rfs_block(cid)) else {
            return Err(UpstreamError::NoStore { cid: *cid });
        };
        if stores.is_empty() {
            return Err(UpstreamError::NoStore { cid: *cid });
        }
        let (mut reasons, mut mismatch) = (Vec::new(), false);
        // Start at a store picked by the id, so a farm spreads its blocks over its stores.
        let start = id[1] as usize % stores.len();
        for store in stores.iter().cycle().skip(start).take(stores.len()) {
            match store.get(&id, cap).await {
                Ok(Some(bytes)) => match verify(*cid, bytes).await {
                    Some(v) => return Ok((v, store.shown().to_string())),
                    None => {
                        mismatch = true;
                        reasons.push(format!("{} sent bytes that do not match it", store.shown()));
                    }
                },
                Ok(None) => reasons.push(format!("{} does not have it", store.shown())),
                Err(e) => reasons.push(format!("{}: {e}", store.shown())),
            }
        }
        Err(UpstreamError::Failed {
            cid: *cid,
            reasons: reasons.join("; "),
            mismatch,
        })
    }
}

/// Hashes off the async workers.
async fn verify(cid: Cid, bytes: Vec<u8>) -> Option<Verified> {
    crate::task::blocking_value(move || Verified::check(cid, bytes).ok())
        .await
        .flatten()
}

/// `url` without the password of its user info.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rfs::block::encode;
    use crate::rfs::hex;
    use bootswarm_protocol::block::rfs_block_cid;
    use bootswarm_protocol::manifest::{BlockKey, ChunkRef, Entry, EntryKind};

    fn flist(chunks: Vec<ChunkRef>, routes: Vec<Route>) -> Flist {
        Flist {
            name: "p".into(),
            version: String::new(),
            entries: vec![Entry {
                path: "f".into(),
                kind: EntryKind::File,
                mode: 0o644,
                size: chunks.iter().map(|c| u64::from(c.len)).sum(),
                chunks,
                target: None,
            }],
            children: vec![],
            routes,
        }
    }

    fn dir_route(start: u8, end: u8, dir: &std::path::Path) -> Route {
        Route {
            start,
            end,
            url: format!("dir://{}", dir.display()),
        }
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(redact("zdb://u:pw@h:1/ns"), "zdb://u:***@h:1/ns");
        assert_eq!(redact("zdb://h/ns"), "zdb://h/ns");
        assert_eq!(redact("dir:///a@b"), "dir:///a@b");
    }

    #[tokio::test]
    async fn routes_pick_the_store_and_a_wrong_store_is_named() {
        let (good, bad) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let e = encode(b"some plaintext");
        let cid = rfs_block_cid(e.id);
        std::fs::write(good.path().join(hex(&e.id)), &e.stored).unwrap();
        let mut wrong = e.stored.clone();
        wrong[0] ^= 1;
        std::fs::write(bad.path().join(hex(&e.id)), &wrong).unwrap();
        let chunk = ChunkRef {
            cid,
            len: 14,
            key: Some(e.key),
        };
        let up = Upstreams::new(&[], &Tls::default()).unwrap();
        assert_eq!(
            up.fetch(&cid, 100).await,
            Err(UpstreamError::NoStore { cid })
        );

        // Only the store whose range holds the id's first byte is asked.
        let first = e.id[0];
        let elsewhere = if first == 0 { 1 } else { 0 };
        let f = flist(
            vec![chunk],
            vec![
                dir_route(first, first, good.path()),
                dir_route(elsewhere, elsewhere, bad.path()),
            ],
        );
        up.learn_block(&f.to_block().unwrap().0, &f.encode().unwrap());
        let (v, from) = up.fetch(&cid, 100).await.unwrap();
        assert_eq!(
            (v.bytes(), from.contains(&good.path().display().to_string())),
            (&e.stored[..], true)
        );

        // A store that sends other bytes is named; with --upstream the routes are ignored.
        let over = Upstreams::new(
            &[format!("dir://{}", bad.path().display())],
            &Tls::default(),
        )
        .unwrap();
        over.learn(&f);
        match over.fetch(&cid, 100).await {
            Err(UpstreamError::Failed {
                reasons, mismatch, ..
            }) => {
                assert!(mismatch && reasons.contains("do not match"), "{reasons}");
            }
            other => panic!("{other:?}"),
        }
        let _ = BlockKey([0; 32]);
    }

    #[test]
    fn bad_upstream_urls_are_one_sentence() {
        let err = Upstreams::new(&["s3://x".into()], &Tls::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--upstream 's3://x' is not a store URL"),
            "{err}"
        );
    }
}
