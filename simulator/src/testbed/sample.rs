//! Deterministic sample packages of a scenario's size, and tree comparison.
//!
//! Content is xoshiro output (incompressible) from a fixed seed: the same scenario always
//! publishes the same bytes. Each package has files of varied sizes and modes, subdirectories
//! and a symlink, so the materialised trees exercise more than plain files.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

/// Seed of every sample's content.
pub(crate) const SAMPLE_SEED: u64 = 0x6273_7777_6172_6d31;

/// Writes `packages` packages holding `size` bytes of file content in total under `dir`
/// (created) and returns their directories in publishing order.
pub(crate) fn generate(dir: &Path, packages: u32, size: u64) -> io::Result<Vec<PathBuf>> {
    mkdir(dir, 0o755)?;
    let n = u64::from(packages.max(1));
    let mut rng = bootswarm_sim::rng::stream(SAMPLE_SEED, 0, 0);
    // Uneven shares (weights 1..=4) of what is left after one byte per package.
    let weights: Vec<u64> = (0..n).map(|_| 1 + rng.below(4)).collect();
    let sum: u64 = weights.iter().sum();
    let spare = size.saturating_sub(n);
    let mut left = spare;
    let mut out = Vec::new();
    for (i, w) in weights.iter().enumerate() {
        let share = if i as u64 + 1 == n {
            left
        } else {
            ((u128::from(spare) * u128::from(*w) / u128::from(sum)) as u64).min(left)
        };
        left -= share;
        let pkg = dir.join(format!("pkg-{i:02}"));
        package(&pkg, i as u64, share + 1)?;
        out.push(pkg);
    }
    Ok(out)
}

/// One package with exactly `size` bytes of file content.
fn package(pkg: &Path, index: u64, size: u64) -> io::Result<()> {
    let mut rng = bootswarm_sim::rng::stream(SAMPLE_SEED, index + 1, 1);
    mkdir(pkg, 0o755)?;
    mkdir(&pkg.join("bin"), 0o755)?;
    mkdir(&pkg.join("etc"), 0o750)?;
    mkdir(&pkg.join("lib"), 0o755)?;
    let conf = (size / 8).min(4096);
    let rest = size - conf;
    let bin = rest * (10 + rng.below(30)) / 100;
    let mut data = rest - bin;
    content(&pkg.join("etc/pkg.conf"), conf, 0o600, index, 0)?;
    content(&pkg.join("bin/run"), bin, 0o755, index, 1)?;
    // Data files of varied sizes, about one per 8 MiB, at most five.
    let files = 1 + (data / (8 << 20)).min(4);
    for f in 0..files {
        let len = if f + 1 == files {
            data
        } else {
            data * (20 + rng.below(40)) / 100
        };
        data -= len;
        content(
            &pkg.join(format!("lib/data-{f}.bin")),
            len,
            0o644,
            index,
            2 + f,
        )?;
    }
    symlink("data-0.bin", pkg.join("lib/current"))
}

fn mkdir(path: &Path, mode: u32) -> io::Result<()> {
    fs::create_dir_all(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// A file of `len` pseudo-random bytes from the stream `(package, file)`.
fn content(path: &Path, len: u64, mode: u32, package: u64, file: u64) -> io::Result<()> {
    let mut rng = bootswarm_sim::rng::stream(SAMPLE_SEED, package + 1, 100 + file);
    let mut out = io::BufWriter::with_capacity(1 << 20, fs::File::create(path)?);
    let mut buf = vec![0u8; 64 << 10];
    let mut left = len;
    while left > 0 {
        for word in buf.chunks_exact_mut(8) {
            word.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// Version 2 of the sample in `v1` (a directory [`generate`] wrote holding `pkgs`), written
/// under `v2` (created): a copy in which the last `changed` packages have the start of their
/// largest data file overwritten with new pseudo-random bytes, about `fraction` of `size` in
/// all. Returns the package directories of v2 in publishing order.
pub(crate) fn upgrade(
    v2: &Path,
    pkgs: &[PathBuf],
    changed: u32,
    fraction: f64,
    size: u64,
) -> io::Result<Vec<PathBuf>> {
    mkdir(v2, 0o755)?;
    let changed = (changed as usize).min(pkgs.len());
    let budget = (size as f64 * fraction.clamp(0.0, 1.0)) as u64;
    let per_pkg = budget / changed.max(1) as u64;
    let mut out = Vec::with_capacity(pkgs.len());
    for (i, pkg) in pkgs.iter().enumerate() {
        let name = pkg
            .file_name()
            .ok_or_else(|| io::Error::other(format!("{} has no name", pkg.display())))?;
        let dst = v2.join(name);
        copy_tree(pkg, &dst)?;
        if i >= pkgs.len() - changed {
            rewrite_largest(&dst.join("lib"), per_pkg.max(1), i as u64)?;
        }
        out.push(dst);
    }
    Ok(out)
}

/// Copies the tree `src` to `dst`, keeping modes and symlinks.
fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(src)?;
    mkdir(dst, meta.permissions().mode() & 0o7777)?;
    for e in fs::read_dir(src)? {
        let e = e?;
        let (from, to) = (e.path(), dst.join(e.file_name()));
        let ft = e.file_type()?;
        if ft.is_symlink() {
            symlink(fs::read_link(&from)?, &to)?;
        } else if ft.is_dir() {
            copy_tree(&from, &to)?;
        } else {
            fs::copy(&from, &to)?;
        }
    }
    // Directory modes last: a read-only directory would refuse its own entries.
    fs::set_permissions(dst, meta.permissions())
}

/// Overwrites the first `len` bytes (at most the whole file) of the largest file in `dir`
/// with bytes from the stream `(package, 900)`.
fn rewrite_largest(dir: &Path, len: u64, package: u64) -> io::Result<()> {
    let mut best: Option<(u64, PathBuf)> = None;
    for e in fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_file() {
            let l = e.metadata()?.len();
            if best.as_ref().is_none_or(|(b, _)| l > *b) {
                best = Some((l, e.path()));
            }
        }
    }
    let Some((flen, path)) = best else {
        return Err(io::Error::other(format!(
            "{} holds no file to change",
            dir.display()
        )));
    };
    let mut rng = bootswarm_sim::rng::stream(SAMPLE_SEED, package + 1, 900);
    let mut f = fs::OpenOptions::new().write(true).open(&path)?;
    let mut buf = vec![0u8; 64 << 10];
    let mut left = len.min(flen);
    while left > 0 {
        for word in buf.chunks_exact_mut(8) {
            word.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.sync_all()
}

/// What a tree entry looks like, for comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    /// A directory and its permission bits.
    Dir(u32),
    /// A file: permission bits, length and sha2-256.
    File(u32, u64, [u8; 32]),
    /// A symlink and its target.
    Symlink(PathBuf),
}

/// Every entry below `root` by relative path (the root itself excluded).
pub(crate) type Tree = BTreeMap<String, Entry>;

/// Reads the tree below `root`; symlinks are recorded, never followed.
pub(crate) fn digest(root: &Path) -> io::Result<Tree> {
    let mut tree = Tree::new();
    walk(root, "", &mut tree)?;
    Ok(tree)
}

fn walk(dir: &Path, rel: &str, tree: &mut Tree) -> io::Result<()> {
    let mut names: Vec<_> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()?;
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let rel = format!("{rel}{}", name.to_string_lossy());
        let meta = fs::symlink_metadata(&path)?;
        let mode = meta.permissions().mode() & 0o7777;
        let ft = meta.file_type();
        if ft.is_symlink() {
            tree.insert(rel, Entry::Symlink(fs::read_link(&path)?));
        } else if ft.is_dir() {
            tree.insert(rel.clone(), Entry::Dir(mode));
            walk(&path, &format!("{rel}/"), tree)?;
        } else {
            let (len, sha) = hash_file(&path)?;
            tree.insert(rel, Entry::File(mode, len, sha));
        }
    }
    Ok(())
}

fn hash_file(path: &Path) -> io::Result<(u64, [u8; 32])> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
    Ok((len, h.finalize().into()))
}

/// The first difference between `want` and `got`, in words; `None` if they are identical.
pub(crate) fn difference(want: &Tree, got: &Tree) -> Option<String> {
    for (path, w) in want {
        match got.get(path) {
            None => return Some(format!("{path} is missing")),
            Some(g) if g != w => return Some(format!("{path} differs ({})", describe(w, g))),
            Some(_) => {}
        }
    }
    got.keys()
        .find(|p| !want.contains_key(*p))
        .map(|p| format!("{p} is not in the release"))
}

fn describe(want: &Entry, got: &Entry) -> String {
    match (want, got) {
        (Entry::File(wm, ..), Entry::File(gm, ..)) if wm != gm => {
            format!("mode {gm:o}, expected {wm:o}")
        }
        (Entry::File(_, wl, _), Entry::File(_, gl, _)) if wl != gl => {
            format!("{gl} bytes, expected {wl}")
        }
        (Entry::File(..), Entry::File(..)) => "content".into(),
        (Entry::Dir(w), Entry::Dir(g)) => format!("mode {g:o}, expected {w:o}"),
        (Entry::Symlink(w), Entry::Symlink(g)) => {
            format!("points to {}, expected {}", g.display(), w.display())
        }
        _ => "kind".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_deterministic_exact_and_varied() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let size = 3 * (8 << 20) + 12345;
        let pkgs = generate(a.path(), 5, size).unwrap();
        generate(b.path(), 5, size).unwrap();
        assert_eq!(pkgs.len(), 5);
        let ta = digest(a.path()).unwrap();
        let tb = digest(b.path()).unwrap();
        assert_eq!(difference(&ta, &tb), None);
        let total: u64 = ta
            .values()
            .map(|e| match e {
                Entry::File(_, l, _) => *l,
                _ => 0,
            })
            .sum();
        assert_eq!(total, size);
        assert!(ta.values().any(|e| matches!(e, Entry::Symlink(_))));
        assert!(ta.values().any(|e| matches!(e, Entry::File(0o755, _, _))));
        let sizes: std::collections::BTreeSet<u64> = ta
            .values()
            .filter_map(|e| match e {
                Entry::File(_, l, _) => Some(*l),
                _ => None,
            })
            .collect();
        assert!(sizes.len() > 5, "{sizes:?}");
        // Tiny releases still give every package a byte.
        let c = tempfile::tempdir().unwrap();
        generate(c.path(), 4, 4).unwrap();
        // A changed byte is found.
        let f = a.path().join("pkg-01/bin/run");
        let mut bytes = fs::read(&f).unwrap();
        bytes[0] ^= 1;
        fs::write(&f, bytes).unwrap();
        let d = difference(&tb, &digest(a.path()).unwrap()).unwrap();
        assert!(d.contains("pkg-01/bin/run differs (content)"), "{d}");
    }

    #[test]
    fn upgrade_changes_only_the_last_packages() {
        let w = tempfile::tempdir().unwrap();
        let size = 4 << 20;
        let pkgs = generate(&w.path().join("v1"), 4, size).unwrap();
        let v2 = upgrade(&w.path().join("v2"), &pkgs, 2, 0.05, size).unwrap();
        assert_eq!(v2.len(), 4);
        let t1 = digest(&w.path().join("v1")).unwrap();
        let t2 = digest(&w.path().join("v2")).unwrap();
        assert_eq!(t1.len(), t2.len());
        let changed: Vec<&String> = t1.keys().filter(|p| t1[*p] != t2[*p]).collect();
        assert_eq!(changed.len(), 2, "{changed:?}");
        assert!(
            changed
                .iter()
                .all(|p| p.starts_with("pkg-02/lib/") || p.starts_with("pkg-03/lib/"))
        );
        // Deterministic.
        upgrade(&w.path().join("v2b"), &pkgs, 2, 0.05, size).unwrap();
        assert_eq!(
            difference(&t2, &digest(&w.path().join("v2b")).unwrap()),
            None
        );
    }
}
