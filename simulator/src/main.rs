//! `bootswarm-sim`: run scenarios in the deterministic network simulator, or with real
//! processes in network namespaces (`testbed`).

use bootswarm_sim::report;
use bootswarm_sim::run::{Options, run_seed};
use bootswarm_sim::scenario::{Discovery, Scenario};
use bootswarm_sim::testbed;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Parser, Debug)]
#[command(
    name = "bootswarm-sim",
    version,
    about = "Deterministic flow-level simulator for bootswarm"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a scenario on its seeds (or one seed) and check its expectations.
    Run {
        /// The scenario file.
        scenario: PathBuf,
        /// Run only this seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Print one JSON object per seed instead of the table.
        #[arg(long)]
        json: bool,
        /// Write an SVG plot of the first seed to this file.
        #[arg(long)]
        svg: Option<PathBuf>,
        /// Skip the hub-only baseline run.
        #[arg(long)]
        no_baseline: bool,
    },
    /// Run a scenario with real `bootswarm` processes in network namespaces (needs root and
    /// iproute2) and print measured against simulated figures.
    ///
    /// Exit status: 0 all checks passed, 1 a check failed, 2 error, 3 root or iproute2
    /// missing, 130 interrupted.
    Testbed {
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
    },
}

/// `--discovery` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum DiscoveryArg {
    /// Node k dials nodes 0..k (--peer).
    Static,
    /// libp2p mDNS on the testbed bridge (--mdns).
    Mdns,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run {
            scenario,
            seed,
            json,
            svg,
            no_baseline,
        } => simulate(scenario, seed, json, svg, no_baseline),
        Cmd::Testbed {
            scenario,
            bin,
            json,
            discovery,
            no_baseline,
            keep_workdir,
            on_disk,
        } => {
            let opts = testbed::Options {
                bin,
                discovery: discovery.map(|d| match d {
                    DiscoveryArg::Static => Discovery::Static,
                    DiscoveryArg::Mdns => Discovery::Mdns,
                }),
                baseline: !no_baseline,
                keep_workdir,
                on_disk,
                stop: Arc::new(AtomicBool::new(false)),
                progress: true,
            };
            run_testbed(scenario, json, opts)
        }
    }
}

fn run_testbed(scenario: PathBuf, json: bool, opts: testbed::Options) -> ExitCode {
    let sc = match Scenario::load(&scenario) {
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
    match testbed::run(&sc, &opts) {
        Ok(out) => {
            if json {
                println!("{}", testbed::json(&out));
            } else {
                print!("{}", testbed::table(&out));
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
                testbed::Error::Prerequisite(_) => 3,
                testbed::Error::Interrupted => 130,
                testbed::Error::Failed(_) => 2,
            })
        }
    }
}

fn simulate(
    scenario: PathBuf,
    seed: Option<u64>,
    json: bool,
    svg: Option<PathBuf>,
    no_baseline: bool,
) -> ExitCode {
    let sc = match Scenario::load(&scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let seeds = seed.map_or_else(|| sc.seeds.clone(), |s| vec![s]);
    let mut results = Vec::new();
    for s in seeds {
        match run_seed(&sc, s, Options { no_baseline }) {
            Ok(r) => {
                if json {
                    println!("{}", report::json_line(&r));
                }
                results.push(r);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if !json {
        print!("{}", report::table(&results));
    }
    if let (Some(path), Some(first)) = (svg, results.first())
        && let Err(e) = std::fs::write(&path, report::svg(first))
    {
        eprintln!("error: cannot write the SVG to {} ({e})", path.display());
        return ExitCode::from(2);
    }
    if results.iter().all(|r| r.passed()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
