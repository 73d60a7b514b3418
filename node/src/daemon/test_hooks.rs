//! Misbehaviour for tests, compiled only with the `test-hooks` feature (the node's own tests
//! turn it on; a release build has none of it): crash points, a block changed on disk just
//! before an install, and a peer that corrupts, withholds, replays or floods forged releases.

use std::time::Duration;

use bootswarm_protocol::block::Cid;

/// Test-only behaviour of a daemon.
#[cfg(feature = "test-hooks")]
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TestHooks {
    /// TEST ONLY: flip a byte in every block served.
    #[arg(long, hide = true)]
    pub test_corrupt_serving: bool,
    /// TEST ONLY: claim every block of the release and never serve one.
    #[arg(long, hide = true)]
    pub test_withhold: bool,
    /// TEST ONLY: gossip the current release again every DURATION.
    #[arg(long, hide = true, value_name = "DURATION")]
    pub test_replay: Option<String>,
    /// TEST ONLY: gossip N forged releases a second (the current one with a broken signature).
    #[arg(long, hide = true, value_name = "N")]
    pub test_forge_flood: Option<u32>,
}

/// Test-only behaviour of a daemon (none without the `test-hooks` feature).
#[cfg(not(feature = "test-hooks"))]
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TestHooks {}

impl TestHooks {
    /// Flip a byte in every block served.
    pub(crate) fn corrupt_serving(&self) -> bool {
        #[cfg(feature = "test-hooks")]
        return self.test_corrupt_serving;
        #[cfg(not(feature = "test-hooks"))]
        false
    }

    /// Claim every block and never serve.
    pub(crate) fn withhold(&self) -> bool {
        #[cfg(feature = "test-hooks")]
        return self.test_withhold;
        #[cfg(not(feature = "test-hooks"))]
        false
    }

    /// Re-gossip the current release this often.
    pub(crate) fn replay(&self) -> Option<Duration> {
        #[cfg(feature = "test-hooks")]
        return self
            .test_replay
            .as_deref()
            .and_then(|s| crate::units::parse_duration(s).ok())
            .map(|s| Duration::from_secs(s.max(1)));
        #[cfg(not(feature = "test-hooks"))]
        None
    }

    /// Forged releases to gossip a second.
    pub(crate) fn forge_flood(&self) -> Option<u32> {
        #[cfg(feature = "test-hooks")]
        return self.test_forge_flood.filter(|n| *n > 0);
        #[cfg(not(feature = "test-hooks"))]
        None
    }
}

/// Environment variable naming the upgrade step at which the process aborts.
#[cfg(feature = "test-hooks")]
pub(crate) const CRASH_ENV: &str = "BOOTSWARM_TEST_CRASH_AT";

/// Aborts the process at `step` when [`CRASH_ENV`] names it (with the `test-hooks` feature).
pub(crate) fn crash_point(step: &str) {
    #[cfg(feature = "test-hooks")]
    if std::env::var(CRASH_ENV).is_ok_and(|v| v == step) {
        eprintln!("{CRASH_ENV}={step}: aborting the process as asked");
        std::process::abort();
    }
    #[cfg(not(feature = "test-hooks"))]
    let _ = step;
}

/// Environment variable naming a seq: just before installing it, the daemon changes the file
/// of the version's last block in its store, as a disk would after the store hashed it.
#[cfg(feature = "test-hooks")]
pub(crate) const TAMPER_ENV: &str = "BOOTSWARM_TEST_TAMPER_AT_SEQ";

/// Flips a byte in the store's file of the last of `chunks` when [`TAMPER_ENV`] names `seq`
/// (with the `test-hooks` feature).
/// Whether the daemon may write a version's files while its boot still fetches: not when the
/// tamper point is set, since it changes a block after the fetch for the install to catch.
pub(crate) fn writes_ahead() -> bool {
    #[cfg(feature = "test-hooks")]
    return std::env::var(TAMPER_ENV).is_err();
    #[cfg(not(feature = "test-hooks"))]
    true
}

pub(crate) fn tamper_point(store: &crate::store::SledStore, seq: u64, chunks: &[(Cid, u32)]) {
    #[cfg(feature = "test-hooks")]
    if std::env::var(TAMPER_ENV).is_ok_and(|v| v == seq.to_string())
        && let Some((cid, _)) = chunks.last()
    {
        let path = store.block_path(cid);
        if let Ok(mut bytes) = std::fs::read(&path)
            && !bytes.is_empty()
        {
            let mid = bytes.len() / 2;
            bytes[mid] ^= 1;
            let _ = std::fs::write(&path, &bytes);
            eprintln!("{TAMPER_ENV}={seq}: changed {}", path.display());
        }
    }
    #[cfg(not(feature = "test-hooks"))]
    let _ = (store, seq, chunks);
}
