//! `bootswarm import`: rfs v2 flists (`.fl`) of the Zero-OS hub published as a signed release.
//! Each `.fl` becomes one package (named by the file's stem) whose chunks are its rfs blocks,
//! with its routes kept as the upstream of those blocks. No block is downloaded unless
//! `--verify` asks for every one to be fetched and checked.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bootswarm_protocol::block::rfs_block_cid;
use bootswarm_protocol::manifest::{ChildRef, MAX_NAME_LEN, MAX_RFS_CHUNK, stored_cap};
use futures_util::{StreamExt, stream};

pub mod zhub;

use crate::error::{Error, Result};
use crate::publish::{BlockWriter, PublishOptions, Published, check_options, next_seq};
use crate::rfs::flist::{self, Fl, MAX_FL_SIZE};
use crate::rfs::upstream::Upstreams;
use crate::tls::Tls;
use crate::units::{format_size, parse_duration};

/// Blocks fetched at once by `--verify`.
const VERIFY_CONCURRENCY: usize = 16;

/// Arguments of `bootswarm import`.
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// Hub directory to publish into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub hub_dir: PathBuf,
    /// Channel to publish on, e.g. `zos-prod`.
    #[arg(long, value_name = "NAME")]
    pub channel: String,
    /// Secret key file to sign with; repeat for several signatures.
    #[arg(long = "key", value_name = "FILE", required = true)]
    pub keys: Vec<PathBuf>,
    /// How long the release stays valid, e.g. `30d` or `12h`.
    #[arg(long, value_name = "DURATION", default_value = "30d")]
    pub expires_in: String,
    /// Version string of the flists (default: empty).
    #[arg(long, value_name = "V")]
    pub version: Option<String>,
    /// Fetch every block from its store and check it against its id and key before publishing.
    #[arg(long)]
    pub verify: bool,
    /// Store to fetch blocks from for --verify instead of the routes (repeatable).
    #[arg(long = "upstream", value_name = "URL")]
    pub upstreams: Vec<String>,
    /// PEM file of CA certificates trusted for https:// besides the platform's.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Follow a taglink of this Zero-OS hub instead of FL files, e.g. https://hub.grid.tf.
    #[arg(long, value_name = "URL", requires = "taglink", conflicts_with = "fls")]
    pub from_hub: Option<String>,
    /// The taglink to follow, USER/NAME, e.g. tf-zos/zos:production-3:latest.flist; a release
    /// is published when its target changes (an md5 change alone is not a new version).
    #[arg(long, value_name = "USER/NAME", requires = "from_hub")]
    pub taglink: Option<String>,
    /// Keep following the taglink, checking it every INTERVAL, e.g. 10m.
    #[arg(long, value_name = "INTERVAL", requires = "from_hub")]
    pub watch: Option<String>,
    /// rfs v2 flists (paths or http(s):// URLs) in boot order; each becomes a package.
    #[arg(value_name = "FL", required_unless_present = "from_hub")]
    pub fls: Vec<String>,
}

/// What to import, besides the flists.
#[derive(Debug)]
pub struct ImportOptions {
    /// Channel, keys, validity, version and time of the release.
    pub publish: PublishOptions,
    /// Fetch and check every block.
    pub verify: bool,
    /// `--upstream` stores for `--verify`.
    pub upstreams: Vec<String>,
    /// Roots for https://.
    pub tls: Tls,
}

/// The outcome of an import.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The release written.
    pub published: Published,
    /// Files, directories and symlinks over all packages.
    pub entries: usize,
    /// Distinct rfs blocks the release lists.
    pub blocks: usize,
    /// Stored bytes of those blocks (known only with `--verify`).
    pub verified_bytes: Option<u64>,
    /// Devices, pipes and sockets of the flists, which were left out.
    pub skipped: usize,
}

/// Runs `bootswarm import`.
pub fn run(args: ImportArgs) -> Result<()> {
    let keys = args
        .keys
        .iter()
        .map(|p| crate::keys::read_signing_key(p))
        .collect::<Result<Vec<_>>>()?;
    let opts = ImportOptions {
        publish: PublishOptions {
            channel: args.channel,
            keys,
            expires_in: parse_duration(&args.expires_in)?,
            version: args.version,
            now: crate::task::unix_now(),
        },
        verify: args.verify,
        upstreams: args.upstreams,
        tls: Tls::load(args.ca.as_deref())?,
    };
    let rt = crate::task::runtime(crate::task::Runtime::Server)?;
    if let (Some(hub), Some(taglink)) = (&args.from_hub, &args.taglink) {
        let every = args.watch.as_deref().map(parse_duration).transpose()?;
        return rt.block_on(follow(&args.hub_dir, hub, taglink, every, &opts));
    }
    let fls = named(&args.fls)?;
    let i = rt.block_on(import(&args.hub_dir, &fls, &opts))?;
    print_imported(&opts, &i);
    Ok(())
}

fn print_imported(opts: &ImportOptions, i: &Imported) {
    let p = &i.published;
    println!("imported channel '{}' seq {}", opts.publish.channel, p.seq);
    println!("release {}", p.release);
    println!("root    {}", p.root);
    let stored = i
        .verified_bytes
        .map_or_else(|| "unverified".to_string(), format_size);
    println!(
        "content {} entries, {} rfs blocks ({stored}){}",
        i.entries,
        i.blocks,
        if i.skipped > 0 {
            format!(", {} devices/pipes/sockets left out", i.skipped)
        } else {
            String::new()
        }
    );
}

/// Follows `taglink` on the 0-hub at `hub`: imports its target when it differs from the one
/// last imported into the channel; with `every`, checks again after each interval (a failed
/// check is reported and retried at the next one).
pub async fn follow(
    hub_dir: &Path,
    hub: &str,
    taglink: &str,
    every: Option<u64>,
    opts: &ImportOptions,
) -> Result<()> {
    zhub::parse_taglink(taglink)?;
    loop {
        match follow_once(hub_dir, hub, taglink, opts).await {
            Ok(Some(i)) => print_imported(opts, &i),
            Ok(None) => println!("taglink {taglink} unchanged"),
            Err(e) if every.is_some() => eprintln!("error: {e}"),
            Err(e) => return Err(e),
        }
        let Some(secs) = every else { return Ok(()) };
        tokio::time::sleep(std::time::Duration::from_secs(secs.max(1))).await;
    }
}

/// One check of the taglink: the import when its target is new, else `None`.
pub async fn follow_once(
    hub_dir: &Path,
    hub: &str,
    taglink: &str,
    opts: &ImportOptions,
) -> Result<Option<Imported>> {
    let http = client(opts)?;
    let resolved = zhub::resolve(&http, hub, taglink).await?;
    let channel = &opts.publish.channel;
    if zhub::last_target(hub_dir, channel).as_deref() == Some(resolved.target.as_str()) {
        return Ok(None);
    }
    let mut publish = opts.publish.clone();
    publish.now = crate::task::unix_now();
    if publish.version.is_none() {
        publish.version = Some(resolved.target.clone());
    }
    let opts = ImportOptions {
        publish,
        verify: opts.verify,
        upstreams: opts.upstreams.clone(),
        tls: opts.tls.clone(),
    };
    let imported = import(hub_dir, &resolved.packages, &opts).await?;
    zhub::remember(hub_dir, channel, &resolved.target)?;
    Ok(Some(imported))
}

fn client(opts: &ImportOptions) -> Result<reqwest::Client> {
    opts.tls
        .builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .no_proxy()
        .build()
        .map_err(|e| Error::new(format!("cannot set up an HTTP client ({e})")))
}

/// Each `.fl` path or URL with its package name (its file name without `.fl`).
pub fn named(fls: &[String]) -> Result<Vec<(String, String)>> {
    fls.iter()
        .map(|src| Ok((package_name(src)?, src.clone())))
        .collect()
}

/// Imports the `.fl` files or URLs `fls` (package name, source) into `hub_dir` as a new release
/// of the channel. Every flist is read (and with `verify` every block checked) before anything
/// is written.
pub async fn import(
    hub_dir: &Path,
    fls: &[(String, String)],
    opts: &ImportOptions,
) -> Result<Imported> {
    check_options(&opts.publish)?;
    if fls.is_empty() {
        return Err(Error::new("no flist given; pass at least one FL"));
    }
    let http = client(opts)?;
    let mut names = HashSet::new();
    let mut read = Vec::with_capacity(fls.len());
    for (name, src) in fls {
        let name = name.clone();
        if !names.insert(name.clone()) {
            return Err(Error::new(format!(
                "two flists are named '{name}'; each package needs a distinct file name"
            )));
        }
        read.push((name, src, load(src, hub_dir, &http).await?));
    }
    let upstreams = Arc::new(Upstreams::new(&opts.upstreams, &opts.tls)?);
    let mut known = HashMap::new();
    let mut verified_bytes = None;
    if opts.verify {
        let mut total = 0;
        for (_, src, fl) in &read {
            total += verify(&upstreams, src, fl, &mut known).await?;
        }
        verified_bytes = Some(total);
    }
    let version = opts.publish.version.clone().unwrap_or_default();
    let seq = next_seq(hub_dir, &opts.publish.channel)?;
    let (mut entries, mut skipped, mut blocks) = (0, 0, HashSet::new());
    let mut flists = Vec::with_capacity(read.len());
    for (name, src, fl) in &read {
        let flist = fl.to_flist(name, &version, &known).map_err(|why| {
            Error::new(format!(
                "{src} cannot be imported: {why}",
                src = redact_src(src)
            ))
        })?;
        let (cid, bytes) = flist.to_block().map_err(|e| {
            Error::new(format!(
                "{} cannot be described as a flist: {e}",
                redact_src(src)
            ))
        })?;
        entries += fl.entries.len();
        skipped += fl.skipped.len();
        blocks.extend(fl.blocks().into_iter().map(|b| b.id));
        flists.push((
            ChildRef {
                name: name.clone(),
                cid,
            },
            bytes,
        ));
    }
    let mut writer = BlockWriter::new(hub_dir)?;
    let mut children = Vec::with_capacity(flists.len());
    for (child, bytes) in flists {
        writer.write_block(&child.cid, &bytes)?;
        children.push(child);
    }
    let published =
        crate::publish::sign_release(hub_dir, &mut writer, children, version, seq, &opts.publish)?;
    Ok(Imported {
        published,
        entries,
        blocks: blocks.len(),
        verified_bytes,
        skipped,
    })
}

/// The package name of a `.fl` path or URL: its last segment without `.fl`.
fn package_name(src: &str) -> Result<String> {
    let last = src
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .rsplit('/')
        .next()
        .unwrap_or("");
    let stem = last.strip_suffix(".fl").unwrap_or(last);
    if stem.is_empty()
        || stem.len() > MAX_NAME_LEN
        || stem.starts_with('.')
        || stem.chars().any(char::is_control)
    {
        return Err(Error::new(format!(
            "{} has no usable package name (its file name without .fl, at most {MAX_NAME_LEN} bytes); rename it",
            redact_src(src)
        )));
    }
    Ok(stem.to_string())
}

fn is_url(src: &str) -> bool {
    src.starts_with("http://") || src.starts_with("https://")
}

fn redact_src(src: &str) -> String {
    if is_url(src) {
        crate::rfs::upstream::redact(src)
    } else {
        src.to_string()
    }
}

/// Reads a `.fl` from a path, or downloads it (at most [`MAX_FL_SIZE`] bytes) into a
/// temporary file in `hub_dir` first.
async fn load(src: &str, hub_dir: &Path, http: &reqwest::Client) -> Result<Fl> {
    if !is_url(src) {
        let path = PathBuf::from(src);
        return crate::task::blocking(move || flist::read(&path)).await;
    }
    let shown = redact_src(src);
    let failed = |why: String| Error::new(format!("cannot download {shown} ({why})"));
    let mut resp = http
        .get(src)
        .timeout(std::time::Duration::from_secs(300))
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(failed(format!("HTTP {}", resp.status())));
    }
    let mut bytes = Vec::new();
    while let Some(part) = resp.chunk().await.map_err(|e| failed(e.to_string()))? {
        if (bytes.len() + part.len()) as u64 > MAX_FL_SIZE {
            return Err(failed(format!("it is over the {MAX_FL_SIZE}-byte limit")));
        }
        bytes.extend_from_slice(&part);
    }
    std::fs::create_dir_all(hub_dir)
        .map_err(|e| Error::new(format!("cannot create {} ({e})", hub_dir.display())))?;
    let tmp = hub_dir.join(format!(".import-{}-{}.fl", std::process::id(), next_temp()));
    let read = tmp.clone();
    let result = std::fs::write(&tmp, &bytes)
        .map_err(|e| Error::new(format!("cannot write {} ({e})", tmp.display())));
    let result = match result {
        Ok(()) => crate::task::blocking(move || flist::read(&read)).await,
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_file(&tmp);
    result.map_err(|e| Error::new(format!("{shown}: {e}")))
}

fn next_temp() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Fetches every block of `fl` from its stores, checks it against its id and key and learns its
/// plaintext length. Returns the stored bytes fetched.
async fn verify(
    upstreams: &Arc<Upstreams>,
    src: &str,
    fl: &Fl,
    known: &mut HashMap<[u8; 32], u32>,
) -> Result<u64> {
    let blocks = fl.blocks();
    let mut file_of = HashMap::new();
    for e in &fl.entries {
        if let flist::FlKind::File { blocks, .. } = &e.kind {
            for b in blocks {
                file_of.entry(b.id).or_insert(e.path.as_str());
            }
        }
    }
    upstreams.learn_routes(&fl.routes, blocks.iter().map(|b| rfs_block_cid(b.id)));
    let cap = stored_cap(MAX_RFS_CHUNK) as usize;
    let mut results = stream::iter(blocks)
        .map(|b| {
            let upstreams = Arc::clone(upstreams);
            let file = file_of
                .get(&b.id)
                .copied()
                .unwrap_or("")
                .escape_debug()
                .to_string();
            async move {
                let cid = rfs_block_cid(b.id);
                let (block, from) = upstreams.fetch(&cid, cap).await.map_err(|e| {
                    format!(
                        "{} (block of '{file}')",
                        e.to_string().trim_end_matches('.')
                    )
                })?;
                let stored = block.bytes().len() as u64;
                let bytes = block.bytes().to_vec();
                let plain = crate::task::blocking_value(move || {
                    crate::rfs::block::decode_any(&b.key, &bytes).map(|p| p.len() as u32)
                })
                .await
                .ok_or_else(|| format!("rfs block {cid} of '{file}' could not be checked"))?
                .map_err(|e| {
                    format!("rfs block {cid} of '{file}' from {from} cannot be installed: {e}")
                })?;
                Ok::<_, String>((b.id, plain, stored))
            }
        })
        .buffer_unordered(VERIFY_CONCURRENCY);
    let mut total = 0;
    while let Some(r) = results.next().await {
        let (id, plain, stored) =
            r.map_err(|why| Error::new(format!("{} fails --verify: {why}", redact_src(src))))?;
        known.insert(id, plain);
        total += stored;
    }
    Ok(total)
}
