//! Durable node state: the release high-water mark per channel and the installed release.
//!
//! Stored as `<store dir>/state.json`, always written with [`write_atomic`]. The high-water
//! mark must be saved before anything of the release it names is installed.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use bootswarm_protocol::block::{Cid, parse_cid};
use bootswarm_protocol::release::HighWater;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil::{read_capped, write_atomic};

/// File name of the state inside the store directory.
pub const STATE_FILE: &str = "state.json";
const MAX_STATE_SIZE: usize = 1024 * 1024;

/// The release installed into a target directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    /// Channel of the release.
    pub channel: String,
    /// Sequence number of the release.
    pub seq: u64,
    /// Root flist CID (string form).
    pub root: String,
    /// Directory the release was materialised into.
    pub target: PathBuf,
}

/// A release version kept on disk by the daemon (`TARGET/releases/<seq>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// Sequence number (the directory name).
    pub seq: u64,
    /// Root flist CID (string form).
    pub root: String,
}

/// An upgrade that was rolled back, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedUpgrade {
    /// Sequence number of the release that failed.
    pub seq: u64,
    /// Its root flist CID (string form).
    pub root: String,
    /// One sentence: which hook or check failed.
    pub reason: String,
    /// When, unix seconds.
    pub at: u64,
}

/// Durable node state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// Highest accepted release per channel.
    #[serde(with = "high_water_serde", default)]
    pub high_water: BTreeMap<String, HighWater>,
    /// The installed release, if any.
    #[serde(default)]
    pub installed: Option<Installed>,
    /// Versions kept under `TARGET/releases/` by the daemon, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<Version>,
    /// The last upgrade that was rolled back; that release is not installed again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<FailedUpgrade>,
}

impl NodeState {
    /// Path of the state file in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    /// Loads the state from `dir`; a missing file is the default (empty) state.
    pub fn load(dir: &Path) -> Result<NodeState> {
        let path = Self::path(dir);
        let bytes = match read_capped(&path, MAX_STATE_SIZE) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(NodeState::default()),
            Err(e) => {
                return Err(Error::new(format!(
                    "cannot read the node state file {} ({e}); check its permissions",
                    path.display()
                )));
            }
        };
        Self::parse(&bytes, &path)
    }

    /// Parses the bytes of a state file; `path` names it in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<NodeState> {
        serde_json::from_slice(bytes).map_err(|e| {
            Error::new(format!(
                "the node state file {} is corrupt ({e}); restore it, or remove it to start over \
                 (this forgets the release high-water mark)",
                path.display()
            ))
        })
    }

    /// The bytes [`save`](Self::save) writes.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::new(format!("cannot encode the node state ({e})")))?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Saves the state into `dir` durably (temp file, fsync, rename, fsync dir).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = Self::path(dir);
        let bytes = self.encode()?;
        write_atomic(&path, &bytes, Some(0o600)).map_err(|e| {
            Error::new(format!(
                "cannot write the node state file {} ({e}); check that the store directory exists and is writable",
                path.display()
            ))
        })
    }
}

mod high_water_serde {
    use super::*;
    use serde::{Deserializer, Serializer, de::Error as _};

    #[derive(Serialize, Deserialize)]
    struct Record {
        seq: u64,
        root: String,
    }

    pub(super) fn serialize<S: Serializer>(
        map: &BTreeMap<String, HighWater>,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        let records: BTreeMap<&String, Record> = map
            .iter()
            .map(|(k, hw)| {
                let record = Record {
                    seq: hw.seq,
                    root: hw.root.to_string(),
                };
                (k, record)
            })
            .collect();
        records.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<BTreeMap<String, HighWater>, D::Error> {
        let records = BTreeMap::<String, Record>::deserialize(d)?;
        records
            .into_iter()
            .map(|(k, r)| {
                let root: Cid = parse_cid(&r.root)
                    .map_err(|e| D::Error::custom(format!("bad root CID '{}': {e}", r.root)))?;
                Ok((k, HighWater { seq: r.seq, root }))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootswarm_protocol::block::{Codec, cid_of};

    #[test]
    fn missing_file_is_default_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(NodeState::load(dir.path()).unwrap(), NodeState::default());
        let mut state = NodeState::default();
        let root = cid_of(Codec::DagCbor, b"root");
        state
            .high_water
            .insert("zos-prod".into(), HighWater { seq: 7, root });
        state.installed = Some(Installed {
            channel: "zos-prod".into(),
            seq: 7,
            root: root.to_string(),
            target: "/tmp/x".into(),
        });
        state.save(dir.path()).unwrap();
        let text = std::fs::read_to_string(NodeState::path(dir.path())).unwrap();
        assert!(text.contains(&root.to_string()), "{text}");
        assert_eq!(NodeState::load(dir.path()).unwrap(), state);
    }

    #[test]
    fn corrupt_file_is_one_sentence() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(NodeState::path(dir.path()), b"{ nope").unwrap();
        let err = NodeState::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("is corrupt"), "{err}");
        std::fs::write(
            NodeState::path(dir.path()),
            br#"{"high_water":{"c":{"seq":1,"root":"not-a-cid"}}}"#,
        )
        .unwrap();
        assert!(NodeState::load(dir.path()).is_err());
    }
}
