//! Misbehaviour for tests, compiled only with the `test-hooks` feature (the node's own tests
//! turn it on; a release build has none of it): crash points, and a peer that corrupts,
//! withholds or replays.

use std::time::Duration;

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
