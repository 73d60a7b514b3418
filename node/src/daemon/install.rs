//! The flist tree of a booted release, read back from the store (every block re-verified by
//! it).

use std::collections::HashSet;

use bootswarm_protocol::block::Cid;
use bootswarm_protocol::manifest::Flist;
use bootswarm_protocol::store::BlockStore;

use crate::boot::fetch::{MAX_FLIST_DEPTH, MAX_FLISTS, PlacedFlist};
use crate::error::{Error, Result};

/// The flists under `root`, each placed under its prefix (children under their names), all
/// read from `store`. Same layout as `bootswarm boot`.
pub(crate) fn placed_flists<S: BlockStore + ?Sized>(
    store: &S,
    root: &Cid,
) -> Result<Vec<PlacedFlist>> {
    let mut out = Vec::new();
    let mut level = vec![(*root, String::new())];
    for depth in 0.. {
        if level.is_empty() {
            break;
        }
        if depth > MAX_FLIST_DEPTH {
            return Err(Error::new(format!(
                "the flists of root {root} nest deeper than {MAX_FLIST_DEPTH} levels; the publisher made an invalid release"
            )));
        }
        let mut next = Vec::new();
        let mut seen = HashSet::new();
        for (cid, prefix) in level {
            let bytes = store
                .get(&cid)
                .map_err(|e| {
                    Error::new(format!(
                        "reading flist {cid} from the store failed ({}); the block will be fetched again on the next start",
                        e.to_string().trim_end_matches('.')
                    ))
                })?
                .ok_or_else(|| {
                    Error::new(format!(
                        "flist {cid} is missing from the store although the release booted; restart to fetch it again"
                    ))
                })?;
            let flist = Flist::decode(&bytes).map_err(|e| {
                Error::new(format!(
                    "flist {cid} is not a valid flist ({}); the publisher made an invalid release",
                    e.to_string().trim_end_matches('.')
                ))
            })?;
            for child in &flist.children {
                let child_prefix = crate::boot::fetch::child_path(&cid, &prefix, &child.name)?;
                if seen.insert(child_prefix.clone()) {
                    next.push((child.cid, child_prefix));
                }
            }
            out.push(PlacedFlist { cid, prefix, flist });
            if out.len() + next.len() > MAX_FLISTS {
                return Err(Error::new(format!(
                    "root {root} references more than {MAX_FLISTS} flists; the publisher made an invalid release"
                )));
            }
        }
        level = next;
    }
    Ok(out)
}
