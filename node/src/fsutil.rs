//! Durable file writes: temp file, fsync, rename, fsync the directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh temporary path beside `path` (same directory, so a rename is atomic).
pub fn temp_path_for(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut rnd = [0u8; 4];
    let rnd = match getrandom::fill(&mut rnd) {
        Ok(()) => u32::from_le_bytes(rnd),
        Err(_) => 0,
    };
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = format!(".{name}.tmp-{}-{n}-{rnd:08x}", std::process::id());
    path.with_file_name(tmp)
}

/// How a temp file becomes `path`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Finish {
    /// Rename over `path`, fsynced.
    Replace,
    /// Rename over `path`, not fsynced.
    ReplaceLazily,
    /// Hard-link to `path`, which fails if `path` exists; fsynced.
    CreateNew,
}

/// Writes `bytes` to a temp file beside `path` (given `mode`, if any), then puts it in place
/// as `finish` says. On failure the temp file is removed and `path` is untouched.
fn write_via_temp(path: &Path, bytes: &[u8], mode: Option<u32>, finish: Finish) -> io::Result<()> {
    let tmp = temp_path_for(path);
    let durable = finish != Finish::ReplaceLazily;
    let result = (|| {
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        if let Some(mode) = mode {
            opts.mode(mode);
        }
        let mut file = opts.open(&tmp)?;
        file.write_all(bytes)?;
        if let Some(mode) = mode {
            file.set_permissions(fs::Permissions::from_mode(mode))?;
        }
        if durable {
            file.sync_all()?;
        }
        drop(file);
        match finish {
            Finish::CreateNew => fs::hard_link(&tmp, path),
            _ => fs::rename(&tmp, path),
        }
    })();
    if finish == Finish::CreateNew || result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    if durable {
        fsync_dir(parent_dir(path))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically and durably: a temp file in the same directory is
/// written, fsynced, given `mode` (if any), renamed over `path`, and the directory is fsynced.
/// On failure the temp file is removed and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: Option<u32>) -> io::Result<()> {
    write_via_temp(path, bytes, mode, Finish::Replace)
}

/// Like [`write_atomic`] but without the fsyncs: readers never see a partial file, but after
/// a power loss the file may be empty or stale. For caches whose every read is verified (the
/// block store), where the price of a loss is a refetch, not a wrong answer.
pub fn write_replace(path: &Path, bytes: &[u8], mode: Option<u32>) -> io::Result<()> {
    write_via_temp(path, bytes, mode, Finish::ReplaceLazily)
}

/// Like [`write_atomic`], but fails with `AlreadyExists` (leaving it untouched) if `path`
/// exists: the complete temp file is hard-linked to `path`, which never replaces a file.
pub fn write_new_atomic(path: &Path, bytes: &[u8], mode: Option<u32>) -> io::Result<()> {
    write_via_temp(path, bytes, mode, Finish::CreateNew)
}

/// Fsyncs a directory so that renames and creations inside it are durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Reads a whole file, refusing one longer than `max` bytes (without reading past `max + 1`).
pub fn read_capped(path: &Path, max: usize) -> io::Result<Vec<u8>> {
    let file = File::open(path)?;
    let mut bytes = Vec::new();
    file.take(max as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("file is larger than {max} bytes"),
        ));
    }
    Ok(bytes)
}

/// Refuses an unusable store directory or target (not a directory, missing parent) with one
/// sentence. Used by `bootswarm boot` and `bootswarm run`.
pub fn check_store_and_target(
    store: &std::path::Path,
    target: Option<&std::path::Path>,
) -> Result<()> {
    let pairs = [("--store", Some(store)), ("--into", target)];
    for (flag, path) in pairs.iter().filter_map(|(f, p)| p.map(|p| (*f, p))) {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => continue,
            Ok(_) => {
                return Err(Error::new(format!(
                    "{flag} {} is not a directory; give a directory path",
                    path.display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::new(format!(
                    "cannot access {flag} {} ({e}); check the path and its permissions",
                    path.display()
                )));
            }
        }
        let parent = crate::fsutil::parent_dir(path);
        if !parent.is_dir() {
            return Err(Error::new(format!(
                "the parent directory {} of {flag} {} does not exist; create it first",
                parent.display(),
                path.display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"one", None).unwrap();
        write_atomic(&path, b"two", Some(0o600)).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp file left behind");
    }

    #[test]
    fn write_atomic_into_missing_dir_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("f");
        assert!(write_atomic(&path, b"x", None).is_err());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn write_new_atomic_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_new_atomic(&path, b"one", Some(0o600)).unwrap();
        let err = write_new_atomic(&path, b"two", None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn read_capped_refuses_big_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, [0u8; 10]).unwrap();
        assert_eq!(read_capped(&path, 10).unwrap().len(), 10);
        assert!(read_capped(&path, 9).is_err());
    }
}
