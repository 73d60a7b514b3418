//! Runs storm-1000 once and prints the wall time (a measurement, not a timed test).
//!
//! `cargo bench -p bootswarm-sim --bench storm` (add `-- --baseline` to include the hub-only run).

use bootswarm_sim::run::{Options, run_seed};
use bootswarm_sim::scenario::Scenario;
use std::path::Path;

fn main() {
    let with_baseline = std::env::args().any(|a| a == "--baseline");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/storm-1000.toml");
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
            "storm-1000 seed {seed}: swarm run {:.2} s wall ({} events, {} re-solves), total {:.2} s wall; \
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
