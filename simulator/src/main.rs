//! `bootswarm-sim`: run scenarios in the deterministic network simulator, or with real
//! processes in network namespaces (`testbed`).

use bootswarm_sim::report;
use bootswarm_sim::run::{Options, run_seed};
use bootswarm_sim::scenario::Scenario;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

mod testbed;

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
    Testbed(testbed::Args),
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
        Cmd::Testbed(args) => testbed::run(args),
    }
}

/// The process's peak resident memory so far (`VmHWM` of /proc/self/status), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib as f64 / 1024.0)
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
            Ok(mut r) => {
                r.peak_rss_mib = peak_rss_mib();
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
