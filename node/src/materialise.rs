//! The checked tree of a release written into a directory (the second phase of a boot, and
//! each version the daemon installs).
//!
//! Each file goes to a temporary name in its directory, is written from the store (each
//! block read once and hashed here before its bytes are written, whatever the store
//! remembers of it), fsynced, given its mode and renamed into place; symlinks
//! are created under a temporary name and renamed too; directories get their modes last
//! (deepest first) so a read-only directory can still be filled. Nothing is written outside
//! the target: paths are checked by the protocol and again here, and no symlink inside the
//! target is ever followed while creating entries.

use std::collections::{HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use bootswarm_protocol::block::{self, BlockError, Cid};
use bootswarm_protocol::manifest::{Entry, EntryKind};
use bootswarm_protocol::store::BlockStore;

use crate::error::{Error, Result};
use crate::fsutil::fsync_dir;
use bootswarm_protocol::walk::{Placed as PlacedFlist, Walk, WalkError};

mod stream;

pub use stream::Streamer;

/// Prefix of the materialiser's temporary names: `.bootswarm-tmp.<pid>-<run>-<n>`.
pub const TEMP_PREFIX: &str = ".bootswarm-tmp.";

/// Numbers the materialise runs of this process.
static RUN: AtomicU64 = AtomicU64::new(0);
/// Numbers the temporary names of this process.
static TEMP: AtomicU64 = AtomicU64::new(0);
/// Materialise runs of this process still in progress (their temp files are live).
static ACTIVE: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// Marks a materialise run active until dropped.
struct ActiveRun(u64);

impl ActiveRun {
    fn start() -> ActiveRun {
        let run = RUN.fetch_add(1, Ordering::Relaxed);
        ACTIVE
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(run);
        ActiveRun(run)
    }

    /// A fresh temporary path in `full`'s directory (short: never over the name limit).
    fn temp_for(&self, full: &Path) -> PathBuf {
        let n = TEMP.fetch_add(1, Ordering::Relaxed);
        full.with_file_name(format!(
            "{TEMP_PREFIX}{}-{}-{n}",
            std::process::id(),
            self.0
        ))
    }
}

impl Drop for ActiveRun {
    fn drop(&mut self) {
        ACTIVE
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|r| *r != self.0);
    }
}

/// Whether `name` is a materialiser temp file left by a run that is over: one of an earlier
/// run of this process, or of a process that no longer exists.
fn is_stale_temp(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(TEMP_PREFIX) else {
        return false;
    };
    let mut parts = rest.split('-');
    let (Some(pid), Some(run)) = (
        parts.next().and_then(|p| p.parse::<u32>().ok()),
        parts.next().and_then(|r| r.parse::<u64>().ok()),
    ) else {
        // Not one of our names after all: a malformed leftover, still ours to remove.
        return true;
    };
    if pid == std::process::id() {
        return !ACTIVE
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&run);
    }
    !Path::new("/proc").join(pid.to_string()).exists()
}

/// Removes stale materialiser temp files (files and symlinks only) from `dir`.
fn remove_stale_temps(dir: &Path) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(|e| io_error("list the directory", dir, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error("list the directory", dir, &e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_stale_temp(name) {
            continue;
        }
        let kind = entry
            .file_type()
            .map_err(|e| io_error("access", &entry.path(), &e))?;
        if kind.is_dir() {
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => {
                tracing::info!(path = %entry.path().display(), "removed a stale temporary file")
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(io_error(
                    "remove the stale temporary file",
                    &entry.path(),
                    &e,
                ));
            }
        }
    }
    Ok(())
}

/// Most entries a release may have across all its flists.
pub const MAX_TREE_ENTRIES: usize = 2_000_000;

/// One entry of the combined tree, with its path relative to the target.
#[derive(Debug, Clone)]
pub struct TreeEntry {
    /// `/`-separated path relative to the target (the flist's prefix joined with the entry path).
    pub path: String,
    /// The entry as the flist gives it (its `path` is relative to its flist).
    pub entry: Entry,
}

/// The combined tree of a release: every flist's entries under its prefix, sorted by path,
/// with no duplicates and no entry below a file or a symlink.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    /// The entries, sorted by path (parents before children).
    pub entries: Vec<TreeEntry>,
    /// Distinct chunks in boot-priority order (see [`Tree::chunks`]).
    chunks: Vec<(Cid, u32)>,
}

/// Counts of what [`materialise`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaterialiseStats {
    /// Regular files written.
    pub files: u64,
    /// Directories (given by a flist entry or implied by a prefix) ensured.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Bytes of the files written.
    pub bytes: u64,
    /// Of the files, those written while the boot was still fetching ([`Streamer`]).
    pub streamed: u64,
}

impl Tree {
    /// The distinct chunks of the tree with their lengths, in boot-priority order: the
    /// flists in the publisher's order (root, then its children in order, level by level),
    /// each flist's entries in path order.
    pub fn chunks(&self) -> &[(Cid, u32)] {
        &self.chunks
    }

    /// Total bytes of the tree's files.
    pub fn file_bytes(&self) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.entry.kind == EntryKind::File)
            .map(|e| e.entry.size)
            .sum()
    }
}

/// Combines placed flists (in boot-priority order) into one checked [`Tree`].
pub fn plan(flists: &[PlacedFlist]) -> Result<Tree> {
    let mut entries = Vec::new();
    let chunks = distinct_chunks(flists)?;
    for placed in flists {
        if entries.len() + placed.flist.entries.len() > MAX_TREE_ENTRIES {
            return Err(Error::new(format!(
                "the release has more than {MAX_TREE_ENTRIES} entries; the publisher made an invalid release"
            )));
        }
        for entry in &placed.flist.entries {
            check_rel_path(&entry.path, &placed.cid)?;
            let path = if placed.prefix.is_empty() {
                entry.path.clone()
            } else {
                format!("{}/{}", placed.prefix, entry.path)
            };
            entries.push(TreeEntry {
                path,
                entry: entry.clone(),
            });
        }
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    // Kinds by path: the prefixes of child flists are directories.
    let mut kinds: HashMap<&str, EntryKind> = HashMap::new();
    for placed in flists {
        if !placed.prefix.is_empty() {
            kinds.insert(placed.prefix.as_str(), EntryKind::Dir);
        }
    }
    for e in &entries {
        match kinds.get(e.path.as_str()) {
            Some(EntryKind::Dir) if e.entry.kind == EntryKind::Dir => {
                // A directory entry at a child's prefix (or given twice as a directory) is
                // fine only once as an entry; a duplicate entry is caught below.
            }
            Some(_) => {
                return Err(Error::new(format!(
                    "path '{}' appears twice in the release with different kinds; the publisher made an invalid release",
                    e.path.escape_debug()
                )));
            }
            None => {}
        }
        kinds.insert(e.path.as_str(), e.entry.kind);
    }
    for w in entries.windows(2) {
        if w[0].path == w[1].path {
            return Err(Error::new(format!(
                "path '{}' appears twice in the release; the publisher made an invalid release",
                w[0].path.escape_debug()
            )));
        }
    }
    for e in &entries {
        let mut ancestor = e.path.as_str();
        while let Some(i) = ancestor.rfind('/') {
            ancestor = &ancestor[..i];
            if let Some(k) = kinds.get(ancestor)
                && *k != EntryKind::Dir
            {
                return Err(Error::new(format!(
                    "path '{}' lies below '{}', which is not a directory; the publisher made an invalid release",
                    e.path.escape_debug(),
                    ancestor.escape_debug()
                )));
            }
        }
    }
    Ok(Tree { entries, chunks })
}

/// The distinct chunks of `flists` in order; a chunk given two different lengths is refused.
fn distinct_chunks(flists: &[PlacedFlist]) -> Result<Vec<(Cid, u32)>> {
    let mut seen: HashMap<Cid, u32> = HashMap::new();
    let mut out = Vec::new();
    for c in flists
        .iter()
        .flat_map(|p| p.flist.entries.iter())
        .flat_map(|e| e.chunks.iter())
    {
        match seen.get(&c.cid) {
            Some(&len) if len != c.len => {
                return Err(Error::new(format!(
                    "chunk {} is given lengths {len} and {} in the release's flists; the publisher made an invalid release",
                    c.cid, c.len
                )));
            }
            Some(_) => {}
            None => {
                seen.insert(c.cid, c.len);
                out.push((c.cid, c.len));
            }
        }
    }
    Ok(out)
}

/// Defence in depth: the protocol already refuses such paths when it decodes a flist.
fn check_rel_path(path: &str, flist: &Cid) -> Result<()> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains('\0')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(Error::new(format!(
            "flist {flist} has the path '{}', which would leave the target; the publisher made an invalid release",
            path.escape_debug()
        )));
    }
    Ok(())
}

/// Writes `tree` into `target` (created if missing; its parent must exist), reading every
/// chunk from `store`. `on_bytes` is called with the bytes of each chunk written.
pub fn materialise<S: BlockStore + ?Sized>(
    store: &S,
    tree: &Tree,
    target: &Path,
    on_bytes: &dyn Fn(u64),
) -> Result<MaterialiseStats> {
    materialise_rest(store, tree, target, on_bytes, &HashSet::new())
}

/// [`materialise`] into a target where a [`Streamer`] of this process already wrote the
/// files named in `streamed` (relative paths): those are checked to be in place, not written
/// again.
pub fn materialise_rest<S: BlockStore + ?Sized>(
    store: &S,
    tree: &Tree,
    target: &Path,
    on_bytes: &dyn Fn(u64),
    streamed: &HashSet<String>,
) -> Result<MaterialiseStats> {
    // An rfs block that does not decode is refused before the target is touched.
    crate::rfs::block::check_tree(store, tree)?;
    match fs::metadata(target) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::new(format!(
                "target {} is not a directory; give a directory to --into",
                target.display()
            )));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir(target).map_err(|e| io_error("create the target", target, &e))?;
        }
        Err(e) => return Err(io_error("access the target", target, &e)),
    }
    let mut w = Writer::new(target);
    for e in &tree.entries {
        w.ensure_parents(&e.path)?;
        let full = target.join(&e.path);
        match e.entry.kind {
            EntryKind::Dir => w.dir(&e.path, &full, e.entry.mode)?,
            EntryKind::File if streamed.contains(&e.path) && w.in_place(&full, &e.entry) => {}
            EntryKind::File => w.file(store, &e.path, &full, &e.entry, on_bytes)?,
            EntryKind::Symlink => w.symlink(&e.path, &full, &e.entry)?,
        }
    }
    // Durability: every directory in which something was created or renamed, then the target.
    let mut synced = HashSet::new();
    for dir in w
        .touched
        .iter()
        .chain(std::iter::once(&target.to_path_buf()))
    {
        if synced.insert(dir.clone()) {
            fsync_dir(dir).map_err(|e| io_error("fsync the directory", dir, &e))?;
        }
    }
    // Directory modes last, deepest first, so read-only directories could still be filled.
    for (dir, mode) in w.dir_modes.iter().rev() {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode & 0o7777))
            .map_err(|e| io_error("set the mode of", dir, &e))?;
    }
    Ok(w.stats)
}

struct Writer<'a> {
    target: &'a Path,
    /// This run (names its temp files).
    run: ActiveRun,
    stats: MaterialiseStats,
    /// Relative paths known to be real directories inside the target.
    known_dirs: HashSet<String>,
    /// Directories to fsync at the end.
    touched: Vec<PathBuf>,
    /// Directories already cleared of stale temp files.
    cleaned: HashSet<PathBuf>,
    /// Directories given by entries, with their modes, in tree order.
    dir_modes: Vec<(PathBuf, u32)>,
}

impl<'a> Writer<'a> {
    fn new(target: &'a Path) -> Self {
        Writer {
            target,
            run: ActiveRun::start(),
            stats: MaterialiseStats::default(),
            known_dirs: HashSet::new(),
            touched: Vec::new(),
            cleaned: HashSet::new(),
            dir_modes: Vec::new(),
        }
    }

    /// Whether a file written earlier by a [`Streamer`] is in place with its length (then
    /// counted as written).
    fn in_place(&mut self, full: &Path, entry: &Entry) -> bool {
        let placed = fs::symlink_metadata(full)
            .is_ok_and(|m| m.file_type().is_file() && m.len() == entry.size);
        if placed {
            self.stats.files += 1;
            self.stats.bytes += entry.size;
            self.stats.streamed += 1;
            self.touched
                .push(crate::fsutil::parent_dir(full).to_path_buf());
        }
        placed
    }

    /// A temp path beside `full`, after clearing stale temp files from its directory once.
    fn temp_for(&mut self, full: &Path) -> Result<PathBuf> {
        let dir = crate::fsutil::parent_dir(full);
        if !self.cleaned.contains(dir) {
            remove_stale_temps(dir)?;
            self.cleaned.insert(dir.to_path_buf());
        }
        Ok(self.run.temp_for(full))
    }

    /// Makes sure every ancestor of `rel` inside the target is a real directory (never a
    /// symlink), creating missing ones with mode 0755.
    fn ensure_parents(&mut self, rel: &str) -> Result<()> {
        let mut end = 0;
        while let Some(i) = rel[end..].find('/') {
            let ancestor = &rel[..end + i];
            end += i + 1;
            if self.known_dirs.contains(ancestor) {
                continue;
            }
            let full = self.target.join(ancestor);
            match fs::symlink_metadata(&full) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(not_a_dir(&full)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::DirBuilder::new()
                        .mode(0o755)
                        .create(&full)
                        .map_err(|e| io_error("create the directory", &full, &e))?;
                    self.touched
                        .push(crate::fsutil::parent_dir(&full).to_path_buf());
                    self.stats.dirs += 1;
                }
                Err(e) => return Err(io_error("access", &full, &e)),
            }
            self.known_dirs.insert(ancestor.to_string());
        }
        Ok(())
    }

    fn dir(&mut self, rel: &str, full: &Path, mode: u32) -> Result<()> {
        match fs::symlink_metadata(full) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(not_a_dir(full)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .mode(0o700)
                    .create(full)
                    .map_err(|e| io_error("create the directory", full, &e))?;
                self.touched
                    .push(crate::fsutil::parent_dir(full).to_path_buf());
            }
            Err(e) => return Err(io_error("access", full, &e)),
        }
        self.known_dirs.insert(rel.to_string());
        self.dir_modes.push((full.to_path_buf(), mode));
        self.stats.dirs += 1;
        Ok(())
    }

    fn file<S: BlockStore + ?Sized>(
        &mut self,
        store: &S,
        rel: &str,
        full: &Path,
        entry: &Entry,
        on_bytes: &dyn Fn(u64),
    ) -> Result<()> {
        self.place(full, |tmp| write_file(store, rel, tmp, entry, on_bytes))?;
        self.stats.files += 1;
        self.stats.bytes += entry.size;
        Ok(())
    }

    fn symlink(&mut self, rel: &str, full: &Path, entry: &Entry) -> Result<()> {
        let Some(link) = entry.target.as_deref() else {
            return Err(Error::new(format!(
                "symlink '{}' has no target in its flist; the publisher made an invalid release",
                rel.escape_debug()
            )));
        };
        self.place(full, |tmp| {
            std::os::unix::fs::symlink(link, tmp)
                .map_err(|e| io_error("create the symlink", full, &e))
        })?;
        self.stats.symlinks += 1;
        Ok(())
    }

    /// Creates an entry with `create` under a temp name beside `full`, then renames it into
    /// place (never over a directory); the temp name is removed on failure.
    fn place(&mut self, full: &Path, create: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
        refuse_dir_at(full)?;
        let tmp = self.temp_for(full)?;
        let result = create(&tmp).and_then(|()| {
            refuse_dir_at(full)?;
            fs::rename(&tmp, full).map_err(|e| io_error("rename into place", full, &e))
        });
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.touched
            .push(crate::fsutil::parent_dir(full).to_path_buf());
        Ok(())
    }
}

/// Writes a file's chunks from the store to `tmp` (created new, never through a link),
/// sets its mode and fsyncs it.
fn write_file<S: BlockStore + ?Sized>(
    store: &S,
    rel: &str,
    tmp: &Path,
    entry: &Entry,
    on_bytes: &dyn Fn(u64),
) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .map_err(|e| io_error("create", tmp, &e))?;
    let mut written: u64 = 0;
    for c in &entry.chunks {
        let bytes = match store.get_unverified(&c.cid) {
            Ok(Some(b)) => b,
            Ok(None) => {
                return Err(Error::new(format!(
                    "block {} of '{}' vanished from the store; run the boot again",
                    c.cid,
                    rel.escape_debug()
                )));
            }
            Err(e) => {
                return Err(Error::new(format!(
                    "block {} of '{}' could not be read from the store ({}); run the boot again",
                    c.cid,
                    rel.escape_debug(),
                    e.to_string().trim_end_matches('.')
                )));
            }
        };
        verify_installed(store, rel, &c.cid, &bytes)?;
        // The chunk's bytes: as stored (of the listed length), or an rfs block decrypted and
        // decompressed.
        let bytes = crate::rfs::block::decode_chunk(rel, c, bytes)?;
        file.write_all(&bytes)
            .map_err(|e| io_error("write", tmp, &e))?;
        written += bytes.len() as u64;
        on_bytes(bytes.len() as u64);
    }
    if written != entry.size {
        return Err(Error::new(format!(
            "file '{}' has {written} bytes of chunks but its flist says {}; the publisher made an invalid release",
            rel.escape_debug(),
            entry.size
        )));
    }
    file.set_permissions(fs::Permissions::from_mode(entry.mode & 0o7777))
        .map_err(|e| io_error("set the mode of", tmp, &e))?;
    file.sync_all().map_err(|e| io_error("fsync", tmp, &e))?;
    Ok(())
}

/// Hashes a block read for `rel` before it is written. A block that no longer matches its
/// CID changed on disk after the store verified it: it is dropped from the store (so the next
/// boot fetches it) and the file is not installed.
fn verify_installed<S: BlockStore + ?Sized>(
    store: &S,
    rel: &str,
    cid: &Cid,
    bytes: &[u8],
) -> Result<()> {
    match block::verify(cid, bytes) {
        Ok(()) => Ok(()),
        Err(BlockError::Cid { source, .. }) => Err(Error::new(format!(
            "block {cid} of '{}' has an unacceptable CID ({source}); the publisher made an invalid release",
            rel.escape_debug()
        ))),
        Err(_) => {
            let dropped = match store.remove(cid) {
                Ok(()) => {
                    "and the block was dropped from the store; run the boot again to fetch it"
                        .to_string()
                }
                Err(e) => format!(
                    "and dropping the block from the store failed too ({}); check the store directory",
                    e.to_string().trim_end_matches('.')
                ),
            };
            tracing::warn!(%cid, file = %rel.escape_debug(), "a stored block changed on disk after it was verified");
            Err(Error::new(format!(
                "block {cid} of '{}' changed on disk after it was stored (its bytes no longer match its CID), so '{}' was not installed {dropped}",
                rel.escape_debug(),
                rel.escape_debug()
            )))
        }
    }
}

/// A directory where a file or symlink is to go is refused (a rename would fail or, for an
/// empty directory, replace it silently).
fn refuse_dir_at(full: &Path) -> Result<()> {
    match fs::symlink_metadata(full) {
        Ok(m) if m.is_dir() => Err(Error::new(format!(
            "{} is a directory in the target but the release has a file or symlink there; remove it or boot into an empty directory",
            full.display()
        ))),
        _ => Ok(()),
    }
}

fn not_a_dir(full: &Path) -> Error {
    Error::new(format!(
        "{} exists in the target and is not a directory (a file or a symlink); remove it or boot into an empty directory",
        full.display()
    ))
}

fn io_error(what: &str, path: &Path, e: &io::Error) -> Error {
    Error::new(format!(
        "cannot {what} {} ({e}); check the target directory and free space",
        path.display()
    ))
}

/// The flists under `root`, each placed under its prefix (children under their names), all
/// read from `store` and hashed here.
pub fn placed_from_store<S: BlockStore + ?Sized>(
    store: &S,
    root: &Cid,
) -> Result<Vec<PlacedFlist>> {
    Walk::read(*root, |cid| {
        let bytes = store
            .get_unverified(cid)
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
        if block::verify(cid, &bytes).is_err() {
            // Dropped so that it is fetched again.
            let _ = store.remove(cid);
            return Err(Error::new(format!(
                "flist {cid} changed on disk after it was stored (its bytes no longer match its CID) and was dropped from the store; nothing was installed, run the boot again to fetch it"
            )));
        }
        bootswarm_protocol::manifest::Flist::decode(&bytes).map_err(|e| {
            Error::new(format!(
                "flist {cid} is not a valid flist ({}); the publisher made an invalid release",
                e.to_string().trim_end_matches('.')
            ))
        })
    })
}

impl From<WalkError> for Error {
    fn from(e: WalkError) -> Self {
        Error::new(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use bootswarm_protocol::block::{Codec, cid_of};
    use bootswarm_protocol::manifest::{ChunkRef, Flist};
    use bootswarm_protocol::store::MemoryStore;

    use super::*;

    fn entry(path: &str, kind: EntryKind, mode: u32) -> Entry {
        Entry {
            path: path.into(),
            kind,
            mode,
            size: 0,
            chunks: vec![],
            target: None,
        }
    }

    fn file(store: &MemoryStore, path: &str, bytes: &[u8], mode: u32) -> Entry {
        let cid = cid_of(Codec::Raw, bytes);
        store.put(&cid, bytes).unwrap();
        Entry {
            size: bytes.len() as u64,
            chunks: vec![ChunkRef {
                cid,
                len: bytes.len() as u32,
                key: None,
            }],
            ..entry(path, EntryKind::File, mode)
        }
    }

    fn placed(prefix: &str, entries: Vec<Entry>) -> PlacedFlist {
        PlacedFlist {
            cid: cid_of(Codec::DagCbor, prefix.as_bytes()),
            prefix: prefix.into(),
            flist: Flist {
                name: prefix.into(),
                version: "1".into(),
                entries,
                children: vec![],
                routes: Vec::new(),
            },
        }
    }

    #[test]
    fn plan_refuses_entries_below_a_file_of_another_flist() {
        let store = MemoryStore::new();
        let root = placed("", vec![file(&store, "pkg", b"x", 0o644)]);
        let child = placed("pkg", vec![file(&store, "bin", b"y", 0o755)]);
        assert!(plan(&[root, child]).is_err());
    }

    #[test]
    fn plan_refuses_duplicates_and_escaping_paths() {
        let store = MemoryStore::new();
        let a = placed("", vec![file(&store, "p/x", b"x", 0o644)]);
        let b = placed("p", vec![file(&store, "x", b"y", 0o644)]);
        assert!(plan(&[a, b]).is_err());
        let bad = placed("", vec![file(&store, "../x", b"x", 0o644)]);
        assert!(plan(&[bad]).is_err());
    }

    #[test]
    fn materialise_never_writes_through_a_symlink_in_the_target() {
        let store = MemoryStore::new();
        let outside = tempfile::tempdir().unwrap();
        let target = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), target.path().join("pkg")).unwrap();
        let tree = plan(&[placed("pkg", vec![file(&store, "evil", b"x", 0o644)])]).unwrap();
        let err = materialise(&store, &tree, target.path(), &|_| {}).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn materialise_keeps_modes_links_and_empty_dirs() {
        let store = MemoryStore::new();
        let mut link = entry("lib/l", EntryKind::Symlink, 0o777);
        link.target = Some("../bin/t".into());
        let entries = vec![
            entry("bin", EntryKind::Dir, 0o755),
            file(&store, "bin/t", b"#!/bin/sh\n", 0o755),
            entry("empty", EntryKind::Dir, 0o500),
            entry("lib", EntryKind::Dir, 0o755),
            link,
        ];
        let target = tempfile::tempdir().unwrap();
        let tree = plan(&[placed("", entries)]).unwrap();
        let stats = materialise(&store, &tree, target.path(), &|_| {}).unwrap();
        assert_eq!((stats.files, stats.dirs, stats.symlinks), (1, 3, 1));
        let t = target.path();
        assert_eq!(fs::read(t.join("bin/t")).unwrap(), b"#!/bin/sh\n");
        let mode = |p: &str| {
            fs::symlink_metadata(t.join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("bin/t"), 0o755);
        assert_eq!(mode("empty"), 0o500);
        assert_eq!(
            fs::read_link(t.join("lib/l")).unwrap(),
            Path::new("../bin/t")
        );
    }

    #[test]
    fn a_missing_block_leaves_no_temp_file() {
        let store = MemoryStore::new();
        let mut e = file(&store, "f", b"hello", 0o644);
        e.chunks[0].cid = cid_of(Codec::Raw, b"other");
        let target = tempfile::tempdir().unwrap();
        let tree = plan(&[placed("", vec![e])]).unwrap();
        assert!(materialise(&store, &tree, target.path(), &|_| {}).is_err());
        assert_eq!(fs::read_dir(target.path()).unwrap().count(), 0);
    }

    #[test]
    fn stale_temp_files_are_removed_from_directories_written_to() {
        let store = MemoryStore::new();
        let target = tempfile::tempdir().unwrap();
        let t = target.path();
        fs::create_dir(t.join("bin")).unwrap();
        fs::create_dir(t.join("untouched")).unwrap();
        let own = std::process::id();
        // An interrupted run of a process that is gone, an earlier run of this process,
        // a live process's (pid 1 always exists), an unrelated dotfile, and one in a
        // directory this boot does not write to.
        let dead = format!("{TEMP_PREFIX}4294967295-0-7");
        let earlier = format!("{TEMP_PREFIX}{own}-{}-3", u64::MAX);
        let live = format!("{TEMP_PREFIX}1-0-0");
        for name in [&dead, &earlier, &live, &".keep".to_string()] {
            fs::write(t.join(name), b"half").unwrap();
        }
        fs::write(t.join("bin").join(&dead), b"half").unwrap();
        std::os::unix::fs::symlink("x", t.join("bin").join(&earlier)).unwrap();
        fs::write(t.join("untouched").join(&dead), b"half").unwrap();

        let tree = plan(&[placed(
            "",
            vec![
                file(&store, "top", b"top", 0o644),
                file(&store, "bin/tool", b"tool", 0o755),
            ],
        )])
        .unwrap();
        materialise(&store, &tree, t, &|_| {}).unwrap();

        assert!(!t.join(&dead).exists());
        assert!(!t.join(&earlier).exists());
        assert!(t.join(&live).exists(), "a live process's temp file is kept");
        assert!(t.join(".keep").exists());
        assert!(!t.join("bin").join(&dead).exists());
        assert!(fs::symlink_metadata(t.join("bin").join(&earlier)).is_err());
        assert!(t.join("untouched").join(&dead).exists());
        assert_eq!(fs::read(t.join("bin/tool")).unwrap(), b"tool");
        // This run's own temp names carry the prefix and none is left.
        let left: Vec<_> = fs::read_dir(t)
            .unwrap()
            .chain(fs::read_dir(t.join("bin")).unwrap())
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(TEMP_PREFIX) && *n != live)
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn temp_names_of_an_active_run_are_not_stale() {
        let run = ActiveRun::start();
        let tmp = run.temp_for(Path::new("/x/some-file"));
        let name = tmp.file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.starts_with(TEMP_PREFIX), "{name}");
        assert!(!is_stale_temp(&name));
        drop(run);
        assert!(is_stale_temp(&name));
        assert!(!is_stale_temp("ordinary-file"));
    }
}
