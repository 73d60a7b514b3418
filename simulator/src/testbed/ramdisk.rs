//! The testbed's work directory on a tmpfs of its own, unmounted again when dropped.
//!
//! Sixteen co-located nodes share one disk and one filesystem, where a farm's nodes each have
//! their own (and Zero-OS runs from RAM anyway). On the shared ext4 of a test machine, inode
//! allocation and page-cache writeback of 16 stores and 16 trees cost the nodes more CPU than
//! the swarm itself: lan-16 measured 31–34 s on disk and 27–28 s on tmpfs with the same
//! binaries. `--on-disk` keeps the old behaviour.

use super::{Error, lab};
use std::fs;
use std::path::{Path, PathBuf};

/// Share of the available memory the tmpfs may be asked to hold.
const MAX_SHARE_OF_AVAILABLE: f64 = 0.8;

/// A tmpfs mounted on a directory.
#[derive(Debug)]
pub(crate) struct RamDisk {
    path: PathBuf,
    /// Left mounted on drop (the work directory is being kept).
    keep: bool,
}

impl RamDisk {
    /// Mounts a tmpfs of at most `size` bytes on `path`, after checking that the machine has
    /// that much memory available.
    pub(crate) fn mount(path: &Path, size: u64) -> Result<RamDisk, Error> {
        let available = mem_available().ok_or_else(|| {
            Error::Failed(
                "cannot read MemAvailable from /proc/meminfo; pass --on-disk to run the testbed on the disk"
                    .into(),
            )
        })?;
        if size as f64 > available as f64 * MAX_SHARE_OF_AVAILABLE {
            return Err(Error::Failed(format!(
                "the testbed's work directory needs {:.1} GiB of RAM (a tmpfs) but only {:.1} GiB is available; free memory or pass --on-disk",
                size as f64 / GIB,
                available as f64 / GIB
            )));
        }
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "bootswarm-testbed",
                &path.to_string_lossy(),
            ],
        )?;
        Ok(RamDisk {
            path: path.to_path_buf(),
            keep: false,
        })
    }

    /// Leaves the tmpfs mounted when dropped.
    pub(crate) fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for RamDisk {
    fn drop(&mut self) {
        if !self.keep {
            unmount(&self.path);
        }
    }
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Unmounts `path` (lazily if a process still holds it), warning on failure.
pub(crate) fn unmount(path: &Path) {
    let p = path.to_string_lossy();
    if run("umount", &[&p]).is_err()
        && let Err(e) = run("umount", &["-l", &p])
    {
        eprintln!("warning: {e}");
    }
}

/// Whether `path` is a mount point (listed in /proc/self/mountinfo).
pub(crate) fn is_mounted(path: &Path) -> bool {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| m == want)
}

/// MemAvailable in bytes.
fn mem_available() -> Option<u64> {
    parse_mem_available(&fs::read_to_string("/proc/meminfo").ok()?)
}

fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// [`lab::run`], pointing at `--on-disk` when it fails.
fn run(tool: &str, args: &[&str]) -> Result<(), Error> {
    lab::run(tool, args).map_err(|e| match e {
        Error::Failed(msg) => Error::Failed(format!(
            "{msg}; pass --on-disk to run the testbed on the disk"
        )),
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mem_available() {
        let info = "MemTotal:       24000000 kB\nMemFree:  1 kB\nMemAvailable:   2048 kB\n";
        assert_eq!(parse_mem_available(info), Some(2048 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 5 kB\n"), None);
        assert_eq!(parse_mem_available("MemAvailable: lots kB\n"), None);
    }

    #[test]
    fn the_root_is_mounted_and_a_fresh_directory_is_not() {
        assert!(is_mounted(Path::new("/")));
        let d = tempfile::tempdir().unwrap();
        assert!(!is_mounted(d.path()));
    }
}
