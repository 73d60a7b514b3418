//! `bootswarm inspect`: a summary of a release, an flist or a block.

use std::path::{Path, PathBuf};

use bootswarm_protocol::block::{self, Cid, Codec, MAX_BLOCK_SIZE, check_cid, cid_of, parse_cid};
use bootswarm_protocol::manifest::{EntryKind, Flist};
use bootswarm_protocol::release::{SignedRelease, TrustRoot};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::fsutil::read_capped;
use crate::hub;
use crate::hub::client::HubClient;
use crate::keys::{read_trust, to_hex};
use crate::units::format_size;

/// Arguments of `bootswarm inspect`.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["channel", "cid", "file"])))]
pub struct InspectArgs {
    /// Hub URL to read from, e.g. `http://hub:8080`.
    #[arg(long, value_name = "URL", conflicts_with = "hub_dir")]
    pub hub: Option<String>,
    /// Hub directory to read from.
    #[arg(long, value_name = "DIR")]
    pub hub_dir: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Check a release's signatures against this trust file.
    #[arg(long, value_name = "FILE")]
    pub trust: Option<PathBuf>,
    /// Inspect the latest release of this channel.
    #[arg(long, value_name = "NAME")]
    pub channel: Option<String>,
    /// Inspect a local file holding a release, an flist or a block.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Inspect the block with this CID.
    #[arg(value_name = "CID")]
    pub cid: Option<String>,
}

enum Source {
    Dir(PathBuf),
    Url(String),
}

/// What was inspected.
#[derive(Debug)]
enum Object {
    Release { cid: Cid, signed: SignedRelease },
    Flist { cid: Cid, flist: Flist },
    Raw { cid: Cid, len: usize },
}

/// Runs `bootswarm inspect`.
pub fn run(args: InspectArgs) -> Result<()> {
    let trust = args.trust.as_deref().map(read_trust).transpose()?;
    let source = match (&args.hub, &args.hub_dir) {
        (Some(url), _) => Some(Source::Url(url.clone())),
        (None, Some(dir)) => Some(Source::Dir(dir.clone())),
        (None, None) => None,
    };
    let object = if let Some(path) = &args.file {
        from_file(path)?
    } else {
        let source = source.ok_or_else(|| {
            Error::new("inspecting a channel or a CID needs a hub; pass --hub URL or --hub-dir DIR")
        })?;
        if let Some(channel) = &args.channel {
            hub::check_channel_name(channel)?;
            release_from(&source, channel)?
        } else {
            let text = args.cid.as_deref().unwrap_or_default();
            let cid = parse_cid(text.trim()).map_err(|e| {
                Error::new(format!(
                    "'{}' is not a block CID ({e}); pass a CIDv1 such as the root printed by `bootswarm publish`",
                    text.escape_debug()
                ))
            })?;
            block_from(&source, &cid)?
        }
    };
    let verdict = match (&trust, &object) {
        (Some(trust), Object::Release { signed, .. }) => Some(check_signatures(trust, signed)),
        _ => None,
    };
    if args.json {
        let mut value = to_json(&object);
        if let Some(verdict) = &verdict {
            value["signatures_valid"] = json!(verdict.is_ok());
            if let Err(e) = verdict {
                value["signature_error"] = json!(e);
            }
        }
        let text = serde_json::to_string_pretty(&value)
            .map_err(|e| Error::new(format!("cannot encode JSON ({e})")))?;
        println!("{text}");
    } else {
        print!("{}", to_text(&object));
        match &verdict {
            Some(Ok(())) => println!("signatures  valid for the trust file"),
            Some(Err(e)) => println!("signatures  NOT valid: {e}"),
            None => {}
        }
    }
    match verdict {
        Some(Err(e)) => Err(Error::new(e)),
        _ => Ok(()),
    }
}

fn check_signatures(trust: &TrustRoot, signed: &SignedRelease) -> std::result::Result<(), String> {
    trust.verify(signed).map_err(|e| e.to_string())
}

fn release_from(source: &Source, channel: &str) -> Result<Object> {
    let bytes = match source {
        Source::Dir(dir) => {
            hub::check_hub_dir(dir)?;
            hub::read_latest(dir, channel)?.ok_or_else(|| {
                Error::new(format!(
                    "hub directory {} has no channel '{channel}'; check the channel name or publish to it first",
                    dir.display()
                ))
            })?
        }
        Source::Url(url) => {
            let client = HubClient::new(url)?;
            crate::task::runtime(crate::task::Runtime::Client)?
                .block_on(client.release(channel))?
                .1
        }
    };
    let signed = SignedRelease::decode(&bytes).map_err(|e| {
        Error::new(format!(
            "the latest release of channel '{channel}' cannot be read: {e}"
        ))
    })?;
    let (cid, _) = signed.to_block();
    Ok(Object::Release { cid, signed })
}

fn block_from(source: &Source, cid: &Cid) -> Result<Object> {
    let bytes = match source {
        Source::Dir(dir) => {
            hub::check_hub_dir(dir)?;
            let path = hub::block_path(dir, cid);
            read_capped(&path, MAX_BLOCK_SIZE).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Error::new(format!(
                        "hub directory {} has no block {cid}; check the CID",
                        dir.display()
                    ))
                } else {
                    Error::new(format!("cannot read block file {} ({e})", path.display()))
                }
            })?
        }
        Source::Url(url) => {
            let client = HubClient::new(url)?;
            crate::task::runtime(crate::task::Runtime::Client)?
                .block_on(client.block(cid, MAX_BLOCK_SIZE))?
        }
    };
    block::verify(cid, &bytes)
        .map_err(|e| Error::new(format!("{e}; the hub holds corrupt data")))?;
    match check_cid(cid) {
        Ok(Codec::Raw) => Ok(Object::Raw {
            cid: *cid,
            len: bytes.len(),
        }),
        _ => classify(*cid, &bytes).ok_or_else(|| {
            Error::new(format!(
                "block {cid} is DAG-CBOR but neither a release nor an flist"
            ))
        }),
    }
}

fn from_file(path: &Path) -> Result<Object> {
    let bytes = read_capped(path, MAX_BLOCK_SIZE).map_err(|e| {
        Error::new(format!(
            "cannot read {} ({e}); pass a release, flist or block file of at most 4 MiB",
            path.display()
        ))
    })?;
    let dag_cid = cid_of(Codec::DagCbor, &bytes);
    Ok(classify(dag_cid, &bytes).unwrap_or(Object::Raw {
        cid: cid_of(Codec::Raw, &bytes),
        len: bytes.len(),
    }))
}

fn classify(cid: Cid, bytes: &[u8]) -> Option<Object> {
    if let Ok(signed) = SignedRelease::decode(bytes) {
        return Some(Object::Release { cid, signed });
    }
    Flist::decode(bytes)
        .ok()
        .map(|flist| Object::Flist { cid, flist })
}

/// Formats unix seconds as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn kind_name(kind: &EntryKind) -> &'static str {
    match kind {
        EntryKind::File => "file",
        EntryKind::Dir => "dir",
        EntryKind::Symlink => "symlink",
    }
}

fn to_text(object: &Object) -> String {
    let mut out = String::new();
    match object {
        Object::Release { cid, signed } => {
            let r = &signed.release;
            out += &format!("release     {cid}\n");
            out += &format!("channel     {}\n", r.channel);
            out += &format!("seq         {}\n", r.seq);
            out += &format!("root        {}\n", r.root);
            out += &format!("issued      {} ({})\n", utc(r.issued_at), r.issued_at);
            out += &format!("expires     {} ({})\n", utc(r.expires_at), r.expires_at);
            out += &format!("signed by   {} key(s)\n", signed.signatures.len());
            for s in &signed.signatures {
                out += &format!("  ed25519 {}\n", to_hex(&s.key));
            }
        }
        Object::Flist { cid, flist } => {
            let count = |k: EntryKind| flist.entries.iter().filter(|e| e.kind == k).count();
            let chunks: usize = flist.entries.iter().map(|e| e.chunks.len()).sum();
            out += &format!("flist       {cid}\n");
            out += &format!("name        {}\n", flist.name);
            let version = if flist.version.is_empty() {
                "(none)"
            } else {
                &flist.version
            };
            out += &format!("version     {version}\n");
            out += &format!(
                "entries     {} ({} files, {} dirs, {} symlinks)\n",
                flist.entries.len(),
                count(EntryKind::File),
                count(EntryKind::Dir),
                count(EntryKind::Symlink)
            );
            out += &format!(
                "size        {} in {chunks} chunks\n",
                format_size(flist.total_size())
            );
            out += &format!("children    {}\n", flist.children.len());
            for c in &flist.children {
                out += &format!("  {}  {}\n", c.name, c.cid);
            }
        }
        Object::Raw { cid, len } => {
            out += &format!("block       {cid}\n");
            out += "codec       raw\n";
            out += &format!("size        {len} bytes\n");
        }
    }
    out
}

fn to_json(object: &Object) -> Value {
    match object {
        Object::Release { cid, signed } => {
            let r = &signed.release;
            json!({
                "type": "release",
                "cid": cid.to_string(),
                "channel": r.channel,
                "seq": r.seq,
                "root": r.root.to_string(),
                "issued_at": r.issued_at,
                "expires_at": r.expires_at,
                "signers": signed.signatures.iter().map(|s| to_hex(&s.key)).collect::<Vec<_>>(),
            })
        }
        Object::Flist { cid, flist } => json!({
            "type": "flist",
            "cid": cid.to_string(),
            "name": flist.name,
            "version": flist.version,
            "size": flist.total_size(),
            "entries": flist.entries.iter().map(|e| json!({
                "path": e.path,
                "kind": kind_name(&e.kind),
                "mode": e.mode,
                "size": e.size,
                "chunks": e.chunks.iter().map(|c| json!({"cid": c.cid.to_string(), "len": c.len})).collect::<Vec<_>>(),
                "target": e.target,
            })).collect::<Vec<_>>(),
            "children": flist.children.iter().map(|c| json!({"name": c.name, "cid": c.cid.to_string()})).collect::<Vec<_>>(),
        }),
        Object::Raw { cid, len } => json!({
            "type": "raw",
            "cid": cid.to_string(),
            "size": len,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_764_142_861), "2025-11-26 07:41:01 UTC");
    }
}
