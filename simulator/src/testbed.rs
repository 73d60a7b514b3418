//! The netns testbed: a scenario run with real `bootswarm` processes in Linux network
//! namespaces, next to the simulator's prediction for the same scenario.
//!
//! One namespace per node, one for the hub and one holding the bridge; veth pairs; tbf on the
//! hub's link (and on NICs when the scenario asks). Nothing is created in the root
//! namespace, and every namespace, process and temporary file is removed again, also on
//! failure and on SIGINT/SIGTERM. Needs root and iproute2 (`ip`, `tc`).
//!
//! A module of the `bootswarm-sim` binary, not of the library: it uses the simulator only
//! through the library's public API, and the simulator cannot depend on it. Its one entry is
//! [`run`].

mod checks;
mod compare;
mod cpu;
mod lab;
mod outcome;
mod phase;
mod process;
mod publish;
mod ramdisk;
mod run;
mod sample;
mod upgrade;
mod workdir;

use bootswarm_sim::scenario::{Discovery, Scenario};
use clap::ValueEnum;
use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The arguments of `bootswarm-sim testbed`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The scenario file.
    scenario: PathBuf,
    /// The `bootswarm` binary to run.
    #[arg(long, value_name = "PATH")]
    bin: PathBuf,
    /// Print one JSON object: the simulator's keys plus the measured ones.
    #[arg(long)]
    json: bool,
    /// How nodes find each other (default: the scenario's [testbed] discovery, else static).
    #[arg(long, value_enum)]
    discovery: Option<DiscoveryArg>,
    /// Skip the hub-only run of real processes.
    #[arg(long)]
    no_baseline: bool,
    /// Keep the work directory (packages, hub, stores, node logs) and print its path.
    #[arg(long)]
    keep_workdir: bool,
    /// Put the work directory on the disk instead of a tmpfs of its own (which may take
    /// up to (3 × nodes + 4) × the release size of memory).
    #[arg(long)]
    on_disk: bool,
}

/// `--discovery` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum DiscoveryArg {
    /// Node k dials nodes 0..k (--peer).
    Static,
    /// libp2p mDNS on the testbed bridge (--mdns).
    Mdns,
}

/// Runs `bootswarm-sim testbed`: prints measured against simulated figures and returns the
/// exit status (0 all checks passed, 1 a check failed, 2 error, 3 root or iproute2 missing,
/// 130 interrupted).
pub(crate) fn run(args: Args) -> ExitCode {
    let opts = run::Options {
        bin: args.bin,
        discovery: args.discovery.map(|d| match d {
            DiscoveryArg::Static => Discovery::Static,
            DiscoveryArg::Mdns => Discovery::Mdns,
        }),
        baseline: !args.no_baseline,
        keep_workdir: args.keep_workdir,
        on_disk: args.on_disk,
        stop: Arc::new(AtomicBool::new(false)),
        progress: true,
    };
    let sc = match Scenario::load(&args.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let stop = Arc::clone(&opts.stop);
    if let Err(e) = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst)) {
        eprintln!("error: cannot install the SIGINT/SIGTERM handler ({e})");
        return ExitCode::from(2);
    }
    match run::run(&sc, &opts) {
        Ok(out) => {
            if args.json {
                println!("{}", compare::json(&out));
            } else {
                print!("{}", compare::table(&out));
            }
            if out.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(match e {
                Error::Prerequisite(_) => 3,
                Error::Interrupted => 130,
                Error::Failed(_) => 2,
            })
        }
    }
}

/// Why a testbed run did not produce an outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Error {
    /// Something the testbed needs (root, `ip`, `tc`) is missing; nothing was attempted.
    Prerequisite(String),
    /// Stopped by SIGINT/SIGTERM.
    Interrupted,
    /// The run failed.
    Failed(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Prerequisite(m) | Error::Failed(m) => f.write_str(m),
            Error::Interrupted => {
                f.write_str("interrupted; every namespace and process it made has been removed")
            }
        }
    }
}

impl std::error::Error for Error {}
