//! Reading an rfs v2 flist (`.fl`): a sqlite file with the tables of rfs's
//! `schema/schema.sql` — `inode(ino, parent, name, size, uid, gid, mode, rdev, ctime, mtime)`,
//! `extra(ino, data)` (symlink targets), `block(ino, id, key)` (a file's blocks in insertion
//! order), `tag(key, value)` and `route(start, end, url)`. The root is the inode whose parent
//! is 0; `mode` is the full `st_mode`.
//!
//! The file comes from a hub, so it is opened read-only and defensively (no schema code is
//! trusted, cells are checked, a quick integrity check runs first), every count and length is
//! capped, and the tree is walked from the root (a cycle or an orphan is never reached).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use bootswarm_protocol::block::rfs_block_cid;
use bootswarm_protocol::manifest::{
    BlockKey, ChunkRef, Entry, EntryKind, Flist, MAX_ENTRIES, MAX_PATH_LEN, MAX_ROUTE_URL_LEN,
    MAX_ROUTES, Route,
};
use rusqlite::{Connection, OpenFlags, config::DbConfig, types::ValueRef};

use crate::error::{Error, Result};

/// Plaintext of every rfs block but a file's last.
pub const RFS_BLOCK_SIZE: u32 = 512 * 1024;
/// Largest `.fl` file read.
pub const MAX_FL_SIZE: u64 = 256 * 1024 * 1024;
/// Most blocks one `.fl` may list.
const MAX_BLOCKS: usize = 4 * 1024 * 1024;

const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;

/// One rfs block of a file: its id (blake2b-256 of the stored bytes) and key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlBlock {
    /// The block's id.
    pub id: [u8; 32],
    /// Its key.
    pub key: BlockKey,
}

/// What an entry of a `.fl` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlKind {
    /// A directory.
    Dir,
    /// A regular file of `size` bytes, in `blocks`.
    File {
        /// Its size.
        size: u64,
        /// Its blocks, in order.
        blocks: Vec<FlBlock>,
    },
    /// A symbolic link.
    Symlink(String),
}

/// One entry: its path below the root, permission bits and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlEntry {
    /// `/`-separated path.
    pub path: String,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// What it is.
    pub kind: FlKind,
}

/// A `.fl`, read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fl {
    /// Directories, files and symlinks, in no particular order.
    pub entries: Vec<FlEntry>,
    /// The `route` table.
    pub routes: Vec<Route>,
    /// The `tag` table.
    pub tags: BTreeMap<String, String>,
    /// Paths of devices, pipes and sockets, which bootswarm does not carry.
    pub skipped: Vec<String>,
}

fn fl_error(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::new(format!(
        "{} is not a usable rfs flist ({what}); check that it is an rfs v2 .fl file",
        path.display()
    ))
}

/// Reads the `.fl` at `path`.
pub fn read(path: &Path) -> Result<Fl> {
    let len = std::fs::metadata(path)
        .map_err(|e| Error::new(format!("cannot read {} ({e})", path.display())))?
        .len();
    if len > MAX_FL_SIZE {
        return Err(fl_error(
            path,
            format!("it is {len} bytes, over the {MAX_FL_SIZE}-byte limit"),
        ));
    }
    let db = open(path).map_err(|e| fl_error(path, e))?;
    let sql = |e: rusqlite::Error| fl_error(path, e);
    let inodes = read_inodes(&db)
        .map_err(sql)?
        .map_err(|why| fl_error(path, why))?;
    let extra = read_extra(&db).map_err(sql)?;
    let blocks = read_blocks(&db)
        .map_err(sql)?
        .map_err(|why| fl_error(path, why))?;
    let routes = read_routes(&db)
        .map_err(sql)?
        .map_err(|why| fl_error(path, why))?;
    let tags = read_tags(&db).map_err(sql)?;
    build(inodes, &extra, blocks, routes, tags).map_err(|why| fl_error(path, why))
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let db = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    db.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    db.pragma_update(None, "trusted_schema", "OFF")?;
    db.pragma_update(None, "cell_size_check", "ON")?;
    db.pragma_update(None, "mmap_size", 0)?;
    let check: String = db.query_row("PRAGMA quick_check(1)", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(rusqlite::Error::InvalidQuery);
    }
    Ok(db)
}

struct Inode {
    parent: i64,
    name: String,
    size: i64,
    mode: u32,
}

type Rows<T> = rusqlite::Result<std::result::Result<T, String>>;

fn read_inodes(db: &Connection) -> Rows<HashMap<i64, Inode>> {
    let mut stmt = db.prepare("SELECT ino, parent, name, size, mode FROM inode")?;
    let mut rows = stmt.query([])?;
    let mut out = HashMap::new();
    while let Some(r) = rows.next()? {
        if out.len() > MAX_ENTRIES {
            return Ok(Err(format!("it has more than {MAX_ENTRIES} inodes")));
        }
        let ino: i64 = r.get(0)?;
        let name = match text(r.get_ref(2)?) {
            Some(n) => n,
            None => {
                return Ok(Err(format!(
                    "inode {ino} has a name that is not UTF-8 text"
                )));
            }
        };
        let mode = r.get::<_, i64>(4)?;
        let Ok(mode) = u32::try_from(mode) else {
            return Ok(Err(format!("inode {ino} has the mode {mode}")));
        };
        let inode = Inode {
            parent: r.get::<_, Option<i64>>(1)?.unwrap_or(0),
            name,
            size: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
            mode,
        };
        out.insert(ino, inode);
    }
    Ok(Ok(out))
}

fn read_extra(db: &Connection) -> rusqlite::Result<HashMap<i64, Vec<u8>>> {
    let mut stmt = db.prepare("SELECT ino, data FROM extra")?;
    let mut rows = stmt.query([])?;
    let mut out = HashMap::new();
    while let Some(r) = rows.next()? {
        if let Ok(bytes) = r.get_ref(1)?.as_bytes()
            && bytes.len() <= MAX_PATH_LEN
        {
            out.insert(r.get(0)?, bytes.to_vec());
        }
    }
    Ok(out)
}

fn read_blocks(db: &Connection) -> Rows<HashMap<i64, Vec<FlBlock>>> {
    // The order of insertion is a file's block order.
    let mut stmt = db.prepare("SELECT ino, id, key FROM block ORDER BY rowid")?;
    let mut rows = stmt.query([])?;
    let (mut out, mut n): (HashMap<i64, Vec<FlBlock>>, usize) = (HashMap::new(), 0);
    while let Some(r) = rows.next()? {
        n += 1;
        if n > MAX_BLOCKS {
            return Ok(Err(format!("it lists more than {MAX_BLOCKS} blocks")));
        }
        let ino: i64 = r.get(0)?;
        let (Some(id), Some(key)) = (bytes32(r.get_ref(1)?), bytes32(r.get_ref(2)?)) else {
            return Ok(Err(format!(
                "a block of inode {ino} has an id or key that is not 32 bytes"
            )));
        };
        out.entry(ino).or_default().push(FlBlock {
            id,
            key: BlockKey(key),
        });
    }
    Ok(Ok(out))
}

fn read_routes(db: &Connection) -> Rows<Vec<Route>> {
    let mut stmt = db.prepare("SELECT start, end, url FROM route ORDER BY rowid")?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        if out.len() >= MAX_ROUTES {
            return Ok(Err(format!("it has more than {MAX_ROUTES} routes")));
        }
        let (start, end): (i64, i64) = (r.get(0)?, r.get(1)?);
        let url = text(r.get_ref(2)?).filter(|u| u.len() <= MAX_ROUTE_URL_LEN);
        let (Ok(start), Ok(end), Some(url)) = (u8::try_from(start), u8::try_from(end), url) else {
            return Ok(Err(format!(
                "a route ({start}-{end}) is not a byte range with a URL"
            )));
        };
        out.push(Route { start, end, url });
    }
    Ok(Ok(out))
}

fn read_tags(db: &Connection) -> rusqlite::Result<BTreeMap<String, String>> {
    let mut stmt = db.prepare("SELECT key, value FROM tag LIMIT 256")?;
    let mut rows = stmt.query([])?;
    let mut out = BTreeMap::new();
    while let Some(r) = rows.next()? {
        if let (Some(k), Some(v)) = (text(r.get_ref(0)?), text(r.get_ref(1)?)) {
            out.insert(k, v);
        }
    }
    Ok(out)
}

fn text(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Text(t) | ValueRef::Blob(t) => std::str::from_utf8(t).ok().map(str::to_owned),
        _ => None,
    }
}

fn bytes32(v: ValueRef<'_>) -> Option<[u8; 32]> {
    match v {
        ValueRef::Blob(b) | ValueRef::Text(b) => b.try_into().ok(),
        _ => None,
    }
}

/// Walks the tree from the root (the inode with parent 0) into entries.
fn build(
    inodes: HashMap<i64, Inode>,
    extra: &HashMap<i64, Vec<u8>>,
    mut blocks: HashMap<i64, Vec<FlBlock>>,
    routes: Vec<Route>,
    tags: BTreeMap<String, String>,
) -> std::result::Result<Fl, String> {
    let roots: Vec<i64> = inodes
        .iter()
        .filter(|(_, i)| i.parent == 0)
        .map(|(&n, _)| n)
        .collect();
    let &[root] = roots.as_slice() else {
        return Err(format!("it has {} root inodes instead of one", roots.len()));
    };
    let mut children: HashMap<i64, Vec<i64>> = HashMap::new();
    for (&ino, i) in &inodes {
        if ino != root {
            children.entry(i.parent).or_default().push(ino);
        }
    }
    let mut fl = Fl {
        routes,
        tags,
        ..Fl::default()
    };
    let mut seen = HashSet::from([root]);
    let mut stack = vec![(root, String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let mut kids = children.remove(&dir).unwrap_or_default();
        kids.sort_unstable();
        for ino in kids {
            if !seen.insert(ino) {
                continue;
            }
            let i = &inodes[&ino];
            if i.name.is_empty() || i.name == "." || i.name == ".." || i.name.contains(['/', '\0'])
            {
                return Err(format!(
                    "inode {ino} is named {:?}, which is not a file name",
                    i.name
                ));
            }
            let path = if prefix.is_empty() {
                i.name.clone()
            } else {
                format!("{prefix}/{}", i.name)
            };
            if path.len() > MAX_PATH_LEN {
                return Err(format!("a path is longer than {MAX_PATH_LEN} bytes"));
            }
            let kind = match i.mode & S_IFMT {
                S_IFDIR => {
                    stack.push((ino, path.clone()));
                    FlKind::Dir
                }
                S_IFREG => FlKind::File {
                    size: u64::try_from(i.size)
                        .map_err(|_| format!("{path:?} has the size {}", i.size))?,
                    blocks: blocks.remove(&ino).unwrap_or_default(),
                },
                S_IFLNK => {
                    let target = extra
                        .get(&ino)
                        .and_then(|t| String::from_utf8(t.clone()).ok())
                        .filter(|t| !t.is_empty() && !t.contains('\0'))
                        .ok_or_else(|| format!("symlink {path:?} has no usable target"))?;
                    FlKind::Symlink(target)
                }
                _ => {
                    fl.skipped.push(path);
                    continue;
                }
            };
            fl.entries.push(FlEntry {
                path,
                mode: i.mode & 0o7777,
                kind,
            });
        }
    }
    Ok(fl)
}

/// A file's plaintext block lengths under rfs's layout: 512 KiB each but the last, which holds
/// the rest. `None` if `size` and the block count do not fit that layout.
pub fn layout_lengths(size: u64, blocks: usize) -> Option<Vec<u32>> {
    let full = u64::from(RFS_BLOCK_SIZE);
    if blocks == 0 {
        return (size == 0).then(Vec::new);
    }
    let before = (blocks as u64 - 1).checked_mul(full)?;
    let last = size.checked_sub(before).filter(|&l| l > 0 && l <= full)?;
    let mut out = vec![RFS_BLOCK_SIZE; blocks - 1];
    out.push(last as u32);
    Some(out)
}

impl Fl {
    /// The bootswarm flist of this `.fl`: each file's chunks are its rfs blocks with their
    /// keys, of the plaintext lengths `known` gives (learnt by decoding them) or else of rfs's
    /// 512 KiB layout; the routes are kept.
    pub fn to_flist(
        &self,
        name: &str,
        version: &str,
        known: &HashMap<[u8; 32], u32>,
    ) -> std::result::Result<Flist, String> {
        let mut entries = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            let (kind, size, chunks, target) = match &e.kind {
                FlKind::Dir => (EntryKind::Dir, 0, Vec::new(), None),
                FlKind::Symlink(t) => (EntryKind::Symlink, 0, Vec::new(), Some(t.clone())),
                FlKind::File { size, blocks } => {
                    let layout = layout_lengths(*size, blocks.len());
                    let mut chunks = Vec::with_capacity(blocks.len());
                    for (n, b) in blocks.iter().enumerate() {
                        let len = known
                            .get(&b.id)
                            .copied()
                            .or_else(|| layout.as_ref().map(|l| l[n]))
                            .ok_or_else(|| {
                                format!(
                                    "file {:?} has {} blocks for {size} bytes, which is not rfs's 512 KiB layout; import it with --verify to learn the block lengths",
                                    e.path,
                                    blocks.len()
                                )
                            })?;
                        chunks.push(ChunkRef {
                            cid: rfs_block_cid(b.id),
                            len,
                            key: Some(b.key),
                        });
                    }
                    (EntryKind::File, *size, chunks, None)
                }
            };
            entries.push(Entry {
                path: e.path.clone(),
                kind,
                mode: if kind == EntryKind::Symlink {
                    0o777
                } else {
                    e.mode
                },
                size,
                chunks,
                target,
            });
        }
        let mut flist = Flist {
            name: name.to_string(),
            version: version.to_string(),
            entries,
            children: Vec::new(),
            routes: self.routes.clone(),
        };
        flist.normalise();
        flist.validate().map_err(|e| e.to_string())?;
        Ok(flist)
    }

    /// Every distinct block, in entry order.
    pub fn blocks(&self) -> Vec<FlBlock> {
        let mut seen = HashSet::new();
        self.entries
            .iter()
            .filter_map(|e| match &e.kind {
                FlKind::File { blocks, .. } => Some(blocks),
                _ => None,
            })
            .flatten()
            .filter(|b| seen.insert(**b))
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_512_kib_layout() {
        let k = u64::from(RFS_BLOCK_SIZE);
        assert_eq!(layout_lengths(0, 0), Some(vec![]));
        assert_eq!(layout_lengths(1, 0), None);
        assert_eq!(layout_lengths(0, 1), None);
        assert_eq!(layout_lengths(5, 1), Some(vec![5]));
        assert_eq!(layout_lengths(k, 1), Some(vec![RFS_BLOCK_SIZE]));
        assert_eq!(layout_lengths(k + 1, 1), None);
        assert_eq!(layout_lengths(k + 1, 2), Some(vec![RFS_BLOCK_SIZE, 1]));
        assert_eq!(layout_lengths(k, 2), None);
        assert_eq!(layout_lengths(u64::MAX, usize::MAX), None);
    }
}
