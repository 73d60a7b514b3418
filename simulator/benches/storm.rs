//! Runs a storm once and prints the wall time (a measurement, not a timed test).
//!
//! `cargo bench -p bootswarm-sim --bench storm` runs storm-1000; `-- storm-10000` another
//! scenario of `scenarios/`, `-- --baseline` includes the hub-only run. Peak memory:
//! `/usr/bin/time -v target/release/bootswarm-sim run scenarios/storm-10000.toml --no-baseline`.

use bootswarm_sim::run::{Options, run_seed};
use bootswarm_sim::scenario::Scenario;
use std::path::Path;

fn main() {
    let with_baseline = std::env::args().any(|a| a == "--baseline");
    let name = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_else(|| "storm-1000".into());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../scenarios/{name}.toml"));
    let sc = match Scenario::load(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let seed = sc.seeds.first().copied().unwrap_or(1);
    match run_seed(
        &sc,
        seed,
        Options {
            no_baseline: !with_baseline,
        },
    ) {
        Ok(r) => println!(
            "{name} seed {seed}: swarm run {:.2} s wall ({} events, {} re-solves), total {:.2} s wall; \
             all booted at {:.3} s simulated = {:.3} x T_min",
            r.swarm_wall_s,
            r.events,
            r.solves,
            r.wall_s,
            r.all_booted_s.unwrap_or(f64::NAN),
            r.time_vs_tmin.unwrap_or(f64::NAN)
        ),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}
