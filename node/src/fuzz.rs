//! The bodies of the node's fuzz targets, `fuzz/fuzz_targets/{trust_file,state_file}.rs`: the
//! trust file and state file parsers. See `bootswarm_protocol::fuzz` for how they run.
//!
//! Compiled for this crate's tests and with the `fuzzing` feature only.

use std::path::Path;

use bootswarm_protocol::block::{Codec, cid_of};
use bootswarm_protocol::release::HighWater;
use ed25519_dalek::SigningKey;

use crate::keys::{parse_trust, public_key_line};
use crate::state::{FailedUpgrade, Installed, NodeState, Version};

/// A trust file: what parses has keys and a threshold between 1 and their number, and
/// written back out it parses to the same trust root.
pub fn trust_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("trust");
    let Ok(trust) = parse_trust(text, path) else {
        return;
    };
    let (keys, threshold) = (trust.keys(), trust.threshold());
    assert!(!keys.is_empty() && (1..=keys.len()).contains(&threshold));
    let mut out = String::new();
    for key in keys {
        out.push_str(&public_key_line(key));
        out.push('\n');
    }
    out.push_str(&format!("threshold {threshold}\n"));
    let again = parse_trust(&out, path).expect("a trust root written out parses");
    assert_eq!((again.keys(), again.threshold()), (keys, threshold));
}

/// A state file: what parses encodes, and the encoding parses to the same state.
pub fn state_file(data: &[u8]) {
    let path = Path::new("state.json");
    let Ok(state) = NodeState::parse(data, path) else {
        return;
    };
    let bytes = state.encode().expect("a parsed state encodes");
    let again = NodeState::parse(&bytes, path).expect("a saved state parses");
    assert_eq!(again, state);
}

/// Trust files: one key, two with a threshold and comments, a bad line.
pub fn trust_file_seeds() -> Vec<Vec<u8>> {
    let line = |n: u8| public_key_line(&SigningKey::from_bytes(&[n; 32]).verifying_key());
    vec![
        format!("{}\n", line(1)),
        format!(
            "# farm keys\n{}\n\n{}  # second\nthreshold 2\n",
            line(1),
            line(2)
        ),
        format!("{}\nthreshold two\n", line(3)),
        format!("{}\n{}\nthreshold 1\n", line(1), line(1)),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

/// State files: empty, and one with every field.
pub fn state_file_seeds() -> Vec<Vec<u8>> {
    let root = cid_of(Codec::DagCbor, b"root");
    let mut full = NodeState::default();
    full.high_water
        .insert("zos-prod".into(), HighWater { seq: 7, root });
    full.installed = Some(Installed {
        channel: "zos-prod".into(),
        seq: 7,
        root: root.to_string(),
        target: "/var/lib/zos".into(),
    });
    full.versions = vec![Version {
        seq: 6,
        root: root.to_string(),
    }];
    full.failed = Some(FailedUpgrade {
        seq: 8,
        root: root.to_string(),
        reason: "the health check failed".into(),
        at: 1_700_000_000,
    });
    [NodeState::default(), full]
        .iter()
        .map(|s| s.encode().expect("a state encodes"))
        .chain([br#"{"high_water":{"c":{"seq":1,"root":"not-a-cid"}}}"#.to_vec()])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootswarm_protocol::fuzz::exercise;

    /// The committed corpus of a target, `fuzz/corpus/<name>/`.
    fn corpus(name: &str) -> Vec<Vec<u8>> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus")
            .join(name);
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        paths.sort();
        paths
            .iter()
            .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
            .collect()
    }

    #[test]
    fn trust_file_over_seeds_corpus_and_generated_inputs() {
        let mut inputs = trust_file_seeds();
        inputs.extend(corpus("trust_file"));
        exercise("trust_file", &inputs, 3000, trust_file);
    }

    #[test]
    fn state_file_over_seeds_corpus_and_generated_inputs() {
        let mut inputs = state_file_seeds();
        inputs.extend(corpus("state_file"));
        exercise("state_file", &inputs, 3000, state_file);
    }

    #[test]
    fn the_seeds_parse_where_they_should() {
        let path = Path::new("t");
        let parsed: Vec<bool> = trust_file_seeds()
            .iter()
            .map(|s| parse_trust(std::str::from_utf8(s).unwrap(), path).is_ok())
            .collect();
        assert_eq!(parsed, [true, true, false, true]);
        let parsed: Vec<bool> = state_file_seeds()
            .iter()
            .map(|s| NodeState::parse(s, path).is_ok())
            .collect();
        assert_eq!(parsed, [true, true, false]);
    }
}
