//! Writing an rfs v2 flist the way `rfs pack` does: the `.fl` with rfs's schema, each file cut
//! into 512 KiB blocks, each block encoded ([`super::block::encode`]) and handed to a sink (a
//! store). The demo and the tests make their rfs content with it.

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use bootswarm_protocol::manifest::Route;
use rusqlite::{Connection, params};

use super::block::encode;
use super::flist::RFS_BLOCK_SIZE;
use crate::error::{Error, Result};

/// rfs's `schema/schema.sql`, as published.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS inode (
    ino INTEGER PRIMARY KEY AUTOINCREMENT,
    parent INTEGER,
    name VARCHAR(255),
    size INTEGER,
    uid INTEGER,
    gid INTEGER,
    mode INTEGER,
    rdev INTEGER,
    ctime INTEGER,
    mtime INTEGER
);
CREATE INDEX IF NOT EXISTS parents ON inode (parent);
CREATE INDEX IF NOT EXISTS names ON inode (name);
CREATE TABLE IF NOT EXISTS extra (
    ino INTEGER PRIMARY KEY,
    data VARCHAR(4096)
);
CREATE TABLE IF NOT EXISTS block (
    ino INTEGER,
    id VARCHAR(32),
    key VARCHAR(32)
);
CREATE INDEX IF NOT EXISTS block_ino ON block (ino);
CREATE TABLE IF NOT EXISTS tag (
    key VARCHAR(10) PRIMARY KEY,
    value VARCHAR(255)
);
CREATE TABLE IF NOT EXISTS route (
    start integer,
    end integer,
    url VARCHAR(2048)
);
";

/// Where a pack hands each block: its id and stored bytes.
pub type BlockSink<'a> = dyn FnMut(&[u8; 32], &[u8]) -> Result<()> + 'a;

/// What a pack wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Packed {
    /// Inodes written (the root included).
    pub inodes: u64,
    /// Blocks handed to the sink (a block shared by two files counts twice).
    pub blocks: u64,
    /// Plaintext bytes of the files.
    pub bytes: u64,
    /// Stored bytes handed to the sink.
    pub stored: u64,
}

/// Packs directory `src` into a new `.fl` at `fl` with `routes` (and the tag `version` when
/// given), handing each block's id and stored bytes to `put`.
pub fn pack(
    src: &Path,
    fl: &Path,
    routes: &[Route],
    version: Option<&str>,
    put: &mut BlockSink<'_>,
) -> Result<Packed> {
    let sql = |e: rusqlite::Error| Error::new(format!("cannot write {} ({e})", fl.display()));
    let _ = fs::remove_file(fl);
    let mut db = Connection::open(fl).map_err(sql)?;
    db.execute_batch(SCHEMA).map_err(sql)?;
    let tx = db.transaction().map_err(sql)?;
    for r in routes {
        tx.execute(
            "INSERT INTO route (start, end, url) VALUES (?1, ?2, ?3)",
            params![r.start, r.end, r.url],
        )
        .map_err(sql)?;
    }
    if let Some(v) = version {
        tx.execute(
            "INSERT INTO tag (key, value) VALUES ('version', ?1)",
            params![v],
        )
        .map_err(sql)?;
    }
    let mut packed = Packed::default();
    let meta = fs::symlink_metadata(src).map_err(|e| io(src, &e))?;
    let root = insert(&tx, 0, "/", &meta, None).map_err(sql)?;
    packed.inodes += 1;
    let mut dirs = vec![(root, src.to_path_buf())];
    while let Some((parent, dir)) = dirs.pop() {
        let mut listing = fs::read_dir(&dir)
            .and_then(|d| d.collect::<std::io::Result<Vec<_>>>())
            .map_err(|e| io(&dir, &e))?;
        listing.sort_by_key(|e| e.file_name());
        for item in listing {
            let path = item.path();
            let meta = fs::symlink_metadata(&path).map_err(|e| io(&path, &e))?;
            let name = item.file_name().to_string_lossy().into_owned();
            let target = if meta.file_type().is_symlink() {
                let t = fs::read_link(&path).map_err(|e| io(&path, &e))?;
                Some(t.to_string_lossy().into_owned().into_bytes())
            } else {
                None
            };
            let ino = insert(&tx, parent, &name, &meta, target.as_deref()).map_err(sql)?;
            packed.inodes += 1;
            if meta.is_dir() {
                dirs.push((ino, path));
            } else if meta.is_file() {
                let mut file = File::open(&path).map_err(|e| io(&path, &e))?;
                let mut buf = vec![0u8; RFS_BLOCK_SIZE as usize];
                loop {
                    let n = read_full(&mut file, &mut buf).map_err(|e| io(&path, &e))?;
                    if n == 0 {
                        break;
                    }
                    let e = encode(&buf[..n]);
                    put(&e.id, &e.stored)?;
                    tx.execute(
                        "INSERT INTO block (ino, id, key) VALUES (?1, ?2, ?3)",
                        params![ino, &e.id[..], &e.key.0[..]],
                    )
                    .map_err(sql)?;
                    packed.blocks += 1;
                    packed.bytes += n as u64;
                    packed.stored += e.stored.len() as u64;
                }
            }
        }
    }
    tx.commit().map_err(sql)?;
    Ok(packed)
}

fn insert(
    tx: &rusqlite::Transaction<'_>,
    parent: i64,
    name: &str,
    meta: &fs::Metadata,
    data: Option<&[u8]>,
) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT INTO inode (parent, name, size, uid, gid, mode, rdev, ctime, mtime) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            parent,
            name,
            meta.size() as i64,
            meta.uid(),
            meta.gid(),
            meta.mode(),
            meta.rdev() as i64,
            meta.ctime(),
            meta.mtime()
        ],
    )?;
    let ino = tx.last_insert_rowid();
    if let Some(d) = data {
        tx.execute(
            "INSERT INTO extra (ino, data) VALUES (?1, ?2)",
            params![ino, d],
        )?;
    }
    Ok(ino)
}

/// Fills `buf` unless the file ends first; returns the bytes read.
fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn io(path: &Path, e: &std::io::Error) -> Error {
    Error::new(format!("cannot read {} ({e})", path.display()))
}

/// A sink writing blocks into a `dir://` store: `root/{hex[..2]}/{hex}` (rfs master's layout)
/// or, `flat`, `root/{hex}` (rfs 2.0.6).
pub fn dir_sink(root: &Path, flat: bool) -> impl FnMut(&[u8; 32], &[u8]) -> Result<()> + '_ {
    move |id, stored| {
        let name = super::hex(id);
        let dir = if flat {
            root.to_path_buf()
        } else {
            root.join(&name[..2])
        };
        fs::create_dir_all(&dir).map_err(|e| io(&dir, &e))?;
        let path = dir.join(name);
        fs::write(&path, stored)
            .map_err(|e| Error::new(format!("cannot write {} ({e})", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::rfs::block::decode;
    use crate::rfs::flist::{FlKind, read};

    #[test]
    fn a_packed_tree_reads_back_with_its_blocks_routes_and_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("bin")).unwrap();
        fs::create_dir_all(src.join("empty")).unwrap();
        let big: Vec<u8> = (0..(RFS_BLOCK_SIZE as usize * 2 + 77))
            .map(|i| (i * 7 % 256) as u8)
            .collect();
        fs::write(src.join("bin/tool"), &big).unwrap();
        fs::set_permissions(src.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(src.join("empty-file"), b"").unwrap();
        std::os::unix::fs::symlink("bin/tool", src.join("link")).unwrap();
        let fl = dir.path().join("p.fl");
        let routes = vec![Route {
            start: 0,
            end: 255,
            url: "zdb://127.0.0.1:9900/ns".into(),
        }];
        let mut blocks = HashMap::new();
        let packed = pack(&src, &fl, &routes, Some("1.2"), &mut |id, b| {
            blocks.insert(*id, b.to_vec());
            Ok(())
        })
        .unwrap();
        assert_eq!((packed.inodes, packed.blocks), (6, 3));

        let got = read(&fl).unwrap();
        assert_eq!(got.routes, routes);
        assert_eq!(got.tags.get("version").map(String::as_str), Some("1.2"));
        let tool = got.entries.iter().find(|e| e.path == "bin/tool").unwrap();
        assert_eq!(tool.mode, 0o755);
        let FlKind::File { size, blocks: bs } = &tool.kind else {
            panic!("a file")
        };
        assert_eq!(*size, big.len() as u64);
        let plain: Vec<u8> = bs
            .iter()
            .zip([RFS_BLOCK_SIZE, RFS_BLOCK_SIZE, 77])
            .flat_map(|(b, len)| decode(&b.key, &blocks[&b.id], len).unwrap())
            .collect();
        assert_eq!(plain, big);
        let kinds: Vec<(&str, &FlKind)> = got
            .entries
            .iter()
            .map(|e| (e.path.as_str(), &e.kind))
            .collect();
        assert!(kinds.contains(&("empty", &FlKind::Dir)));
        assert!(kinds.contains(&("link", &FlKind::Symlink("bin/tool".into()))));
        let flist = got.to_flist("p", "1.2", &HashMap::new()).unwrap();
        assert_eq!(flist.total_size(), big.len() as u64);
        assert_eq!(flist.routes, routes);
    }
}
