//! The run's work directory (samples, hub, stores, trees, logs): a temporary directory, on a
//! tmpfs of its own unless the run is on disk, and what earlier runs left of theirs.

use super::Error;
use super::ramdisk::{self, RamDisk};
use std::fs;
use std::path::Path;
use tempfile::TempDir;

/// Prefix of every work directory; the creator's pid and a dash follow.
const PREFIX: &str = "bootswarm-testbed-";

/// The work directory, removed (and its tmpfs unmounted) when dropped unless kept.
#[derive(Debug)]
pub(crate) struct WorkDir {
    /// Declared before `dir`, so it is unmounted before the directory is removed.
    _ram: Option<RamDisk>,
    dir: TempDir,
}

impl WorkDir {
    /// Creates the work directory of a run of `nodes` nodes and a release of `release` bytes:
    /// kept after the run if `keep`, on a tmpfs unless `on_disk`.
    pub(crate) fn create(
        nodes: u32,
        release: u64,
        keep: bool,
        on_disk: bool,
    ) -> Result<WorkDir, Error> {
        let mut dir = tempfile::Builder::new()
            // Kept directories get another prefix, so later runs do not take them for stale.
            .prefix(&if keep {
                format!("{PREFIX}keep-{}-", std::process::id())
            } else {
                format!("{PREFIX}{}-", std::process::id())
            })
            .tempdir()
            .map_err(|e| {
                Error::Failed(format!(
                    "cannot create a work directory in {} ({e}); set TMPDIR to a writable directory",
                    std::env::temp_dir().display()
                ))
            })?;
        if keep {
            dir.disable_cleanup(true);
        }
        let mut ram = match on_disk {
            true => None,
            false => Some(RamDisk::mount(dir.path(), workdir_bytes(nodes, release))?),
        };
        if let Some(r) = ram.as_mut().filter(|_| keep) {
            r.keep();
            eprintln!(
                "the kept work directory {} is a tmpfs: `umount` it to free its memory",
                dir.path().display()
            );
        }
        Ok(WorkDir { _ram: ram, dir })
    }

    /// Where it is.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Upper bound of what a run writes into its work directory: per node its store and two trees
/// side by side during an upgrade (swarm and hub-only runs use the nodes' space one after the
/// other); the two versions of the sample packages and the hub's blocks; room for logs and
/// indexes.
fn workdir_bytes(nodes: u32, release: u64) -> u64 {
    (3 * u64::from(nodes) + 4)
        .saturating_mul(release)
        .saturating_add(256 << 20)
}

/// Removes work directories of earlier runs whose process is gone (killed with SIGKILL).
pub(crate) fn remove_stale() {
    let Ok(dir) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|r| r.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if ramdisk::is_mounted(&e.path()) {
            ramdisk::unmount(&e.path());
        }
        if fs::remove_dir_all(e.path()).is_ok() {
            eprintln!("removed {} left by an earlier run", e.path().display());
        }
    }
}
