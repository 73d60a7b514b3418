//! Side-by-side installs for the daemon.
//!
//! Each version is materialised into `TARGET/releases/<seq>/` (first under a `.partial-<seq>`
//! name, renamed once complete, so a directory named by a seq is always a whole tree), then
//! `TARGET/current` is switched to it atomically (a new symlink at a temporary name, rename,
//! fsync of the directory). On an upgrade the `--on-change` hook runs once per changed package
//! and then `--health-check`; if either fails, `current` goes back to the previous version, the
//! hooks run again for it, and the reason is recorded in `state.json`. The last `--keep`
//! versions stay on disk; older release directories and the blocks no kept version references
//! are removed.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use bootswarm_protocol::block::{Cid, parse_cid};
use bootswarm_protocol::manifest::Flist;
use bootswarm_protocol::store::BlockStore;

use super::install::placed_flists;
use crate::boot::materialise::{MaterialiseStats, materialise, plan};
use crate::error::{Error, Result};
use crate::fsutil::fsync_dir;
use crate::state::{FailedUpgrade, Installed, NodeState, Version};
use crate::store::SledStore;

/// Directory under the target holding one directory per version.
pub(crate) const RELEASES_DIR: &str = "releases";
/// Symlink under the target naming the version in use.
pub(crate) const CURRENT_LINK: &str = "current";
/// Test-only environment variable: abort the process at the named upgrade step.
pub(crate) const CRASH_ENV: &str = "BOOTSWARM_TEST_CRASH_AT";
const PARTIAL_PREFIX: &str = ".partial-";
const GC_PREFIX: &str = ".gc-";
const LINK_TMP_PREFIX: &str = ".current.tmp-";

/// Hooks run around a switch.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hooks {
    /// Command template run once per changed package; `{package}` is replaced by its name.
    pub(crate) on_change: Option<String>,
    /// Command run after the hooks; a non-zero exit means unhealthy.
    pub(crate) health_check: Option<String>,
    /// Longest time one hook or check may run.
    pub(crate) timeout: Duration,
}

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
    /// Restart hooks and health check.
    pub(crate) hooks: Hooks,
}

/// What an install did.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// `current` now names this version.
    Installed {
        /// What was written (none when the version directory was already complete).
        stats: Option<MaterialiseStats>,
        /// Packages whose hook ran.
        changed: Vec<String>,
    },
    /// A hook or the health check failed; `current` is back on the previous version.
    RolledBack(FailedUpgrade),
    /// This release failed before; it is not installed again.
    Skipped(FailedUpgrade),
}

/// Aborts the process at `step` when the test-only [`CRASH_ENV`] names it.
pub(crate) fn crash_point(step: &str) {
    if std::env::var(CRASH_ENV).is_ok_and(|v| v == step) {
        eprintln!("{CRASH_ENV}={step}: aborting the process as asked");
        std::process::abort();
    }
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
fn switch(target: &Path, seq: u64) -> Result<()> {
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

/// Removes half-written versions, directories half-deleted and temporary links left by a
/// crash.
fn clean_leftovers(target: &Path) -> Result<()> {
    let rel = releases(target);
    for entry in fs::read_dir(&rel).map_err(|e| io_err("read", &rel, &e))? {
        let entry = entry.map_err(|e| io_err("read", &rel, &e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
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
pub(crate) fn changed_packages<S: BlockStore + ?Sized>(
    store: &S,
    old: &Cid,
    new: &Cid,
) -> Vec<String> {
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

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Runs `sh -c cmd` with `env`, stdout sent to stderr, killed after `timeout`. The error is
/// a clause naming what failed.
fn run_command(
    cmd: &str,
    env: &[(&str, String)],
    timeout: Duration,
) -> std::result::Result<(), String> {
    let stdout = std::os::fd::AsFd::as_fd(&io::stderr())
        .try_clone_to_owned()
        .map_or_else(|_| Stdio::null(), Stdio::from);
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(stdout)
        .spawn()
        .map_err(|e| format!("'{cmd}' could not be started ({e})"))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("'{cmd}' failed ({status})")),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("'{cmd}' timed out after {} s", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("'{cmd}' could not be waited for ({e})")),
        }
    }
}

/// Runs the change hook for each package; stops at the first failure unless `all`.
fn run_hooks(
    layout: &Layout,
    seq: u64,
    action: &str,
    changed: &[String],
    all: bool,
) -> std::result::Result<(), String> {
    let Some(template) = &layout.hooks.on_change else {
        return Ok(());
    };
    let mut first_error = None;
    for package in changed {
        let cmd = template.replace("{package}", &shell_quote(package));
        let env = [
            ("BOOTSWARM_PACKAGE", package.clone()),
            ("BOOTSWARM_SEQ", seq.to_string()),
            ("BOOTSWARM_ACTION", action.to_string()),
            (
                "BOOTSWARM_CURRENT",
                layout.target.join(CURRENT_LINK).display().to_string(),
            ),
        ];
        if let Err(e) = run_command(&cmd, &env, layout.hooks.timeout) {
            let e = format!("the on-change hook for package '{package}': {e}");
            tracing::warn!("{e}");
            first_error.get_or_insert(e);
            if !all {
                break;
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn health_check(layout: &Layout, seq: u64) -> std::result::Result<(), String> {
    let Some(cmd) = &layout.hooks.health_check else {
        return Ok(());
    };
    let env = [
        ("BOOTSWARM_SEQ", seq.to_string()),
        (
            "BOOTSWARM_CURRENT",
            layout.target.join(CURRENT_LINK).display().to_string(),
        ),
    ];
    run_command(cmd, &env, layout.hooks.timeout).map_err(|e| format!("the health check {e}"))
}

fn lock(state: &Mutex<NodeState>) -> std::sync::MutexGuard<'_, NodeState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Installs release `seq` (root `root`) side by side and switches to it; see the module
/// documentation. `gc_blocks` allows removing blocks no kept version references (false while
/// a newer release is being fetched).
pub(crate) fn install_version(
    store: &SledStore,
    state: &Mutex<NodeState>,
    layout: &Layout,
    seq: u64,
    root: Cid,
    gc_blocks: bool,
) -> Result<Outcome> {
    // The store's index is flushed lazily; a crash could otherwise lose blocks this version
    // (and the next upgrade's hook diff) relies on.
    store.flush()?;
    let target = &layout.target;
    let rel = releases(target);
    fs::create_dir_all(&rel).map_err(|e| io_err("create", &rel, &e))?;
    clean_leftovers(target)?;
    let root_text = root.to_string();
    let (prev, failed) = {
        let st = lock(state);
        let prev = st
            .installed
            .as_ref()
            .filter(|i| i.target == *target && i.channel == layout.channel)
            .and_then(|i| Some((i.seq, parse_cid(&i.root).ok()?)));
        (prev, st.failed.clone())
    };
    if let Some(f) = failed.filter(|f| f.seq == seq && f.root == root_text) {
        return Ok(Outcome::Skipped(f));
    }
    // An upgrade needs the previous version on disk to roll back to (a target written by
    // `bootswarm boot` has none: the first daemon install there is not an upgrade).
    let upgrade =
        prev.filter(|(s, r)| (*s != seq || *r != root) && rel.join(s.to_string()).is_dir());
    if upgrade.is_some() {
        crash_point("after-fetch");
    }

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
        let partial = rel.join(format!("{PARTIAL_PREFIX}{seq}"));
        let flists = placed_flists(store, &root)?;
        let tree = plan(&flists)?;
        let stats = materialise(store, &tree, &partial, &|_| {})?;
        fs::rename(&partial, &dir).map_err(|e| io_err("rename", &partial, &e))?;
        fsync_dir(&rel).map_err(|e| io_err("sync the directory", &rel, &e))?;
        Some(stats)
    };
    {
        let mut st = lock(state);
        st.versions.retain(|v| v.seq != seq);
        st.versions.push(Version {
            seq,
            root: root_text.clone(),
        });
        st.versions.sort_by_key(|v| v.seq);
        st.save(&layout.store_dir)?;
    }
    if upgrade.is_some() {
        crash_point("after-materialise");
    }
    switch(target, seq)?;
    let mut changed = Vec::new();
    if let Some((old_seq, old_root)) = upgrade {
        crash_point("after-switch");
        changed = changed_packages(store, &old_root, &root);
        let verdict = run_hooks(layout, seq, "upgrade", &changed, false).and_then(|()| {
            crash_point("after-hook");
            health_check(layout, seq)
        });
        if let Err(reason) = verdict {
            return roll_back(
                state,
                layout,
                (seq, root),
                (old_seq, old_root),
                &changed,
                reason,
            );
        }
    }
    {
        let mut st = lock(state);
        st.installed = Some(Installed {
            channel: layout.channel.clone(),
            seq,
            root: root_text,
            target: target.clone(),
        });
        st.save(&layout.store_dir)?;
    }
    if let Err(e) = collect_garbage(store, state, layout, seq, gc_blocks) {
        tracing::warn!("garbage collection failed: {e}");
    }
    Ok(Outcome::Installed { stats, changed })
}

/// Switches back to the previous version, re-runs its hooks and records why.
fn roll_back(
    state: &Mutex<NodeState>,
    layout: &Layout,
    (seq, root): (u64, Cid),
    (old_seq, old_root): (u64, Cid),
    changed: &[String],
    reason: String,
) -> Result<Outcome> {
    tracing::warn!(
        seq,
        "upgrade failed ({reason}); rolling back to seq {old_seq}"
    );
    switch(&layout.target, old_seq)?;
    if let Err(e) = run_hooks(layout, old_seq, "rollback", changed, true) {
        tracing::warn!("after the rollback to seq {old_seq}, {e}");
    }
    let failed = FailedUpgrade {
        seq,
        root: root.to_string(),
        reason: format!("upgrade to seq {seq} was rolled back to seq {old_seq}: {reason}"),
        at: unix_now(),
    };
    {
        let mut st = lock(state);
        st.failed = Some(failed.clone());
        st.versions.retain(|v| v.seq != seq);
        // The previous version stays installed.
        if st.installed.as_ref().is_none_or(|i| i.seq != old_seq) {
            st.installed = Some(Installed {
                channel: layout.channel.clone(),
                seq: old_seq,
                root: old_root.to_string(),
                target: layout.target.clone(),
            });
        }
        st.save(&layout.store_dir)?;
    }
    remove_version_dir(&releases(&layout.target), &seq.to_string())?;
    Ok(Outcome::RolledBack(failed))
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
        let Ok(root) = parse_cid(&v.root) else {
            return Ok(());
        };
        // A kept version whose blocks cannot all be read: keep every block.
        let Ok(flists) = placed_flists(store, &root) else {
            return Ok(());
        };
        let Ok(tree) = plan(&flists) else {
            return Ok(());
        };
        referenced.extend(flists.iter().map(|f| f.cid));
        referenced.extend(tree.chunks().iter().map(|(c, _)| *c));
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
        clean_leftovers(t).unwrap();
        assert!(!t.join("releases/.partial-3").exists());
        assert!(!t.join(".current.tmp-1").exists());
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

    #[test]
    fn commands_report_failure_and_timeout() {
        assert!(run_command("true", &[], Duration::from_secs(5)).is_ok());
        let e = run_command("exit 3", &[], Duration::from_secs(5)).unwrap_err();
        assert!(e.contains("failed"), "{e}");
        let e = run_command("sleep 5", &[], Duration::from_millis(100)).unwrap_err();
        assert!(e.contains("timed out"), "{e}");
        assert_eq!(shell_quote("a'b"), "'a'\\''b'");
    }
}
