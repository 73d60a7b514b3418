//! Every target's body over its seeds, its committed corpus (`fuzz/corpus/<name>/`) and
//! inputs generated from both.

use std::path::Path;

use super::{TARGETS, Target, exercise};

/// Generated inputs per target: enough to reach past the seeds, few enough for a quick test.
fn generated(name: &str) -> usize {
    match name {
        "agent_sequence" => 1500,
        "follower_inputs" => 300,
        _ => 4000,
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "the test reads the committed corpus; the library itself does no I/O"
)]
fn corpus(name: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(name);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect()
}

fn run(target: &Target) {
    let mut inputs = (target.seeds)();
    assert!(!inputs.is_empty(), "{} has seeds", target.name);
    inputs.extend(corpus(target.name));
    exercise(target.name, &inputs, generated(target.name), target.body);
}

fn target(name: &str) -> &'static Target {
    TARGETS.iter().find(|t| t.name == name).expect("a target")
}

#[test]
fn cid_parse() {
    run(target("cid_parse"));
}

#[test]
fn flist_decode() {
    run(target("flist_decode"));
}

#[test]
fn message_decode() {
    run(target("message_decode"));
}

#[test]
fn release_decode() {
    run(target("release_decode"));
}

#[test]
fn agent_sequence() {
    run(target("agent_sequence"));
}

#[test]
fn follower_inputs() {
    run(target("follower_inputs"));
}

#[test]
fn every_target_has_a_corpus_directory_and_a_fuzz_target() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    for t in TARGETS {
        assert!(fuzz.join("corpus").join(t.name).is_dir(), "{}", t.name);
        let src = fuzz.join("fuzz_targets").join(format!("{}.rs", t.name));
        assert!(src.is_file(), "{}", src.display());
    }
}
