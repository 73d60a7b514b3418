//! Writing a release's files while its boot still fetches: each file whose chunks are all in
//! the store is written (temp name, hashed, fsynced, renamed, exactly as [`materialise`]
//! does) into a staging directory, so that when the last block arrives only the files still
//! missing are left. The staging directory becomes the version only through
//! [`materialise_rest`], which writes the rest, the symlinks and the directory modes; a crash
//! before that leaves a staging directory the next install removes.
//!
//! [`materialise`]: super::materialise
//! [`materialise_rest`]: super::materialise_rest

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use bootswarm_protocol::manifest::EntryKind;
use bootswarm_protocol::store::BlockStore;

use super::{Tree, Writer, io_error};
use crate::error::Result;

/// Files of a tree written ahead into a staging directory.
#[derive(Debug)]
pub struct Streamer {
    dir: PathBuf,
    /// The files not written yet: their index in the tree's entries, and how many of their
    /// chunks (from the first) are known to be in the store.
    pending: Vec<(usize, usize)>,
    written: HashSet<String>,
}

impl Streamer {
    /// Starts staging `tree` in `dir`, which is emptied first (a crashed run's files are not
    /// trusted).
    pub fn new(tree: &Tree, dir: &Path) -> Result<Streamer> {
        match fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("remove", dir, &e)),
        }
        fs::create_dir_all(crate::fsutil::parent_dir(dir))
            .map_err(|e| io_error("create", dir, &e))?;
        fs::create_dir(dir).map_err(|e| io_error("create", dir, &e))?;
        let pending = tree
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.entry.kind == EntryKind::File)
            .map(|(i, _)| (i, 0))
            .collect();
        Ok(Streamer {
            dir: dir.to_path_buf(),
            pending,
            written: HashSet::new(),
        })
    }

    /// Writes every pending file whose chunks are all in `store`; how many it wrote.
    pub fn pass<S: BlockStore + ?Sized>(&mut self, store: &S, tree: &Tree) -> Result<usize> {
        let mut w = Writer::new(&self.dir);
        let mut wrote = 0;
        let mut still = Vec::with_capacity(self.pending.len());
        let mut pending = std::mem::take(&mut self.pending).into_iter();
        for (i, known) in pending.by_ref() {
            let Some(e) = tree.entries.get(i) else {
                continue;
            };
            // Chunks stay once stored during a boot: only those not seen yet are looked up.
            let present = e.entry.chunks[known.min(e.entry.chunks.len())..]
                .iter()
                .take_while(|c| store.contains(&c.cid).unwrap_or(false))
                .count();
            let known = known + present;
            if known < e.entry.chunks.len() {
                still.push((i, known));
                continue;
            }
            let full = self.dir.join(&e.path);
            let result = w
                .ensure_parents(&e.path)
                .and_then(|()| w.file(store, &e.path, &full, &e.entry, &|_| {}));
            if let Err(err) = result {
                still.push((i, 0));
                still.extend(pending);
                self.pending = still;
                return Err(err);
            }
            self.written.insert(e.path.clone());
            wrote += 1;
        }
        self.pending = still;
        Ok(wrote)
    }

    /// Files not written yet.
    pub fn remaining(&self) -> usize {
        self.pending.len()
    }

    /// The relative paths of the files written, for [`super::materialise_rest`].
    pub fn into_written(self) -> HashSet<String> {
        self.written
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::materialise::{materialise, materialise_rest, plan};
    use bootswarm_protocol::block::{Codec, cid_of};
    use bootswarm_protocol::manifest::{ChunkRef, Entry, Flist};
    use bootswarm_protocol::store::MemoryStore;
    use bootswarm_protocol::walk::Placed;

    fn file(path: &str, bytes: &[u8]) -> (Entry, Vec<u8>) {
        let cid = cid_of(Codec::Raw, bytes);
        (
            Entry {
                path: path.into(),
                kind: EntryKind::File,
                mode: 0o640,
                size: bytes.len() as u64,
                chunks: vec![ChunkRef {
                    cid,
                    len: bytes.len() as u32,
                    key: None,
                }],
                target: None,
            },
            bytes.to_vec(),
        )
    }

    fn tree(files: &[(Entry, Vec<u8>)]) -> Tree {
        let flist = Flist {
            name: "pkg".into(),
            version: String::new(),
            entries: files.iter().map(|(e, _)| e.clone()).collect(),
            children: Vec::new(),
            routes: Vec::new(),
        };
        let (cid, _) = flist.to_block().unwrap();
        plan(&[Placed {
            cid,
            prefix: "pkg".into(),
            flist,
        }])
        .unwrap()
    }

    #[test]
    fn files_are_written_as_their_chunks_arrive_and_the_rest_at_the_end() {
        let files = [
            file("bin/a", b"alpha"),
            file("bin/b", b"beta"),
            file("etc/c", b"gamma"),
        ];
        let tree = tree(&files);
        let store = MemoryStore::new();
        let dir = tempfile::tempdir().unwrap();
        let staged = dir.path().join(".partial-7");
        fs::create_dir_all(staged.join("leftover")).unwrap();
        let mut s = Streamer::new(&tree, &staged).unwrap();
        assert!(
            !staged.join("leftover").exists(),
            "a crashed run's files go"
        );
        assert_eq!(s.pass(&store, &tree).unwrap(), 0);
        store.put(&files[1].0.chunks[0].cid, &files[1].1).unwrap();
        assert_eq!(s.pass(&store, &tree).unwrap(), 1);
        assert_eq!(fs::read(staged.join("pkg/bin/b")).unwrap(), b"beta");
        assert!(!staged.join("pkg/bin/a").exists());
        assert_eq!(s.remaining(), 2);
        store.put(&files[0].0.chunks[0].cid, &files[0].1).unwrap();
        store.put(&files[2].0.chunks[0].cid, &files[2].1).unwrap();
        let written = {
            assert_eq!(s.pass(&store, &tree).unwrap(), 2);
            s.into_written()
        };
        // The last pass wrote everything; a streamer stopped earlier leaves the rest to
        // the install, which gives the same tree.
        let mut partial = written.clone();
        partial.remove("pkg/bin/a");
        fs::remove_file(staged.join("pkg/bin/a")).unwrap();
        let stats = materialise_rest(&store, &tree, &staged, &|_| {}, &partial).unwrap();
        assert_eq!((stats.files, stats.streamed), (3, 2));
        let whole = dir.path().join("whole");
        materialise(&store, &tree, &whole, &|_| {}).unwrap();
        for (e, bytes) in &files {
            let rel = format!("pkg/{}", e.path);
            assert_eq!(fs::read(staged.join(&rel)).unwrap(), *bytes, "{rel}");
            assert_eq!(fs::read(whole.join(&rel)).unwrap(), *bytes, "{rel}");
        }
    }

    #[test]
    fn a_block_that_does_not_match_is_never_staged() {
        let files = [file("a", b"alpha")];
        let tree = tree(&files);
        let store = MemoryStore::new();
        let cid = files[0].0.chunks[0].cid;
        store.put(&cid, &files[0].1).unwrap();
        // Rot on disk after the block was stored.
        assert!(store.corrupt_for_test(&cid));
        let dir = tempfile::tempdir().unwrap();
        let staged = dir.path().join("s");
        let mut s = Streamer::new(&tree, &staged).unwrap();
        assert!(s.pass(&store, &tree).is_err());
        assert!(!staged.join("pkg/a").exists());
        assert_eq!(s.remaining(), 1);
    }
}
