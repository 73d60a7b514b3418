//! The sample packages published into the hub directory: version 1 before the lab starts,
//! version 2 for the upgrade; and what is read back from that directory.

use super::Error;
use super::process::{Ctx, check_stop};
use super::sample;
use bootswarm_sim::scenario::Scenario;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The channel the testbed publishes on.
pub(crate) const CHANNEL: &str = "testbed";

/// Version 1, published.
#[derive(Debug)]
pub(crate) struct Published {
    /// The package directories, in publishing order.
    pub(crate) pkgs: Vec<PathBuf>,
    /// Their tree, which every node must install.
    pub(crate) want: sample::Tree,
    /// The publisher's secret key.
    pub(crate) key: PathBuf,
    /// The hub directory.
    pub(crate) hub_dir: PathBuf,
    /// F: bytes of every published block.
    pub(crate) f: u64,
}

/// Writes the sample packages of `sc` under `w`, makes a key and publishes them into the hub
/// directory `w/hub`.
pub(crate) fn publish_v1(ctx: &Ctx<'_>, w: &Path, sc: &Scenario) -> Result<Published, Error> {
    ctx.report(&format!(
        "writing {} sample packages ({} bytes)",
        sc.packages, sc.size
    ));
    let pkgs = sample::generate(&w.join("pkgs"), sc.packages, sc.size).map_err(|e| {
        Error::Failed(format!(
            "cannot write the sample packages in {} ({e})",
            w.display()
        ))
    })?;
    let want = sample::digest(&w.join("pkgs"))
        .map_err(|e| Error::Failed(format!("cannot read back the sample packages ({e})")))?;
    check_stop(ctx.stop)?;
    let key = w.join("publisher.key");
    ctx.tool(w, "keygen", |c| {
        c.arg("keygen").arg("--out").arg(&key);
    })?;
    let hub_dir = w.join("hub");
    ctx.tool(w, "publish", |c| {
        c.args(["publish", "--channel", CHANNEL, "--hub-dir"])
            .arg(&hub_dir)
            .arg("--key")
            .arg(&key)
            .args(&pkgs);
    })?;
    let f = dir_bytes(&hub_dir.join("blocks")).map_err(|e| {
        Error::Failed(format!(
            "cannot measure the published blocks in {} ({e})",
            hub_dir.display()
        ))
    })?;
    Ok(Published {
        pkgs,
        want,
        key,
        hub_dir,
        f,
    })
}

/// How to make, publish and announce v2.
#[derive(Debug)]
pub(crate) struct UpgradePlan {
    pub(crate) work: PathBuf,
    pub(crate) pkgs: Vec<PathBuf>,
    pub(crate) key: PathBuf,
    pub(crate) hub_dir: PathBuf,
    pub(crate) packages: u32,
    pub(crate) fraction: f64,
    pub(crate) size: u64,
    pub(crate) hub_link: u64,
    pub(crate) timeout: Option<Duration>,
}

/// Version 2, published.
#[derive(Debug)]
pub(crate) struct PublishedV2 {
    /// Its tree.
    pub(crate) want: sample::Tree,
    /// Bytes of the block files it added to the hub directory.
    pub(crate) changed_bytes: u64,
    /// Its release's seq.
    pub(crate) seq: u64,
    /// Its signed release file.
    pub(crate) release: PathBuf,
}

/// Writes v2 of the sample and publishes it into the hub directory.
pub(crate) fn publish_v2(ctx: &Ctx<'_>, plan: &UpgradePlan) -> Result<PublishedV2, Error> {
    ctx.report(&format!(
        "upgrade: changing {} packages ({:.1} % of the bytes)",
        plan.packages,
        plan.fraction * 100.0
    ));
    let v2_dir = plan.work.join("pkgs-v2");
    let pkgs = sample::upgrade(&v2_dir, &plan.pkgs, plan.packages, plan.fraction, plan.size)
        .map_err(|e| {
            Error::Failed(format!(
                "cannot write version 2 of the sample in {} ({e})",
                v2_dir.display()
            ))
        })?;
    let want = sample::digest(&v2_dir)
        .map_err(|e| Error::Failed(format!("cannot read back version 2 of the sample ({e})")))?;
    check_stop(ctx.stop)?;
    let blocks = plan.hub_dir.join("blocks");
    let read_blocks = || {
        block_files(&blocks).map_err(|e| {
            Error::Failed(format!(
                "cannot list the hub's blocks in {} ({e})",
                blocks.display()
            ))
        })
    };
    let before = read_blocks()?;
    ctx.tool(&plan.work, "publish-v2", |c| {
        c.args(["publish", "--channel", CHANNEL, "--hub-dir"])
            .arg(&plan.hub_dir)
            .arg("--key")
            .arg(&plan.key)
            .args(&pkgs);
    })?;
    let changed_bytes: u64 = read_blocks()?
        .into_iter()
        .filter(|(name, _)| !before.contains_key(name))
        .map(|(_, len)| len)
        .sum();
    let channel = plan.hub_dir.join("channels").join(CHANNEL);
    let (seq, release) = latest_release(&channel).ok_or_else(|| {
        Error::Failed(format!(
            "bootswarm publish wrote no <seq>.release in {}",
            channel.display()
        ))
    })?;
    Ok(PublishedV2 {
        want,
        changed_bytes,
        seq,
        release,
    })
}

/// The trust file `keygen` wrote next to the key.
pub(crate) fn lab_trust(key: &Path) -> PathBuf {
    let mut s = key.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// Bytes of every regular file below `dir`.
fn dir_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for e in fs::read_dir(dir)? {
        let e = e?;
        let ft = e.file_type()?;
        if ft.is_dir() {
            total += dir_bytes(&e.path())?;
        } else if ft.is_file() {
            total += e.metadata()?.len();
        }
    }
    Ok(total)
}

/// Every regular file below `dir` by path, with its length.
fn block_files(dir: &Path) -> std::io::Result<BTreeMap<PathBuf, u64>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.insert(e.path(), e.metadata()?.len());
            }
        }
    }
    Ok(out)
}

/// The highest `<seq>.release` in a channel directory.
fn latest_release(channel: &Path) -> Option<(u64, PathBuf)> {
    fs::read_dir(channel)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let seq = name.strip_suffix(".release")?.parse::<u64>().ok()?;
            Some((seq, e.path()))
        })
        .max_by_key(|(seq, _)| *seq)
}
