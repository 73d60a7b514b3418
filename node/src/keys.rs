//! Key files: the publisher's secret key, its public key and a node's trust file.
//!
//! - secret key file: 64 hex characters and a newline, mode 0600;
//! - public key file (`FILE.pub`): `ed25519 <64 hex>` and a newline;
//! - trust file: any number of `ed25519 <hex>` lines and an optional `threshold N` line
//!   (default 1); `#` comments and blank lines are ignored.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use bootswarm_protocol::release::TrustRoot;
use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::error::{Error, Result};
use crate::fsutil::{read_capped, write_new_atomic};

const MAX_KEY_FILE: usize = 64 * 1024;

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 0xf)] as char);
    }
    s
}

/// Decodes exactly 32 bytes of hex (either case).
pub fn from_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// The public key file path for a secret key file: `FILE.pub`.
pub fn pub_path(secret: &Path) -> PathBuf {
    let mut s = OsString::from(secret.as_os_str());
    s.push(".pub");
    PathBuf::from(s)
}

/// The `ed25519 <hex>` line of a public key.
pub fn public_key_line(key: &VerifyingKey) -> String {
    format!("ed25519 {}", to_hex(key.as_bytes()))
}

fn read_text(path: &Path, what: &str) -> Result<String> {
    let bytes = read_capped(path, MAX_KEY_FILE).map_err(|e| {
        let hint = match e.kind() {
            io::ErrorKind::NotFound => "check the path, or create one with `bootswarm keygen`",
            io::ErrorKind::PermissionDenied => "check the file's permissions",
            _ => "check that it is a small text file",
        };
        Error::new(format!(
            "cannot read {what} {} ({e}); {hint}",
            path.display()
        ))
    })?;
    String::from_utf8(bytes).map_err(|_| {
        Error::new(format!(
            "{what} {} is not text; check the path",
            path.display()
        ))
    })
}

/// Reads a secret key file.
pub fn read_signing_key(path: &Path) -> Result<SigningKey> {
    let text = read_text(path, "key file")?;
    let secret = from_hex32(text.trim()).ok_or_else(|| {
        Error::new(format!(
            "key file {} does not hold a secret key (64 hex characters); pass the file written by \
             `bootswarm keygen --out`, not its .pub",
            path.display()
        ))
    })?;
    Ok(SigningKey::from_bytes(&secret))
}

fn parse_public(line: &str) -> Option<VerifyingKey> {
    let mut parts = line.split_whitespace();
    let (Some("ed25519"), Some(hex), None) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    VerifyingKey::from_bytes(&from_hex32(hex)?).ok()
}

/// Reads a public key file (`ed25519 <hex>`).
pub fn read_verifying_key(path: &Path) -> Result<VerifyingKey> {
    let text = read_text(path, "public key file")?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or("");
    parse_public(line).ok_or_else(|| {
        Error::new(format!(
            "public key file {} does not hold an `ed25519 <64 hex>` line; pass the .pub file written by `bootswarm keygen`",
            path.display()
        ))
    })
}

/// Reads a trust file into a [`TrustRoot`].
pub fn read_trust(path: &Path) -> Result<TrustRoot> {
    let text = read_text(path, "trust file")?;
    parse_trust(&text, path)
}

/// Parses the text of a trust file; `path` names it in errors.
pub fn parse_trust(text: &str, path: &Path) -> Result<TrustRoot> {
    let mut keys = Vec::new();
    let mut threshold = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = || {
            Error::new(format!(
                "trust file {} line {} is not `ed25519 <64 hex>` or `threshold N`; fix that line",
                path.display(),
                n + 1
            ))
        };
        if let Some(rest) = line.strip_prefix("threshold") {
            if threshold.is_some() {
                return Err(bad());
            }
            threshold = Some(rest.trim().parse::<usize>().map_err(|_| bad())?);
        } else {
            keys.push(parse_public(line).ok_or_else(bad)?);
        }
    }
    if keys.is_empty() {
        return Err(Error::new(format!(
            "trust file {} lists no `ed25519 <hex>` key; add the publisher's .pub line",
            path.display()
        )));
    }
    TrustRoot::new(keys, threshold.unwrap_or(1))
        .map_err(|e| Error::new(format!("trust file {}: {e}", path.display())))
}

/// Generates a key pair: the secret key into `out` (mode 0600), the public key into `out.pub`.
/// Refuses to overwrite either file; leaves neither behind on failure.
pub fn write_keypair(out: &Path) -> Result<VerifyingKey> {
    let public = pub_path(out);
    for path in [out, public.as_path()] {
        if path.symlink_metadata().is_ok() {
            return Err(Error::new(format!(
                "{} already exists; choose another --out or remove the old key first",
                path.display()
            )));
        }
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| {
        Error::new(format!(
            "cannot get random bytes from the operating system ({e}); try again"
        ))
    })?;
    let key = SigningKey::from_bytes(&secret);
    let write_err = |path: &Path, e: io::Error| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            Error::new(format!(
                "{} already exists; choose another --out or remove the old key first",
                path.display()
            ))
        } else {
            Error::new(format!(
                "cannot write key file {} ({e}); check that its directory exists and is writable",
                path.display()
            ))
        }
    };
    let secret_text = format!("{}\n", to_hex(&secret));
    write_new_atomic(out, secret_text.as_bytes(), Some(0o600)).map_err(|e| write_err(out, e))?;
    let public_text = format!("{}\n", public_key_line(&key.verifying_key()));
    if let Err(e) = write_new_atomic(&public, public_text.as_bytes(), Some(0o644)) {
        let _ = std::fs::remove_file(out);
        return Err(write_err(&public, e));
    }
    Ok(key.verifying_key())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i * 9) as u8);
        assert_eq!(from_hex32(&to_hex(&bytes)), Some(bytes));
        assert_eq!(from_hex32("zz"), None);
        assert_eq!(from_hex32(&"g".repeat(64)), None);
    }

    #[test]
    fn keypair_round_trip_and_trust() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("k");
        let public = write_keypair(&out).unwrap();
        assert_eq!(read_signing_key(&out).unwrap().verifying_key(), public);
        assert_eq!(read_verifying_key(&pub_path(&out)).unwrap(), public);
        let trust = read_trust(&pub_path(&out)).unwrap();
        assert_eq!(trust.keys(), &[public]);
        assert_eq!(trust.threshold(), 1);
        assert!(write_keypair(&out).is_err(), "refuses to overwrite");
        assert!(read_signing_key(&pub_path(&out)).is_err());
    }

    #[test]
    fn trust_file_rules() {
        let dir = tempfile::tempdir().unwrap();
        let a = SigningKey::from_bytes(&[1; 32]).verifying_key();
        let b = SigningKey::from_bytes(&[2; 32]).verifying_key();
        let path = dir.path().join("trust");
        let text = format!(
            "# farm keys\n{}\n\n{}  # second\nthreshold 2\n",
            public_key_line(&a),
            public_key_line(&b)
        );
        std::fs::write(&path, text).unwrap();
        let trust = read_trust(&path).unwrap();
        assert_eq!(trust.threshold(), 2);
        assert_eq!(trust.keys().len(), 2);
        std::fs::write(&path, format!("{}\nthreshold two\n", public_key_line(&a))).unwrap();
        let err = read_trust(&path).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        std::fs::write(&path, "# nothing\n").unwrap();
        assert!(read_trust(&path).is_err());
    }
}
