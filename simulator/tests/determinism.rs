//! The same scenario and seed give the same trace hash; another seed gives another.

use bootswarm_sim::run::{Options, run_seed};
use bootswarm_sim::scenario::Scenario;

const SCENARIO: &str = r#"
[meta]
name = "determinism"
seeds = [7]

[topology]
nodes = 40
nic = "10Gbit"
hub_link = "1Gbit"
racks = 4
rack_uplink = "20Gbit"

[release]
packages = 5
size = "64MiB"

[[event]]
at = "0s"
kind = "seed"
nodes = 2

[[event]]
at = "0s"
kind = "boot"
nodes = "all"
spread = "2s"

[[fault]]
at = "1s"
kind = "crash"
nodes = 3
until = "3s"

[[fault]]
at = "0s"
kind = "corrupt"
nodes = 2

[[fault]]
at = "0s"
kind = "loss"
p = 0.01

[[fault]]
at = "500ms"
kind = "slow_nic"
nodes = 4
factor = 20.0
until = "4s"

[[fault]]
at = "1500ms"
kind = "partition"
nodes = "30..40"
until = "2500ms"

[[fault]]
at = "2s"
kind = "hub_outage"
until = "3s"
"#;

#[test]
fn same_seed_same_trace_hash() {
    let sc = Scenario::parse("determinism.toml", SCENARIO).unwrap();
    let opts = Options { no_baseline: true };
    let a = run_seed(&sc, 7, opts).unwrap();
    let b = run_seed(&sc, 7, opts).unwrap();
    assert!(
        a.events > 10_000,
        "too few events to mean anything: {}",
        a.events
    );
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.events, b.events);
    assert_eq!(a.all_booted_s, b.all_booted_s);
    assert_eq!(a.hub_egress_bytes, b.hub_egress_bytes);
    let c = run_seed(&sc, 8, opts).unwrap();
    assert_ne!(a.trace_hash, c.trace_hash);
}
