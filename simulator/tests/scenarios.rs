//! Runs every `scenarios/*.toml` on its seeds and checks its `[expect]`.

use bootswarm_sim::report;
use bootswarm_sim::run::{Options, run_seed};
use bootswarm_sim::scenario::Scenario;
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

fn check(name: &str) {
    check_with(name, Options::default());
}

fn check_with(name: &str, opts: Options) {
    let sc = Scenario::load(&dir().join(format!("{name}.toml"))).unwrap();
    let results: Vec<_> = sc
        .seeds
        .iter()
        .map(|&s| run_seed(&sc, s, opts).unwrap())
        .collect();
    let table = report::table(&results);
    println!("{table}");
    assert!(
        results.iter().all(|r| r.passed()),
        "scenario {name} failed its expectations:\n{table}"
    );
}

const SHIPPED: &[&str] = &[
    "storm-10",
    "storm-100",
    "storm-1000",
    "storm-10000",
    "storm-staggered",
    "racks",
    "racks-hidden",
    "racks-1g",
    "hub-outage-warm",
    "hub-outage-cold",
    "corrupt-peers",
    "churn",
    "single-node",
    "lan-8",
    "lan-16",
    "upgrade-1000",
    "upgrade-attacks",
    "lan-8-upgrade",
    "byzantine-200",
    "byzantine-200-sybil",
    "byzantine-200-withhold",
    "byzantine-200-trickle",
    "byzantine-200-hub-unreachable",
    "byzantine-200-replay",
    "byzantine-10-hub-unreachable",
];

#[test]
fn every_scenario_file_is_tested_and_valid() {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            Scenario::load(&p).unwrap();
            found.push(p.file_stem().unwrap().to_string_lossy().into_owned());
        }
    }
    for f in &found {
        assert!(
            SHIPPED.contains(&f.as_str()),
            "scenarios/{f}.toml has no test in tests/scenarios.rs"
        );
    }
}

macro_rules! scenario_tests {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(#[test]
        fn $test() {
            check($name);
        })*
    };
}

scenario_tests! {
    storm_10 => "storm-10",
    storm_100 => "storm-100",
    storm_1000 => "storm-1000",
    storm_staggered => "storm-staggered",
    racks => "racks",
    hub_outage_warm => "hub-outage-warm",
    hub_outage_cold => "hub-outage-cold",
    corrupt_peers => "corrupt-peers",
    churn => "churn",
    single_node => "single-node",
    upgrade_1000 => "upgrade-1000",
    upgrade_attacks => "upgrade-attacks",
    lan_8_upgrade => "lan-8-upgrade",
    lan_8 => "lan-8",
    lan_16 => "lan-16",
    byzantine_200 => "byzantine-200",
    byzantine_200_sybil => "byzantine-200-sybil",
    byzantine_200_withhold => "byzantine-200-withhold",
    byzantine_200_trickle => "byzantine-200-trickle",
    byzantine_200_hub_unreachable => "byzantine-200-hub-unreachable",
    byzantine_200_replay => "byzantine-200-replay",
    racks_hidden => "racks-hidden",
    byzantine_10_hub_unreachable => "byzantine-10-hub-unreachable",
}

/// The issue-13 targets for 1 Gbit racks behind 3:1 uplinks, not met yet (1.64 × T_min, hub
/// 1.014 × F, 5.0 × racks × F between racks): `cargo test --release -- --ignored`.
#[test]
#[ignore]
fn racks_1g() {
    check_with("racks-1g", Options { no_baseline: true });
}

/// Minutes of CPU and about 4 GiB: run it with `cargo test --release -- --ignored`.
#[test]
#[ignore]
fn storm_10000() {
    check_with("storm-10000", Options { no_baseline: true });
}
