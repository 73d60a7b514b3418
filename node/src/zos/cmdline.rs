//! The kernel command line, read the way Zero-OS reads it: split like a shell (quotes and
//! backslashes), `key=value` or a bare `key`, repeated keys allowed and the last one wins.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// Where the running kernel's command line is.
pub const PROC_CMDLINE: &str = "/proc/cmdline";
/// Longest command line read (the kernel's own limit is a few KiB).
const MAX_CMDLINE: usize = 64 * 1024;

/// The parameters of a kernel command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmdline {
    params: BTreeMap<String, Vec<Option<String>>>,
}

impl Cmdline {
    /// Parses a command line; unbalanced quotes are one sentence.
    pub fn parse(text: &str) -> Result<Cmdline> {
        if text.len() > MAX_CMDLINE {
            return Err(Error::new(format!(
                "the kernel command line is {} bytes, more than {MAX_CMDLINE}; it was not read",
                text.len()
            )));
        }
        let words = shlex::split(text).ok_or_else(|| {
            Error::new("the kernel command line has an unbalanced quote; fix the boot entry")
        })?;
        let mut params: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
        for word in words {
            let (key, value) = match word.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (word, None),
            };
            if !key.is_empty() {
                params.entry(key).or_default().push(value);
            }
        }
        Ok(Cmdline { params })
    }

    /// Reads the running kernel's command line (an empty one if it cannot be read).
    pub fn current() -> Result<Cmdline> {
        match crate::fsutil::read_capped(std::path::Path::new(PROC_CMDLINE), MAX_CMDLINE) {
            Ok(bytes) => Cmdline::parse(&String::from_utf8_lossy(&bytes)),
            Err(_) => Ok(Cmdline::default()),
        }
    }

    /// Reads a command line from `path` (`--kernel-cmdline`); a file that cannot be read is one
    /// sentence.
    pub fn read(path: &std::path::Path) -> Result<Cmdline> {
        let bytes = crate::fsutil::read_capped(path, MAX_CMDLINE).map_err(|e| {
            Error::new(format!(
                "cannot read the kernel command line file {} ({e}); check --kernel-cmdline",
                path.display()
            ))
        })?;
        Cmdline::parse(&String::from_utf8_lossy(&bytes))
    }

    /// The value of `key`: its last occurrence with a value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .get(key)?
            .iter()
            .rev()
            .find_map(|v| v.as_deref())
    }

    /// Whether `key` appears at all (with or without a value).
    pub fn has(&self, key: &str) -> bool {
        self.params.contains_key(key)
    }

    /// Every value `key` was given, in order.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.params
            .get(key)
            .map(|v| v.iter().filter_map(|x| x.as_deref()).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_os_parameters_as_zero_os_reads_them() {
        let c = Cmdline::parse(
            "nomodeset version=v3light runmode=dev farmer_id=42 zos-debug bootswarm.peers=a,b",
        )
        .unwrap();
        let cases: &[(&str, Option<&str>, bool)] = &[
            ("nomodeset", None, true),
            ("version", Some("v3light"), true),
            ("runmode", Some("dev"), true),
            ("farmer_id", Some("42"), true),
            ("zos-debug", None, true),
            ("bootswarm.peers", Some("a,b"), true),
            ("bootswarm.hub", None, false),
        ];
        for (key, value, present) in cases {
            assert_eq!(c.get(key), *value, "{key}");
            assert_eq!(c.has(key), *present, "{key}");
        }
    }

    #[test]
    fn repeated_keys_last_wins_and_quotes_split_like_a_shell() {
        let c = Cmdline::parse(
            r#"runmode=prod runmode=test bootswarm.hub="http://hub 1" 'bootswarm.store=/mnt/a b' x=a\ b empty= flag"#,
        )
        .unwrap();
        assert_eq!(c.get("runmode"), Some("test"));
        assert_eq!(c.all("runmode"), ["prod", "test"]);
        assert_eq!(c.get("bootswarm.hub"), Some("http://hub 1"));
        assert_eq!(c.get("bootswarm.store"), Some("/mnt/a b"));
        assert_eq!(c.get("x"), Some("a b"));
        assert_eq!(c.get("empty"), Some(""));
        assert!(c.has("flag") && c.get("flag").is_none());
        // A bare key after a valued one keeps the value.
        let c = Cmdline::parse("farmer_id=7 farmer_id").unwrap();
        assert_eq!(c.get("farmer_id"), Some("7"));
    }

    #[test]
    fn unbalanced_quotes_and_huge_lines_are_one_sentence() {
        let e = Cmdline::parse("runmode=\"prod").unwrap_err().to_string();
        assert!(e.contains("unbalanced quote"), "{e}");
        let e = Cmdline::parse(&"x".repeat(MAX_CMDLINE + 1)).unwrap_err();
        assert!(e.to_string().contains("more than"), "{e}");
        assert_eq!(Cmdline::parse("").unwrap(), Cmdline::default());
    }
}
