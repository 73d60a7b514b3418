//! Side-by-side versions in the target.
//!
//! Each version is materialised into `TARGET/releases/<seq>/` (first under a `.partial-<seq>`
//! name, renamed once complete, so a directory named by a seq is always a whole tree), then
//! `TARGET/current` is switched to it atomically (a new symlink at a temporary name, rename,
//! fsync of the directory). The release follower decides when; these are the steps. The last
//! `--keep` versions stay on disk; older release directories and the blocks no kept version
//! references are removed.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use bootswarm_protocol::block::{Cid, parse_cid};
use bootswarm_protocol::follower::Version as Release;
use bootswarm_protocol::manifest::Flist;
use bootswarm_protocol::store::BlockStore;

use super::test_hooks::{crash_point, tamper_point};
use crate::error::{Error, Result};
use crate::fsutil::fsync_dir;
use crate::materialise::{
    MaterialiseStats, materialise, materialise_rest, placed_from_store as placed_flists, plan,
};
use crate::state::{FailedUpgrade, Installed, NodeState, Version};
use crate::store::SledStore;

/// Directory under the target holding one directory per version.
pub(crate) const RELEASES_DIR: &str = "releases";
/// Symlink under the target naming the version in use.
pub(crate) const CURRENT_LINK: &str = "current";
const PARTIAL_PREFIX: &str = ".partial-";
const GC_PREFIX: &str = ".gc-";
const LINK_TMP_PREFIX: &str = ".current.tmp-";

/// Where and how versions are installed.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// The target directory.
    pub(crate) target: PathBuf,
    /// The store directory (for `state.json`).
    pub(crate) store_dir: PathBuf,
    /// The channel followed.
    pub(crate) channel: String,
    /// Versions kept on disk (at least 1).
    pub(crate) keep: usize,
}

fn io_err(what: &str, path: &Path, e: &io::Error) -> Error {
    Error::new(format!("cannot {what} {} ({e})", path.display()))
}

fn releases(target: &Path) -> PathBuf {
    target.join(RELEASES_DIR)
}

/// The seq `TARGET/current` points at, if it is a link to `releases/<seq>`.
#[cfg(test)]
fn current_seq(target: &Path) -> Option<u64> {
    let link = fs::read_link(target.join(CURRENT_LINK)).ok()?;
    let rest = link.strip_prefix(RELEASES_DIR).ok()?;
    rest.to_str()?.parse().ok()
}

/// Points `TARGET/current` at `releases/<seq>` atomically and durably.
pub(crate) fn switch(target: &Path, seq: u64) -> Result<()> {
    let tmp = target.join(format!("{LINK_TMP_PREFIX}{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let dest = Path::new(RELEASES_DIR).join(seq.to_string());
    std::os::unix::fs::symlink(&dest, &tmp).map_err(|e| io_err("create the symlink", &tmp, &e))?;
    let link = target.join(CURRENT_LINK);
    fs::rename(&tmp, &link).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err("switch the symlink", &link, &e)
    })?;
    fsync_dir(target).map_err(|e| io_err("sync the directory", target, &e))
}

/// Moves a directory out of the way under a recognisable name, then deletes it.
fn remove_version_dir(releases: &Path, name: &str) -> Result<()> {
    let dir = releases.join(name);
    if !dir.exists() {
        return Ok(());
    }
    let gone = releases.join(format!("{GC_PREFIX}{name}"));
    fs::rename(&dir, &gone).map_err(|e| io_err("move aside", &dir, &e))?;
    fsync_dir(releases).map_err(|e| io_err("sync the directory", releases, &e))?;
    fs::remove_dir_all(&gone).map_err(|e| io_err("remove", &gone, &e))
}

/// The directory a version is staged in until it is whole.
pub(crate) fn staging(target: &Path, seq: u64) -> PathBuf {
    releases(target).join(format!("{PARTIAL_PREFIX}{seq}"))
}

/// Removes half-written versions (but `keep`, staged by this process), directories
/// half-deleted and temporary links left by a crash.
fn clean_leftovers(target: &Path, keep: Option<&Path>) -> Result<()> {
    let rel = releases(target);
    for entry in fs::read_dir(&rel).map_err(|e| io_err("read", &rel, &e))? {
        let entry = entry.map_err(|e| io_err("read", &rel, &e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if keep == Some(entry.path().as_path()) {
            continue;
        }
        if name.starts_with(PARTIAL_PREFIX) || name.starts_with(GC_PREFIX) {
            let path = entry.path();
            fs::remove_dir_all(&path).map_err(|e| io_err("remove", &path, &e))?;
        }
    }
    for entry in fs::read_dir(target).map_err(|e| io_err("read", target, &e))? {
        let entry = entry.map_err(|e| io_err("read", target, &e))?;
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(LINK_TMP_PREFIX)
        {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// The packages (children of the root flist) by name.
fn packages<S: BlockStore + ?Sized>(store: &S, root: &Cid) -> Option<BTreeMap<String, Cid>> {
    let bytes = store.get(root).ok().flatten()?;
    let flist = Flist::decode(&bytes).ok()?;
    Some(
        flist
            .children
            .into_iter()
            .map(|c| (c.name, c.cid))
            .collect(),
    )
}

/// Packages added, removed or whose child flist changed between two roots, by name. When the
/// old root cannot be read every package counts as changed.
fn changed_packages<S: BlockStore + ?Sized>(store: &S, old: &Cid, new: &Cid) -> Vec<String> {
    let new_pkgs = packages(store, new).unwrap_or_default();
    let Some(old_pkgs) = packages(store, old) else {
        return new_pkgs.into_keys().collect();
    };
    let mut names: Vec<String> = new_pkgs
        .iter()
        .filter(|(name, cid)| old_pkgs.get(*name) != Some(cid))
        .map(|(name, _)| name.clone())
        .chain(
            old_pkgs
                .keys()
                .filter(|n| !new_pkgs.contains_key(*n))
                .cloned(),
        )
        .collect();
    names.sort();
    names
}

fn lock(state: &Mutex<NodeState>) -> std::sync::MutexGuard<'_, NodeState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What writing a version did.
#[derive(Debug)]
pub(crate) struct Written {
    /// Packages changed against the version it upgrades (empty without one).
    pub(crate) changed: Vec<String>,
    /// What was written (none when the version directory was already complete).
    pub(crate) stats: Option<MaterialiseStats>,
}

/// Writes `version` into `TARGET/releases/<seq>` unless it is already there (`streamed`: the
/// files this process already wrote into its staging directory), records it among the kept
/// versions, and lists the packages changed against `previous`.
pub(crate) fn write_version(
    store: &SledStore,
    state: &Mutex<NodeState>,
    layout: &Layout,
    version: Release,
    previous: Option<Release>,
    streamed: &HashSet<String>,
) -> Result<Written> {
    // The store's index is flushed lazily; a crash could otherwise lose blocks this version
    // (and the next upgrade's hook diff) relies on.
    store.flush()?;
    let target = &layout.target;
    let rel = releases(target);
    fs::create_dir_all(&rel).map_err(|e| io_err("create", &rel, &e))?;
    let partial = staging(target, version.seq);
    clean_leftovers(target, (!streamed.is_empty()).then_some(partial.as_path()))?;
    if previous.is_some() {
        crash_point("after-fetch");
    }
    let seq = version.seq;
    let root_text = version.root.to_string();
    // The version directory: complete whenever it exists under its seq.
    let dir = rel.join(seq.to_string());
    let known_other_root = lock(state)
        .versions
        .iter()
        .any(|v| v.seq == seq && v.root != root_text);
    if known_other_root {
        remove_version_dir(&rel, &seq.to_string())?;
    }
    let stats = if dir.is_dir() {
        None
    } else {
        let flists = placed_flists(store, &version.root)?;
        let tree = plan(&flists)?;
        tamper_point(store, seq, tree.chunks());
        let stats = match materialise_rest(store, &tree, &partial, &|_| {}, streamed) {
            Ok(stats) => stats,
            Err(e) => {
                // Nothing of a version that failed stays in the target.
                if let Err(rm) = fs::remove_dir_all(&partial) {
                    tracing::warn!("cannot remove {} ({rm})", partial.display());
                }
                return Err(e);
            }
        };
        fs::rename(&partial, &dir).map_err(|e| io_err("rename", &partial, &e))?;
        fsync_dir(&rel).map_err(|e| io_err("sync the directory", &rel, &e))?;
        Some(stats)
    };
    {
        let mut st = lock(state);
        st.versions.retain(|v| v.seq != seq);
        st.versions.push(Version {
            seq,
            root: root_text,
        });
        st.versions.sort_by_key(|v| v.seq);
        st.save(&layout.store_dir)?;
    }
    let changed = match previous {
        Some(prev) => {
            crash_point("after-materialise");
            changed_packages(store, &prev.root, &version.root)
        }
        None => Vec::new(),
    };
    Ok(Written { changed, stats })
}

/// Records `version` as installed in the target, then keeps the newest `--keep` versions
/// (and, when `collect_blocks`, only the blocks they reference).
pub(crate) fn commit(
    store: &SledStore,
    state: &Mutex<NodeState>,
    layout: &Layout,
    version: Release,
    collect_blocks: bool,
) -> Result<()> {
    record_installed(state, layout, version)?;
    if let Err(e) = collect_garbage(store, state, layout, version.seq, collect_blocks) {
        tracing::warn!("garbage collection failed: {e}");
    }
    pin_kept(store, state, layout);
    Ok(())
}

/// Pins in the store the blocks of the versions that stay when the next one is installed:
/// the newest `--keep` − 1 (the oldest kept version may then be evicted while a newer one
/// is fetched; its tree in the target stays whole).
pub(crate) fn pin_kept(store: &SledStore, state: &Mutex<NodeState>, layout: &Layout) {
    let mut versions = lock(state).versions.clone();
    versions.sort_by_key(|v| std::cmp::Reverse(v.seq));
    let mut pinned = HashSet::new();
    for v in versions.iter().take(layout.keep.saturating_sub(1)) {
        match parse_cid(&v.root)
            .ok()
            .and_then(|root| version_blocks(store, &root))
        {
            Some(blocks) => pinned.extend(blocks),
            None => tracing::warn!(
                seq = v.seq,
                "cannot read the blocks of a kept version to pin them"
            ),
        }
    }
    store.pin_kept(pinned);
}

/// Every block `root`'s version consists of (flists and chunks), if all its flists are held.
fn version_blocks(store: &SledStore, root: &Cid) -> Option<HashSet<Cid>> {
    let flists = placed_flists(store, root).ok()?;
    let tree = plan(&flists).ok()?;
    let mut blocks: HashSet<Cid> = flists.iter().map(|f| f.cid).collect();
    blocks.extend(tree.chunks().iter().map(|(c, _)| *c));
    Some(blocks)
}

/// Records `version` as the one installed in the target.
pub(crate) fn record_installed(
    state: &Mutex<NodeState>,
    layout: &Layout,
    version: Release,
) -> Result<()> {
    let mut st = lock(state);
    st.installed = Some(Installed {
        channel: layout.channel.clone(),
        seq: version.seq,
        root: version.root.to_string(),
        target: layout.target.clone(),
    });
    st.save(&layout.store_dir)
}

/// Records an upgrade that was switched back from (it is not installed again), keeps
/// `restore` installed, and removes the failed version's tree.
pub(crate) fn record_failure(
    state: &Mutex<NodeState>,
    layout: &Layout,
    failed: FailedUpgrade,
    restore: Release,
) -> Result<()> {
    let seq = failed.seq;
    {
        let mut st = lock(state);
        st.failed = Some(failed);
        st.versions.retain(|v| v.seq != seq);
        // The previous version stays installed.
        if st.installed.as_ref().is_none_or(|i| i.seq != restore.seq) {
            st.installed = Some(Installed {
                channel: layout.channel.clone(),
                seq: restore.seq,
                root: restore.root.to_string(),
                target: layout.target.clone(),
            });
        }
        st.save(&layout.store_dir)?;
    }
    remove_version_dir(&releases(&layout.target), &seq.to_string())
}

/// `bootswarm boot`'s layout: `root` written straight into `target`.
pub(crate) fn install_direct<S: BlockStore + ?Sized>(
    store: &S,
    root: &Cid,
    target: &Path,
) -> Result<MaterialiseStats> {
    let flists = placed_flists(store, root)?;
    let tree = plan(&flists)?;
    materialise(store, &tree, target, &|_| {})
}

/// Whether `TARGET/releases/<seq>` holds a complete version.
pub(crate) fn on_disk(target: &Path, seq: u64) -> bool {
    releases(target).join(seq.to_string()).is_dir()
}

/// Keeps the newest `keep` versions (always `current`), removing older release directories
/// and, when `gc_blocks`, every block none of the kept versions references.
fn collect_garbage(
    store: &SledStore,
    state: &Mutex<NodeState>,
    layout: &Layout,
    current: u64,
    gc_blocks: bool,
) -> Result<()> {
    let kept: Vec<Version> = {
        let mut st = lock(state);
        let keep = layout.keep.max(1);
        let mut versions = st.versions.clone();
        versions.sort_by_key(|v| v.seq);
        let mut kept: Vec<Version> = versions
            .iter()
            .rev()
            .filter(|v| v.seq <= current)
            .take(keep)
            .cloned()
            .collect();
        kept.extend(versions.iter().filter(|v| v.seq > current).cloned());
        kept.sort_by_key(|v| v.seq);
        if kept.len() != st.versions.len() {
            st.versions.clone_from(&kept);
            st.save(&layout.store_dir)?;
        }
        kept
    };
    let rel = releases(&layout.target);
    let names: HashSet<String> = kept.iter().map(|v| v.seq.to_string()).collect();
    for entry in fs::read_dir(&rel).map_err(|e| io_err("read", &rel, &e))? {
        let entry = entry.map_err(|e| io_err("read", &rel, &e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.parse::<u64>().is_ok() && !names.contains(&name) {
            remove_version_dir(&rel, &name)?;
        }
    }
    if !gc_blocks {
        return Ok(());
    }
    let mut referenced = HashSet::new();
    for v in &kept {
        // A kept version whose blocks cannot all be read: keep every block.
        let Some(blocks) = parse_cid(&v.root)
            .ok()
            .and_then(|root| version_blocks(store, &root))
        else {
            return Ok(());
        };
        referenced.extend(blocks);
    }
    let mut removed = 0usize;
    for cid in store.cids() {
        if !referenced.contains(&cid) {
            store.remove(&cid).map_err(|e| {
                Error::new(format!("cannot remove block {cid} from the store ({e})"))
            })?;
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(removed, "blocks no kept version references were removed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_is_a_relative_link_replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        fs::create_dir_all(t.join("releases/1")).unwrap();
        fs::create_dir_all(t.join("releases/2")).unwrap();
        switch(t, 1).unwrap();
        assert_eq!(current_seq(t), Some(1));
        switch(t, 2).unwrap();
        assert_eq!(current_seq(t), Some(2));
        assert_eq!(
            fs::read_link(t.join("current")).unwrap(),
            Path::new("releases/2")
        );
        fs::create_dir_all(t.join("releases/.partial-3/x")).unwrap();
        fs::write(t.join(".current.tmp-1"), b"").unwrap();
        clean_leftovers(t, None).unwrap();
        assert!(!t.join("releases/.partial-3").exists());
        assert!(!t.join(".current.tmp-1").exists());
    }

    /// A root flist with one file of one chunk, stored (and so hashed just now) in `store`.
    fn version_with_file(store: &SledStore, seq: u64, name: &str, content: &[u8]) -> Release {
        use bootswarm_protocol::block::{Codec, Verified, cid_of};
        use bootswarm_protocol::manifest::{ChunkRef, Entry, EntryKind};
        let chunk = cid_of(Codec::Raw, content);
        store
            .put_verified(&Verified::check(chunk, content.to_vec()).unwrap())
            .unwrap();
        let flist = Flist {
            name: "root".into(),
            version: seq.to_string(),
            entries: vec![Entry {
                path: name.into(),
                kind: EntryKind::File,
                mode: 0o644,
                size: content.len() as u64,
                chunks: vec![ChunkRef {
                    cid: chunk,
                    len: content.len() as u32,
                    key: None,
                }],
                target: None,
            }],
            children: Vec::new(),
            routes: Vec::new(),
        };
        let (root, bytes) = flist.to_block().unwrap();
        store.put(&root, &bytes).unwrap();
        Release { seq, root }
    }

    /// The store hashed the block moments ago (its reads skip the hash for a while), then
    /// the block's file changed: the install hashes every byte it writes and refuses it.
    #[test]
    fn a_block_changed_on_disk_after_it_was_hashed_is_caught_at_install() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&dir.path().join("store")).unwrap();
        let layout = Layout {
            target: dir.path().join("target"),
            store_dir: dir.path().join("store"),
            channel: "stable".into(),
            keep: 2,
        };
        fs::create_dir(&layout.target).unwrap();
        let state = Mutex::new(NodeState::default());
        let v1 = version_with_file(&store, 1, "kernel", b"version one");
        write_version(&store, &state, &layout, v1, None, &HashSet::new()).unwrap();
        switch(&layout.target, 1).unwrap();

        let v2 = version_with_file(&store, 2, "kernel", b"version two");
        let chunk = bootswarm_protocol::block::cid_of(
            bootswarm_protocol::block::Codec::Raw,
            b"version two",
        );
        fs::write(store.block_path(&chunk), b"version 2!!").unwrap();
        assert_eq!(
            store.get(&chunk).unwrap().as_deref(),
            Some(&b"version 2!!"[..]),
            "within the trust window the store's own reads skip the hash"
        );

        let err = write_version(&store, &state, &layout, v2, Some(v1), &HashSet::new())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "block {chunk} of 'kernel' changed on disk after it was stored (its bytes no longer match its CID), so 'kernel' was not installed and the block was dropped from the store; run the boot again to fetch it"
            )
        );
        assert!(
            !err.trim_end_matches('.').contains(". "),
            "one sentence: {err}"
        );
        assert!(
            !store.contains(&chunk).unwrap(),
            "dropped, to be fetched again"
        );
        assert_eq!(current_seq(&layout.target), Some(1));
        assert!(!on_disk(&layout.target, 2));
        assert_eq!(
            fs::read(layout.target.join("current/kernel")).unwrap(),
            b"version one"
        );
        let left: Vec<_> = fs::read_dir(releases(&layout.target))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["1"], "nothing of seq 2 is left");
    }

    #[test]
    fn changed_packages_are_added_removed_or_modified_children() {
        use bootswarm_protocol::manifest::ChildRef;
        use bootswarm_protocol::store::MemoryStore;
        let store = MemoryStore::new();
        let cid = |s: &str| {
            bootswarm_protocol::block::cid_of(
                bootswarm_protocol::block::Codec::DagCbor,
                s.as_bytes(),
            )
        };
        let root = |children: &[(&str, Cid)]| {
            let flist = Flist {
                name: "root".into(),
                version: String::new(),
                entries: Vec::new(),
                children: children
                    .iter()
                    .map(|(n, c)| ChildRef {
                        name: (*n).into(),
                        cid: *c,
                    })
                    .collect(),
                routes: Vec::new(),
            };
            let (c, bytes) = flist.to_block().unwrap();
            store.put(&c, &bytes).unwrap();
            c
        };
        let old = root(&[("a", cid("a1")), ("b", cid("b1")), ("c", cid("c1"))]);
        let new = root(&[("a", cid("a1")), ("b", cid("b2")), ("d", cid("d1"))]);
        assert_eq!(changed_packages(&store, &old, &new), ["b", "c", "d"]);
        assert!(changed_packages(&store, &old, &old).is_empty());
        // An old root that cannot be read: everything in the new one counts as changed.
        assert_eq!(
            changed_packages(&store, &cid("gone"), &new),
            ["a", "b", "d"]
        );
    }
}
