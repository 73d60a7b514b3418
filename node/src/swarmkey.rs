//! The farm's swarm key: a pre-shared key in the IPFS/kubo `swarm.key` format (libp2p
//! private networks), so that a host without it cannot complete a connection to the farm.
//!
//! The file has three lines: `/key/swarm/psk/1.0.0/`, `/base16/` and 64 hex characters.

use std::io;
use std::path::Path;

use libp2p::pnet::PreSharedKey;

use crate::error::{Error, Result};
use crate::fsutil::{read_capped, write_new_atomic};
use crate::keys::{from_hex32, to_hex};

/// First line of a swarm key file.
const HEADER: &str = "/key/swarm/psk/1.0.0/";
/// Second line: the only encoding supported.
const ENCODING: &str = "/base16/";
/// Longest swarm key file read.
const MAX_FILE: usize = 4096;

/// Why a swarm key file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwarmKeyError {
    /// The first line is not the pnet key type.
    #[error("does not start with the line {HEADER}")]
    Header,
    /// The second line is not `/base16/`.
    #[error("does not give the encoding /base16/ on its second line")]
    Encoding,
    /// The key line does not have 64 characters.
    #[error("holds a key of {0} characters instead of 64 hex characters")]
    Length(usize),
    /// The key line holds a character that is not hex.
    #[error("holds a key with characters that are not hex")]
    NotHex,
    /// Something follows the key line.
    #[error("has more than three lines")]
    Trailing,
}

/// Parses the text of a swarm key file into the key's 32 bytes.
pub fn parse(text: &str) -> std::result::Result<[u8; 32], SwarmKeyError> {
    let mut lines = text.lines().map(str::trim_end);
    if lines.next() != Some(HEADER) {
        return Err(SwarmKeyError::Header);
    }
    if lines.next() != Some(ENCODING) {
        return Err(SwarmKeyError::Encoding);
    }
    let key = lines.next().unwrap_or("");
    if lines.any(|l| !l.is_empty()) {
        return Err(SwarmKeyError::Trailing);
    }
    if key.len() != 64 {
        return Err(SwarmKeyError::Length(key.chars().count()));
    }
    from_hex32(key).ok_or(SwarmKeyError::NotHex)
}

/// The text of a swarm key file holding `key`.
fn format(key: &[u8; 32]) -> String {
    format!("{HEADER}\n{ENCODING}\n{}\n", to_hex(key))
}

/// Reads the swarm key file at `path`; every problem is one sentence.
pub fn read(path: &Path) -> Result<PreSharedKey> {
    let bytes = read_capped(path, MAX_FILE).map_err(|e| {
        Error::new(format!(
            "cannot read the swarm key file {} ({e}); check --swarm-key, or create one with `bootswarm keygen --swarm-key FILE`",
            path.display()
        ))
    })?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Error::new(format!(
            "swarm key file {} is not text; check --swarm-key",
            path.display()
        ))
    })?;
    let key = parse(&text).map_err(|e| {
        Error::new(format!(
            "swarm key file {} {e}; copy the farm's swarm.key or create one with `bootswarm keygen --swarm-key FILE`",
            path.display()
        ))
    })?;
    Ok(PreSharedKey::new(key))
}

/// Writes a new random swarm key to `path` (mode 0600), refusing to replace a file.
pub fn generate(path: &Path) -> Result<()> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| {
        Error::new(format!(
            "cannot get random bytes from the operating system ({e}); try again"
        ))
    })?;
    write_new_atomic(path, format(&key).as_bytes(), Some(0o600)).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            Error::new(format!(
                "{} already exists; every node of a farm needs the same key, so copy that file instead of replacing it",
                path.display()
            ))
        } else {
            Error::new(format!(
                "cannot write the swarm key file {} ({e}); check that its directory exists and is writable",
                path.display()
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const HEX: &str = "6189c5cf0b87fb800c1a9feeda73c6ab5e998db48fb9e6a978575c770ceef683";

    #[test]
    fn a_kubo_key_file_parses() {
        let text = format!("{HEADER}\n{ENCODING}\n{HEX}\n");
        let key = parse(&text).unwrap();
        assert_eq!(to_hex(&key), HEX);
        assert_eq!(format(&key), text);
        // libp2p reads the same file to the same key.
        let theirs: PreSharedKey = text.parse().unwrap();
        assert_eq!(
            theirs.fingerprint().to_string(),
            PreSharedKey::new(key).fingerprint().to_string()
        );
        assert!(parse(&format!("{HEADER}\r\n{ENCODING}\r\n{HEX}")).is_ok());
    }

    #[test]
    fn bad_files_are_one_sentence_each() {
        let cases = [
            (
                format!("/key/swarm/psk/2.0.0/\n{ENCODING}\n{HEX}\n"),
                "does not start with the line",
            ),
            (format!("{HEADER}\n/base64/\n{HEX}\n"), "/base16/"),
            (
                format!("{HEADER}\n{ENCODING}\n{}\n", &HEX[..40]),
                "40 characters instead of 64",
            ),
            (
                format!("{HEADER}\n{ENCODING}\n{}zz\n", &HEX[..62]),
                "not hex",
            ),
            (
                format!("{HEADER}\n{ENCODING}\n{HEX}\nmore\n"),
                "more than three lines",
            ),
            (String::new(), "does not start with the line"),
        ];
        let dir = tempfile::tempdir().unwrap();
        for (i, (text, needle)) in cases.iter().enumerate() {
            let path = dir.path().join(format!("k{i}"));
            std::fs::write(&path, text).unwrap();
            let err = read(&path).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert_eq!(err.matches("; ").count(), 1, "one sentence: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
        let err = read(&dir.path().join("missing")).unwrap_err().to_string();
        assert!(err.contains("cannot read the swarm key file"), "{err}");
    }

    #[test]
    fn generate_writes_a_private_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("swarm.key");
        generate(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let first = std::fs::read(&path).unwrap();
        read(&path).unwrap();
        let err = generate(&path).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), first, "not replaced");
    }
}
