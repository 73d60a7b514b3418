//! What the follower starts from: its settings and the node's durable state.

use super::*;

/// The follower's settings from the daemon's options.
pub(super) fn follower_config(
    opts: &DaemonOptions,
    statics: usize,
    me: NodeId,
) -> Result<FollowerConfig> {
    let install = match (&opts.target, opts.once) {
        (None, _) => InstallMode::None,
        (Some(_), true) => InstallMode::Direct,
        (Some(_), false) => InstallMode::Versions {
            hooks: opts.hooks.on_change.is_some(),
            health_check: opts.hooks.health_check.is_some(),
        },
    };
    Ok(FollowerConfig {
        me,
        seed: random_seed()?,
        poll_interval: Some(opts.poll_interval),
        poll_backoff: POLL_BACKOFF,
        poll_backoff_max: POLL_BACKOFF_MAX,
        peers_needed: opts.min_peers.max(statics),
        peer_wait: opts.peer_wait,
        install,
        ..FollowerConfig::new(opts.channel.clone(), opts.trust.clone())
    })
}

/// What the follower starts from: the durable state and the saved release.
pub(super) fn restored(
    state: &NodeState,
    opts: &DaemonOptions,
    saved: Option<Vec<u8>>,
) -> Restored {
    let installed = state
        .installed
        .as_ref()
        .filter(|i| i.channel == opts.channel && opts.target.as_ref() == Some(&i.target))
        .and_then(|i| version(i.seq, &i.root));
    let installed_on_disk = match (installed, &opts.target) {
        (Some(v), Some(target)) => versions::on_disk(target, v.seq),
        _ => false,
    };
    Restored {
        high_water: state.high_water.get(&opts.channel).cloned(),
        release: saved,
        installed,
        installed_on_disk,
        failed: state.failed.as_ref().and_then(|f| {
            Some(follower::Failure {
                version: version(f.seq, &f.root)?,
                reason: f.reason.clone(),
                at: f.at,
                rolled_back: true,
            })
        }),
    }
}

/// The node's record of a failure.
pub(super) fn failed(f: &follower::Failure) -> FailedUpgrade {
    FailedUpgrade {
        seq: f.version.seq,
        root: f.version.root.to_string(),
        reason: f.reason.clone(),
        at: f.at,
    }
}

pub(super) fn random_seed() -> Result<u64> {
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed)
        .map_err(|e| Error::new(format!("cannot get randomness for a seed ({e})")))?;
    Ok(u64::from_le_bytes(seed))
}
