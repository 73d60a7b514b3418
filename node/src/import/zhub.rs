//! Following a taglink of a Zero-OS hub (0-hub) the way Zero-OS bootstrap does:
//! `GET /api/flist/<user>/<name>/light` gives the taglink and its target `<user>/tags/<tag>`,
//! `GET /api/flist/<user>/tags/<tag>` the tag's packages (symlinks whose target is
//! `<user>/<flist>`, served at `/<user>/<flist>`). A new version is a new target string; an md5
//! change alone is not one (the md5 is only a cache key).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// Largest JSON answer read from the hub.
const MAX_JSON: usize = 1024 * 1024;
/// Most packages one tag may list.
const MAX_PACKAGES: usize = 1024;
/// Longest taglink or target string.
const MAX_NAME: usize = 512;

/// One entry of a 0-hub listing (`/light` or a tag).
#[derive(Debug, Clone, Deserialize)]
struct Entry {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    target: Option<String>,
}

/// A resolved taglink: its target and the packages (name, `.fl` URL) in the tag's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// `<user>/tags/<tag>`: the version.
    pub target: String,
    /// Package name and URL of its flist.
    pub packages: Vec<(String, String)>,
}

/// A path segment the hub's URLs can carry as is.
fn plain(part: &str) -> bool {
    !part.is_empty()
        && part != "."
        && part != ".."
        && part.len() <= MAX_NAME
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:+@".contains(c))
}

/// Splits `USER/NAME`.
pub fn parse_taglink(taglink: &str) -> Result<(&str, &str)> {
    match taglink.split_once('/') {
        Some((user, name)) if plain(user) && plain(name) => Ok((user, name)),
        _ => Err(Error::new(format!(
            "--taglink '{}' is not USER/NAME; give one like tf-zos/zos:production-3:latest.flist",
            taglink.escape_debug()
        ))),
    }
}

async fn get_json<T: serde::de::DeserializeOwned>(http: &reqwest::Client, url: &str) -> Result<T> {
    let failed = |why: String| Error::new(format!("the hub did not answer {url} ({why})"));
    let mut resp = http
        .get(url)
        .timeout(std::time::Duration::from_secs(60))
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(failed(format!("HTTP {}", resp.status())));
    }
    let mut body = Vec::new();
    while let Some(part) = resp.chunk().await.map_err(|e| failed(e.to_string()))? {
        if body.len() + part.len() > MAX_JSON {
            return Err(failed(format!("over {MAX_JSON} bytes")));
        }
        body.extend_from_slice(&part);
    }
    serde_json::from_slice(&body).map_err(|e| failed(format!("not the expected JSON: {e}")))
}

/// Resolves `taglink` on the hub at `hub`.
pub async fn resolve(http: &reqwest::Client, hub: &str, taglink: &str) -> Result<Resolved> {
    let hub = hub.trim_end_matches('/');
    let (user, name) = parse_taglink(taglink)?;
    let light: Entry = get_json(http, &format!("{hub}/api/flist/{user}/{name}/light")).await?;
    let target = light
        .target
        .filter(|_| light.kind == "taglink")
        .ok_or_else(|| {
            Error::new(format!(
                "{user}/{name} on {hub} is a {} flist, not a taglink; give a taglink to --taglink",
                light.kind.escape_debug()
            ))
        })?;
    let parts: Vec<&str> = target.split('/').collect();
    let (tuser, tag) = match parts[..] {
        [u, "tags", t] if plain(u) && plain(t) => (u, t),
        _ => {
            return Err(Error::new(format!(
                "taglink {user}/{name} on {hub} points to '{}', not USER/tags/TAG",
                target.escape_debug()
            )));
        }
    };
    let entries: Vec<Entry> =
        get_json(http, &format!("{hub}/api/flist/{tuser}/tags/{tag}")).await?;
    if entries.len() > MAX_PACKAGES {
        return Err(Error::new(format!(
            "tag {target} on {hub} lists {} packages, over the {MAX_PACKAGES} limit",
            entries.len()
        )));
    }
    let mut packages = Vec::with_capacity(entries.len());
    for e in entries {
        // Tags hold symlinks to `<user>/<flist>`; anything else is not a package.
        let Some(t) = e.target.filter(|_| e.kind != "regular") else {
            continue;
        };
        let ok = matches!(t.split_once('/'), Some((u, f)) if plain(u) && plain(f));
        if !ok || !plain(&e.name) {
            return Err(Error::new(format!(
                "tag {target} on {hub} has an entry '{}' -> '{}' that is not USER/FLIST",
                e.name.escape_debug(),
                t.escape_debug()
            )));
        }
        let stem = e
            .name
            .strip_suffix(".flist")
            .or_else(|| e.name.strip_suffix(".fl"))
            .unwrap_or(&e.name);
        packages.push((stem.to_string(), format!("{hub}/{t}")));
    }
    if packages.is_empty() {
        return Err(Error::new(format!(
            "tag {target} on {hub} lists no package"
        )));
    }
    Ok(Resolved { target, packages })
}

/// Where the importer remembers the last target it published for `channel`.
pub fn state_path(hub_dir: &Path, channel: &str) -> PathBuf {
    hub_dir.join("imports").join(format!("{channel}.taglink"))
}

/// The target last published for `channel`, if any.
pub fn last_target(hub_dir: &Path, channel: &str) -> Option<String> {
    crate::fsutil::read_capped(&state_path(hub_dir, channel), MAX_NAME)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .map(|s| s.trim().to_string())
}

/// Remembers `target` as published for `channel`.
pub fn remember(hub_dir: &Path, channel: &str, target: &str) -> Result<()> {
    let path = state_path(hub_dir, channel);
    let err = |e: std::io::Error| Error::new(format!("cannot write {} ({e})", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    crate::fsutil::write_atomic(&path, format!("{target}\n").as_bytes(), Some(0o644)).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taglinks_are_user_slash_name() {
        assert_eq!(
            parse_taglink("tf-zos/zos:production-3:latest.flist").unwrap(),
            ("tf-zos", "zos:production-3:latest.flist")
        );
        for bad in ["zos", "/x", "a/", "a/b/c", "../x", "a/..", "a b/c", "a/b?c"] {
            assert!(parse_taglink(bad).is_err(), "{bad}");
        }
    }
}
