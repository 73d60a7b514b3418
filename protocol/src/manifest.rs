//! Flists: one package manifest per DAG-CBOR block, deterministically encoded and totally decoded.

use crate::block::{Cid, Codec, check_cid, cid_of};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

mod rfs;
pub use rfs::{
    BlockKey, GCM_TAG_LEN, MAX_RFS_CHUNK, MAX_ROUTE_URL_LEN, MAX_ROUTES, Route, stored_cap,
};

/// Largest encoded flist.
pub const MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;
/// Longest entry path or symlink target, in bytes.
pub const MAX_PATH_LEN: usize = 4096;
/// Most entries in one flist.
pub const MAX_ENTRIES: usize = 200_000;
/// Most child flists referenced from one flist.
pub const MAX_CHILDREN: usize = 4096;
/// Longest flist name, version or child name, in bytes.
pub const MAX_NAME_LEN: usize = 255;
/// Largest permission mode (`0o7777`).
pub const MAX_MODE: u32 = 0o7777;
/// Longest package (child flist) name, in bytes.
pub const MAX_PACKAGE_NAME_LEN: usize = 128;

/// A package manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flist {
    /// Package name.
    pub name: String,
    /// Package version.
    pub version: String,
    /// Entries, sorted strictly by path.
    pub entries: Vec<Entry>,
    /// Child flists in boot-priority order (the publisher's order); names are unique.
    pub children: Vec<ChildRef>,
    /// Stores of the flist's rfs blocks (an imported rfs flist's routes); omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
}

/// One file, directory or symlink of a flist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Relative, normalised path.
    pub path: String,
    /// What the entry is.
    pub kind: EntryKind,
    /// Permission bits (at most `0o7777`).
    pub mode: u32,
    /// File size in bytes; 0 for directories and symlinks.
    pub size: u64,
    /// File content, in order; empty for directories and symlinks.
    pub chunks: Vec<ChunkRef>,
    /// Symlink target; `None` for files and directories.
    pub target: Option<String>,
}

/// The kind of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
}

/// One chunk of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// Raw CID of the chunk.
    pub cid: Cid,
    /// Chunk length in bytes (the plaintext length of an rfs block).
    pub len: u32,
    /// The key of an rfs block (a blake2b-256 CID); omitted for sha2-256 chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<BlockKey>,
}

/// A reference to a child flist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildRef {
    /// Child name (one path component).
    pub name: String,
    /// DAG-CBOR CID of the child flist.
    pub cid: Cid,
}

/// Why a flist was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The encoding is larger than [`MAX_MANIFEST_SIZE`].
    #[error(
        "flist is {len} bytes, over the {MAX_MANIFEST_SIZE}-byte limit; split the package into child flists"
    )]
    TooLarge {
        /// Encoded length.
        len: usize,
    },
    /// The bytes are not a DAG-CBOR flist.
    #[error("flist could not be decoded ({0}); the block is corrupt or not a flist")]
    Decode(String),
    /// The bytes decode but are not the deterministic encoding.
    #[error("flist is not canonically encoded DAG-CBOR; re-encode it with Flist::encode")]
    NotCanonical,
    /// An entry path is not a relative, normalised path.
    #[error("flist path {path:?} is invalid: {reason}; fix the path in the package")]
    BadPath {
        /// The path (or a note that it is too long).
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two entries have the same path.
    #[error("flist path {path:?} appears more than once; keep a single entry for it")]
    DuplicatePath {
        /// The repeated path.
        path: String,
    },
    /// Entries are not in strictly ascending path order.
    #[error("flist entries are not sorted by path; call Flist::normalise before encoding")]
    Unsorted,
    /// Too many entries or children.
    #[error("flist has {count} {what}, over the limit; split the package into child flists")]
    TooMany {
        /// "entries" or "children".
        what: &'static str,
        /// How many there are.
        count: usize,
    },
    /// An entry breaks a rule other than its path syntax.
    #[error("flist entry {path:?} is invalid: {reason}; fix the entry in the package")]
    BadEntry {
        /// The entry's path.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A child reference is invalid.
    #[error("flist child {name:?} is invalid: {reason}; fix the child reference")]
    BadChild {
        /// The child's name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The flist's own name or version is invalid.
    #[error("flist {what} {value:?} is invalid: {reason}; fix the package metadata")]
    BadName {
        /// "name" or "version".
        what: &'static str,
        /// The value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A route is invalid.
    #[error("flist route {url:?} is invalid: {reason}; fix the flist's routes")]
    BadRoute {
        /// The route's URL (or the count).
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// A string for error messages, shortened if huge.
fn shown(s: &str) -> String {
    const SHOWN: usize = 200;
    if s.len() <= SHOWN {
        return s.to_owned();
    }
    let mut end = SHOWN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

fn check_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("it is empty");
    }
    if path.len() > MAX_PATH_LEN {
        return Err("it is longer than 4096 bytes");
    }
    if path.contains('\0') {
        return Err("it contains a NUL byte");
    }
    if path.starts_with('/') {
        return Err("it is absolute");
    }
    if path.ends_with('/') {
        return Err("it ends with '/'");
    }
    for component in path.split('/') {
        match component {
            "" => return Err("it has an empty component"),
            "." => return Err("it has a '.' component"),
            ".." => return Err("it has a '..' component"),
            _ => {}
        }
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return Err("it is longer than 255 bytes");
    }
    if name.contains('\0') {
        return Err("it contains a NUL byte");
    }
    if name.contains('/') {
        return Err("it contains '/'");
    }
    if name == "." || name == ".." {
        return Err("it is '.' or '..'");
    }
    Ok(())
}

/// Checks a package name (a child flist's name): `[A-Za-z0-9][A-Za-z0-9._+-]*`, at most
/// [`MAX_PACKAGE_NAME_LEN`] bytes, so that it is one path component, never an option, and
/// nothing a shell or a log line would interpret. The error is a clause ("it starts with
/// '-'").
pub fn check_package_name(name: &str) -> Result<(), &'static str> {
    let Some(first) = name.chars().next() else {
        return Err("it is empty");
    };
    if name.len() > MAX_PACKAGE_NAME_LEN {
        return Err("it is longer than 128 bytes");
    }
    if !first.is_ascii_alphanumeric() {
        return Err("it does not start with a letter or a digit");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-');
    if !name.chars().all(allowed) {
        return Err("it holds a character other than letters, digits, '.', '_', '+' and '-'");
    }
    Ok(())
}

fn check_version(version: &str) -> Result<(), &'static str> {
    if version.len() > MAX_NAME_LEN {
        return Err("it is longer than 255 bytes");
    }
    if version.contains('\0') {
        return Err("it contains a NUL byte");
    }
    Ok(())
}

fn check_entry(entry: &Entry) -> Result<(), &'static str> {
    if entry.mode > MAX_MODE {
        return Err("its mode has bits above 0o7777");
    }
    match entry.kind {
        EntryKind::File => {
            if entry.target.is_some() {
                return Err("a file has a symlink target");
            }
            let mut sum = 0u64;
            for chunk in &entry.chunks {
                rfs::check_chunk(chunk)?;
                sum += u64::from(chunk.len);
            }
            if sum != entry.size {
                return Err("its chunk lengths do not add up to its size");
            }
        }
        EntryKind::Dir => {
            if !entry.chunks.is_empty() || entry.size != 0 {
                return Err("a directory has content");
            }
            if entry.target.is_some() {
                return Err("a directory has a symlink target");
            }
        }
        EntryKind::Symlink => {
            if !entry.chunks.is_empty() || entry.size != 0 {
                return Err("a symlink has content");
            }
            let Some(target) = &entry.target else {
                return Err("a symlink has no target");
            };
            if target.is_empty() {
                return Err("its symlink target is empty");
            }
            if target.len() > MAX_PATH_LEN {
                return Err("its symlink target is longer than 4096 bytes");
            }
            if target.contains('\0') {
                return Err("its symlink target contains a NUL byte");
            }
        }
    }
    Ok(())
}

fn encode_unchecked(flist: &Flist) -> Result<Vec<u8>, ManifestError> {
    serde_ipld_dagcbor::to_vec(flist).map_err(|e| ManifestError::Decode(e.to_string()))
}

impl Flist {
    /// Validates, then encodes deterministically. Refuses unsorted flists; see [`Flist::normalise`].
    pub fn encode(&self) -> Result<Vec<u8>, ManifestError> {
        self.validate()?;
        let bytes = encode_unchecked(self)?;
        if bytes.len() > MAX_MANIFEST_SIZE {
            return Err(ManifestError::TooLarge { len: bytes.len() });
        }
        Ok(bytes)
    }

    /// Sorts entries by path. Children keep their order: it is the boot priority.
    pub fn normalise(&mut self) {
        self.entries.sort_by(|a, b| a.path.cmp(&b.path));
    }

    /// Decodes and validates; refuses oversize, non-canonical and trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Flist, ManifestError> {
        if bytes.len() > MAX_MANIFEST_SIZE {
            return Err(ManifestError::TooLarge { len: bytes.len() });
        }
        let flist: Flist = serde_ipld_dagcbor::from_slice(bytes)
            .map_err(|e| ManifestError::Decode(e.to_string()))?;
        if encode_unchecked(&flist)? != bytes {
            return Err(ManifestError::NotCanonical);
        }
        flist.validate()?;
        Ok(flist)
    }

    /// Checks every flist rule.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let bad_name = |what, value: &str, reason| ManifestError::BadName {
            what,
            value: shown(value),
            reason,
        };
        check_name(&self.name).map_err(|reason| bad_name("name", &self.name, reason))?;
        check_version(&self.version)
            .map_err(|reason| bad_name("version", &self.version, reason))?;
        if self.entries.len() > MAX_ENTRIES {
            return Err(ManifestError::TooMany {
                what: "entries",
                count: self.entries.len(),
            });
        }
        if self.children.len() > MAX_CHILDREN {
            return Err(ManifestError::TooMany {
                what: "children",
                count: self.children.len(),
            });
        }
        let mut previous: Option<&str> = None;
        // Paths of files and symlinks: nothing may live below them.
        let mut leaves: BTreeSet<&str> = BTreeSet::new();
        for entry in &self.entries {
            let path = entry.path.as_str();
            check_path(path).map_err(|reason| ManifestError::BadPath {
                path: shown(path),
                reason,
            })?;
            if let Some(prev) = previous {
                if path == prev {
                    return Err(ManifestError::DuplicatePath { path: shown(path) });
                }
                if path < prev {
                    return Err(ManifestError::Unsorted);
                }
            }
            previous = Some(path);
            check_entry(entry).map_err(|reason| ManifestError::BadEntry {
                path: shown(path),
                reason,
            })?;
            if entry.kind != EntryKind::Dir {
                leaves.insert(path);
            }
        }
        if !leaves.is_empty() {
            for entry in &self.entries {
                let path = entry.path.as_str();
                let below_leaf = path
                    .match_indices('/')
                    .any(|(i, _)| leaves.contains(&path[..i]));
                if below_leaf {
                    return Err(ManifestError::BadEntry {
                        path: shown(path),
                        reason: "an ancestor is a symlink or a file",
                    });
                }
            }
        }
        rfs::check_routes(&self.routes)
            .map_err(|(url, reason)| ManifestError::BadRoute { url, reason })?;
        let mut names = std::collections::BTreeSet::new();
        for child in &self.children {
            let name = child.name.as_str();
            let bad = |reason| ManifestError::BadChild {
                name: shown(name),
                reason,
            };
            check_package_name(name).map_err(bad)?;
            if !names.insert(name) {
                return Err(bad("its name appears more than once"));
            }
            if check_cid(&child.cid) != Ok(Codec::DagCbor) {
                return Err(bad("its CID is not a dag-cbor sha2-256 CIDv1"));
            }
        }
        Ok(())
    }

    /// The DAG-CBOR CID and bytes of [`Flist::encode`].
    pub fn to_block(&self) -> Result<(Cid, Vec<u8>), ManifestError> {
        let bytes = self.encode()?;
        Ok((cid_of(Codec::DagCbor, &bytes), bytes))
    }

    /// Sum of the file sizes (saturating).
    pub fn total_size(&self) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .fold(0u64, |acc, e| acc.saturating_add(e.size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::MAX_BLOCK_SIZE;

    fn chunk(data: &[u8]) -> ChunkRef {
        ChunkRef {
            cid: cid_of(Codec::Raw, data),
            len: u32::try_from(data.len()).unwrap(),
            key: None,
        }
    }

    fn file(path: &str, parts: &[&[u8]]) -> Entry {
        let chunks: Vec<ChunkRef> = parts.iter().map(|p| chunk(p)).collect();
        Entry {
            path: path.into(),
            kind: EntryKind::File,
            mode: 0o644,
            size: chunks.iter().map(|c| u64::from(c.len)).sum(),
            chunks,
            target: None,
        }
    }

    fn dir(path: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::Dir,
            mode: 0o755,
            size: 0,
            chunks: vec![],
            target: None,
        }
    }

    fn symlink(path: &str, target: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::Symlink,
            mode: 0o777,
            size: 0,
            chunks: vec![],
            target: Some(target.into()),
        }
    }

    fn sample() -> Flist {
        Flist {
            name: "zos".into(),
            version: "3.14.1".into(),
            entries: vec![
                dir("bin"),
                file("bin/zinit", &[b"hello", b"world"]),
                symlink("bin/zinit-link", "zinit"),
                file("etc/empty", &[]),
            ],
            children: vec![ChildRef {
                name: "corex".into(),
                cid: cid_of(Codec::DagCbor, b"child"),
            }],
            routes: Vec::new(),
        }
    }

    fn with_entries(entries: Vec<Entry>) -> Flist {
        Flist {
            entries,
            ..sample()
        }
    }

    fn bad_path(path: &str) -> Result<(), ManifestError> {
        with_entries(vec![dir(path)]).validate()
    }

    fn reason(err: Result<(), ManifestError>) -> &'static str {
        match err {
            Err(ManifestError::BadPath { reason, .. } | ManifestError::BadEntry { reason, .. }) => {
                reason
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn round_trip() {
        let f = sample();
        let bytes = f.encode().unwrap();
        assert_eq!(Flist::decode(&bytes).unwrap(), f);
        let (cid, block) = f.to_block().unwrap();
        assert_eq!(block, bytes);
        assert_eq!(crate::block::verify(&cid, &block), Ok(()));
        assert_eq!(check_cid(&cid), Ok(Codec::DagCbor));
        assert_eq!(f.total_size(), 10);
    }

    #[test]
    fn encoding_is_deterministic() {
        assert_eq!(sample().encode().unwrap(), sample().encode().unwrap());
    }

    #[test]
    fn dotdot_is_rejected() {
        assert_eq!(reason(bad_path("a/../b")), "it has a '..' component");
        assert_eq!(reason(bad_path("..")), "it has a '..' component");
        assert_eq!(reason(bad_path("./a")), "it has a '.' component");
    }

    #[test]
    fn absolute_is_rejected() {
        assert_eq!(reason(bad_path("/etc/passwd")), "it is absolute");
    }

    #[test]
    fn nul_is_rejected() {
        assert_eq!(reason(bad_path("a\0b")), "it contains a NUL byte");
    }

    #[test]
    fn empty_component_is_rejected() {
        assert_eq!(reason(bad_path("a//b")), "it has an empty component");
        assert_eq!(reason(bad_path("")), "it is empty");
        assert_eq!(reason(bad_path("a/")), "it ends with '/'");
    }

    #[test]
    fn overlong_path_is_rejected() {
        let long = "a".repeat(MAX_PATH_LEN + 1);
        assert_eq!(reason(bad_path(&long)), "it is longer than 4096 bytes");
        assert_eq!(bad_path(&"a".repeat(MAX_PATH_LEN)), Ok(()));
    }

    #[test]
    fn duplicate_is_rejected() {
        let f = with_entries(vec![dir("a"), dir("a")]);
        assert_eq!(
            f.validate(),
            Err(ManifestError::DuplicatePath { path: "a".into() })
        );
    }

    #[test]
    fn unsorted_is_rejected_and_normalise_fixes_it() {
        let mut f = with_entries(vec![dir("b"), dir("a")]);
        assert_eq!(f.validate(), Err(ManifestError::Unsorted));
        assert_eq!(f.encode(), Err(ManifestError::Unsorted));
        f.normalise();
        assert_eq!(f.validate(), Ok(()));

        // Children keep the publisher's order: it is the boot priority.
        let mut f = sample();
        f.children.push(ChildRef {
            name: "a".into(),
            cid: cid_of(Codec::DagCbor, b"a"),
        });
        let before = f.children.clone();
        assert_eq!(f.validate(), Ok(()));
        f.normalise();
        assert_eq!(f.children, before);
    }

    #[test]
    fn entry_below_symlink_is_rejected() {
        // "a-b" sorts between "a" and "a/x", so the descendant is not adjacent.
        let f = with_entries(vec![symlink("a", "/etc"), dir("a-b"), file("a/x", &[b"x"])]);
        assert_eq!(
            f.validate(),
            Err(ManifestError::BadEntry {
                path: "a/x".into(),
                reason: "an ancestor is a symlink or a file"
            })
        );
        let f = with_entries(vec![symlink("a", "/etc"), dir("a/b/c")]);
        assert!(f.validate().is_err());
    }

    #[test]
    fn entry_below_file_is_rejected() {
        let f = with_entries(vec![file("a", &[b"x"]), dir("a/b")]);
        assert_eq!(reason(f.validate()), "an ancestor is a symlink or a file");
        let f = with_entries(vec![dir("a"), dir("a/b"), file("ab", &[b"x"])]);
        assert_eq!(f.validate(), Ok(()));
    }

    #[test]
    fn chunk_sum_mismatch_is_rejected() {
        let mut e = file("f", &[b"abc"]);
        e.size = 4;
        assert_eq!(
            reason(with_entries(vec![e]).validate()),
            "its chunk lengths do not add up to its size"
        );
    }

    #[test]
    fn bad_chunks_are_rejected() {
        let mut e = file("f", &[b"abc"]);
        e.chunks[0].len = 0;
        e.size = 0;
        assert!(reason(with_entries(vec![e]).validate()).contains("chunk length"));
        let mut e = file("f", &[b"abc"]);
        e.chunks[0].cid = cid_of(Codec::DagCbor, b"abc");
        assert!(reason(with_entries(vec![e]).validate()).contains("not a raw"));
        let mut e = file("f", &[b"abc"]);
        e.chunks[0].len = u32::try_from(MAX_BLOCK_SIZE + 1).unwrap();
        e.size = MAX_BLOCK_SIZE as u64 + 1;
        assert!(reason(with_entries(vec![e]).validate()).contains("chunk length"));
    }

    #[test]
    fn kind_rules() {
        let mut d = dir("d");
        d.size = 1;
        assert_eq!(
            reason(with_entries(vec![d]).validate()),
            "a directory has content"
        );
        let mut d = dir("d");
        d.target = Some("x".into());
        assert_eq!(
            reason(with_entries(vec![d]).validate()),
            "a directory has a symlink target"
        );
        let mut s = symlink("s", "x");
        s.chunks.push(chunk(b"x"));
        s.size = 1;
        assert_eq!(
            reason(with_entries(vec![s]).validate()),
            "a symlink has content"
        );
        let mut s = symlink("s", "x");
        s.target = None;
        assert_eq!(
            reason(with_entries(vec![s]).validate()),
            "a symlink has no target"
        );
        assert_eq!(
            reason(with_entries(vec![symlink("s", "")]).validate()),
            "its symlink target is empty"
        );
        assert_eq!(
            reason(with_entries(vec![symlink("s", "a\0")]).validate()),
            "its symlink target contains a NUL byte"
        );
        let mut f = file("f", &[b"x"]);
        f.target = Some("x".into());
        assert_eq!(
            reason(with_entries(vec![f]).validate()),
            "a file has a symlink target"
        );
        let mut f = file("f", &[b"x"]);
        f.mode = 0o10000;
        assert_eq!(
            reason(with_entries(vec![f]).validate()),
            "its mode has bits above 0o7777"
        );
    }

    #[test]
    fn child_rules() {
        const LEAD: &str = "it does not start with a letter or a digit";
        const CHARS: &str =
            "it holds a character other than letters, digits, '.', '_', '+' and '-'";
        let child = |name: &str, cid| ChildRef {
            name: name.into(),
            cid,
        };
        let dag = cid_of(Codec::DagCbor, b"c");
        for (children, expected) in [
            (vec![child("", dag)], "it is empty"),
            (
                vec![child(&"a".repeat(129), dag)],
                "it is longer than 128 bytes",
            ),
            (vec![child("..", dag)], LEAD),
            (vec![child("-rf", dag)], LEAD),
            (vec![child("$(reboot)", dag)], LEAD),
            (vec![child(".hidden", dag)], LEAD),
            (vec![child("a/b", dag)], CHARS),
            (vec![child("a\0", dag)], CHARS),
            (vec![child("a\nb", dag)], CHARS),
            (vec![child("a b", dag)], CHARS),
            (vec![child("a$(x)", dag)], CHARS),
            (vec![child("a'b", dag)], CHARS),
            (vec![child("é", dag)], LEAD),
            (
                vec![child("a", dag), child("a", dag)],
                "its name appears more than once",
            ),
            (
                vec![child("a", cid_of(Codec::Raw, b"c"))],
                "its CID is not a dag-cbor sha2-256 CIDv1",
            ),
        ] {
            let f = Flist {
                children,
                ..sample()
            };
            assert!(
                matches!(f.validate(), Err(ManifestError::BadChild { reason, .. }) if reason == expected),
                "{expected}"
            );
        }
    }

    #[test]
    fn package_names_are_checked_at_decode() {
        for good in [
            "zos",
            "rmb-peer",
            "libc6",
            "g++",
            "python3.12",
            "a_b",
            "9p",
            &"a".repeat(128),
        ] {
            assert_eq!(check_package_name(good), Ok(()), "{good}");
        }
        let f = Flist {
            children: vec![ChildRef {
                name: "$(reboot)".into(),
                cid: cid_of(Codec::DagCbor, b"c"),
            }],
            ..sample()
        };
        let bytes = encode_unchecked(&f).unwrap();
        assert!(matches!(
            Flist::decode(&bytes),
            Err(ManifestError::BadChild { ref name, .. }) if name == "$(reboot)"
        ));
    }

    #[test]
    fn name_rules() {
        let f = Flist {
            name: String::new(),
            ..sample()
        };
        assert!(matches!(
            f.validate(),
            Err(ManifestError::BadName { what: "name", .. })
        ));
        let f = Flist {
            version: "v\0".into(),
            ..sample()
        };
        assert!(matches!(
            f.validate(),
            Err(ManifestError::BadName {
                what: "version",
                ..
            })
        ));
    }

    #[test]
    fn too_many_entries() {
        let entries = (0..=MAX_ENTRIES)
            .map(|i| dir(&format!("d{i:07}")))
            .collect();
        let f = with_entries(entries);
        assert_eq!(
            f.validate(),
            Err(ManifestError::TooMany {
                what: "entries",
                count: MAX_ENTRIES + 1
            })
        );
    }

    #[test]
    fn non_canonical_bytes_are_rejected() {
        let bytes = sample().encode().unwrap();
        // Append an unknown field (its key sorts last): serde ignores it, the re-encoding
        // differs.
        let mut extended = bytes.clone();
        assert_eq!(extended[0], 0xa4); // map of 4
        extended[0] = 0xa5;
        extended.push(0x69);
        extended.extend_from_slice(b"zzzzzzzzz");
        extended.push(0x00);
        assert_eq!(Flist::decode(&extended), Err(ManifestError::NotCanonical));
        // Non-minimal length for the map header.
        let mut wide = vec![0xb8, 0x04];
        wide.extend_from_slice(&bytes[1..]);
        assert!(matches!(
            Flist::decode(&wide),
            Err(ManifestError::NotCanonical | ManifestError::Decode(_))
        ));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        // {"x": [[[[...]]]]}: an unknown field whose value nests 100 000 arrays.
        let mut bytes = vec![0xa1, 0x61, b'x'];
        bytes.extend(std::iter::repeat_n(0x81, 100_000));
        bytes.push(0x00);
        assert!(matches!(
            Flist::decode(&bytes),
            Err(ManifestError::Decode(_))
        ));
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = sample().encode().unwrap();
        bytes.push(0);
        assert!(matches!(
            Flist::decode(&bytes),
            Err(ManifestError::Decode(_))
        ));
    }

    #[test]
    fn oversize_is_rejected_before_decoding() {
        let bytes = vec![0u8; MAX_MANIFEST_SIZE + 1];
        assert_eq!(
            Flist::decode(&bytes),
            Err(ManifestError::TooLarge {
                len: MAX_MANIFEST_SIZE + 1
            })
        );
    }

    #[test]
    fn invalid_content_is_rejected_on_decode() {
        let f = with_entries(vec![dir("a/../b")]);
        let bytes = encode_unchecked(&f).unwrap();
        assert!(matches!(
            Flist::decode(&bytes),
            Err(ManifestError::BadPath { .. })
        ));
    }

    #[test]
    fn errors_name_the_path() {
        let msg = bad_path("/abs").unwrap_err().to_string();
        assert!(msg.contains("\"/abs\""), "{msg}");
        let long = "x".repeat(MAX_PATH_LEN * 2);
        let msg = bad_path(&long).unwrap_err().to_string();
        assert!(msg.len() < 400, "{msg}");
    }
}
