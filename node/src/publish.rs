//! `bootswarm publish`: package directories to chunks, child flists, a root flist and a signed
//! release in a hub directory.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bootswarm_protocol::block::{Cid, Codec, cid_of};
use bootswarm_protocol::chunker::{Chunker, MAX_CHUNK};
use bootswarm_protocol::manifest::{
    ChildRef, ChunkRef, Entry, EntryKind, Flist, MAX_ENTRIES, MAX_PACKAGE_NAME_LEN, MAX_PATH_LEN,
    check_package_name,
};
use bootswarm_protocol::release::{Release, SignedRelease};
use ed25519_dalek::SigningKey;

use std::io::IsTerminal;

use crate::error::{Error, Result};
use crate::fsutil::{fsync_dir, write_atomic, write_new_atomic};
use crate::hub;
use crate::keys;
use crate::progress::Progress;
use crate::units::{format_size, parse_duration};

/// Arguments of `bootswarm publish`.
#[derive(clap::Args, Debug)]
pub struct PublishArgs {
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
    /// Version string of the flists (default: empty, so unchanged packages keep their flist CIDs).
    #[arg(long, value_name = "V")]
    pub version: Option<String>,
    /// Package directories; each becomes a child flist named after the directory.
    #[arg(value_name = "PKGDIR", required = true)]
    pub packages: Vec<PathBuf>,
}

/// What to publish, besides the packages.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// Channel name.
    pub channel: String,
    /// Keys signing the release.
    pub keys: Vec<SigningKey>,
    /// Validity of the release in seconds.
    pub expires_in: u64,
    /// Version string of the flists (default: empty).
    pub version: Option<String>,
    /// Issue time, unix seconds.
    pub now: u64,
}

/// The outcome of a publish.
#[derive(Debug, Clone)]
pub struct Published {
    /// CID of the signed release encoding.
    pub release: Cid,
    /// Sequence number of the new release.
    pub seq: u64,
    /// Root flist CID.
    pub root: Cid,
    /// Bytes of all distinct blocks of the release (root, children, chunks): F.
    pub total_bytes: u64,
    /// Number of distinct blocks of the release.
    pub blocks: usize,
    /// Blocks that were not in the hub directory before.
    pub new_blocks: usize,
    /// Bytes of the new blocks.
    pub new_bytes: u64,
}

/// Runs `bootswarm publish`.
pub fn run(args: PublishArgs) -> Result<()> {
    let keys = args
        .keys
        .iter()
        .map(|p| keys::read_signing_key(p))
        .collect::<Result<Vec<_>>>()?;
    let opts = PublishOptions {
        channel: args.channel,
        keys,
        expires_in: parse_duration(&args.expires_in)?,
        version: args.version,
        now: crate::task::unix_now(),
    };
    let p = publish(&args.hub_dir, &args.packages, &opts)?;
    println!("published channel '{}' seq {}", opts.channel, p.seq);
    println!("release {}", p.release);
    println!("root    {}", p.root);
    println!(
        "size    {} in {} blocks ({} new blocks, {})",
        format_size(p.total_bytes),
        p.blocks,
        p.new_blocks,
        format_size(p.new_bytes)
    );
    Ok(())
}

/// One filesystem object of a package, found by the walk.
#[derive(Debug)]
struct Found {
    path: String,
    abs: PathBuf,
    kind: EntryKind,
    mode: u32,
    target: Option<String>,
}

/// Publishes `packages` into `hub_dir` as a new release of `opts.channel`.
///
/// Every input is checked (keys, channel, package trees) before the first block is written;
/// blocks are content-addressed and written atomically, and the release is written last, so a
/// failure never leaves a half-written file or a release pointing at missing blocks.
pub fn publish(hub_dir: &Path, packages: &[PathBuf], opts: &PublishOptions) -> Result<Published> {
    check_options(opts)?;
    if packages.is_empty() {
        return Err(Error::new(
            "no package directory given; pass at least one PKGDIR",
        ));
    }
    let mut names = HashSet::new();
    let mut trees = Vec::with_capacity(packages.len());
    for dir in packages {
        let name = package_name(dir)?;
        if !names.insert(name.clone()) {
            return Err(Error::new(format!(
                "two package directories are named '{name}'; each package needs a distinct directory name"
            )));
        }
        trees.push((name, dir, walk(dir)?));
    }
    let seq = next_seq(hub_dir, &opts.channel)?;
    let version = opts.version.clone().unwrap_or_default();

    let mut writer = BlockWriter::new(hub_dir)?;
    let total: u64 = trees
        .iter()
        .flat_map(|(_, _, found)| found)
        .filter(|f| f.kind == EntryKind::File)
        .filter_map(|f| fs::metadata(&f.abs).ok())
        .map(|m| m.len())
        .sum();
    writer.progress = Progress::new(std::io::stderr().is_terminal());
    writer.progress.publishing(total);
    let mut children = Vec::with_capacity(trees.len());
    for (name, dir, found) in trees {
        let mut entries = Vec::with_capacity(found.len());
        for f in found {
            let (size, chunks) = match f.kind {
                EntryKind::File => writer.write_file(&f.abs)?,
                _ => (0, Vec::new()),
            };
            entries.push(Entry {
                path: f.path,
                kind: f.kind,
                mode: f.mode,
                size,
                chunks,
                target: f.target,
            });
        }
        let mut flist = Flist {
            name: name.clone(),
            version: version.clone(),
            entries,
            children: Vec::new(),
            routes: Vec::new(),
        };
        flist.normalise();
        let (cid, bytes) = flist.to_block().map_err(|e| {
            Error::new(format!(
                "package {} cannot be described as a flist: {e}",
                dir.display()
            ))
        })?;
        writer.write_block(&cid, &bytes)?;
        children.push(ChildRef { name, cid });
    }
    writer.progress.finish();
    sign_release(hub_dir, &mut writer, children, version, seq, opts)
}

/// Writes the root flist over `children` and the release `seq` signed by `opts.keys` (last, so
/// a release never points at missing blocks), after the children are in `writer`.
pub(crate) fn sign_release(
    hub_dir: &Path,
    writer: &mut BlockWriter,
    children: Vec<ChildRef>,
    version: String,
    seq: u64,
    opts: &PublishOptions,
) -> Result<Published> {
    let mut root = Flist {
        name: opts.channel.clone(),
        version,
        entries: Vec::new(),
        children,
        routes: Vec::new(),
    };
    root.normalise();
    let (root_cid, root_bytes) = root
        .to_block()
        .map_err(|e| Error::new(format!("the root flist cannot be encoded: {e}")))?;
    writer.write_block(&root_cid, &root_bytes)?;

    let release = Release {
        channel: opts.channel.clone(),
        seq,
        root: root_cid,
        issued_at: opts.now,
        expires_at: opts.now.saturating_add(opts.expires_in),
    };
    let signed = SignedRelease::sign(release, &opts.keys);
    let (release_cid, release_bytes) = signed.to_block();
    write_release(hub_dir, &opts.channel, seq, &release_bytes)?;

    Ok(Published {
        release: release_cid,
        seq,
        root: root_cid,
        total_bytes: writer.total_bytes,
        blocks: writer.seen.len(),
        new_blocks: writer.new_blocks,
        new_bytes: writer.new_bytes,
    })
}

/// Checks the channel name and the keys (at least one, none twice).
pub(crate) fn check_options(opts: &PublishOptions) -> Result<()> {
    hub::check_channel_name(&opts.channel)?;
    if opts.keys.is_empty() {
        return Err(Error::new("no signing key given; pass --key FILE"));
    }
    let mut distinct = HashSet::new();
    if let Some(dup) = opts
        .keys
        .iter()
        .find(|k| !distinct.insert(k.verifying_key().to_bytes()))
    {
        return Err(Error::new(format!(
            "the signing key {} is given twice; pass each --key once",
            keys::to_hex(dup.verifying_key().as_bytes())
        )));
    }
    Ok(())
}

/// The seq the next release of `channel` in `hub_dir` gets.
pub(crate) fn next_seq(hub_dir: &Path, channel: &str) -> Result<u64> {
    current_seq(hub_dir, channel)?
        .checked_add(1)
        .ok_or_else(|| Error::new(format!("channel '{channel}' has reached the last seq")))
}

fn package_name(dir: &Path) -> Result<String> {
    let meta = fs::metadata(dir).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            Error::new(format!(
                "package directory {} does not exist; check the path",
                dir.display()
            ))
        } else {
            Error::new(format!(
                "package directory {} cannot be read ({e}); check its permissions",
                dir.display()
            ))
        }
    })?;
    if !meta.is_dir() {
        return Err(Error::new(format!(
            "package {} is not a directory; pass one directory per package",
            dir.display()
        )));
    }
    let canonical = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let name = canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    check_package_name(&name).map_err(|reason| {
        Error::new(format!(
            "package directory {} gives the package name '{}', which is refused because {reason}; rename the directory to letters, digits, '.', '_', '+' and '-' (starting with a letter or a digit, at most {MAX_PACKAGE_NAME_LEN} bytes)",
            dir.display().to_string().escape_debug(),
            name.escape_debug()
        ))
    })?;
    Ok(name)
}

/// Lists a package tree in a deterministic order, checking every name, kind and bound.
fn walk(root: &Path) -> Result<Vec<Found>> {
    let mut found = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let read_err = |e: io::Error| {
            Error::new(format!(
                "cannot read directory {} ({e}); check its permissions",
                dir.display()
            ))
        };
        let mut listing = fs::read_dir(&dir)
            .map_err(read_err)?
            .collect::<io::Result<Vec<_>>>()
            .map_err(read_err)?;
        listing.sort_by_key(|e| e.file_name());
        for item in listing {
            let abs = item.path();
            let name = item.file_name();
            let name = name.to_str().ok_or_else(|| {
                Error::new(format!(
                    "{} has a name that is not UTF-8; rename it",
                    abs.display()
                ))
            })?;
            let path = if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}/{name}")
            };
            if path.len() > MAX_PATH_LEN {
                return Err(Error::new(format!(
                    "path {} is longer than {MAX_PATH_LEN} bytes; shorten it",
                    abs.display()
                )));
            }
            if found.len() >= MAX_ENTRIES {
                return Err(Error::new(format!(
                    "package {} has more than {MAX_ENTRIES} entries; split it into several packages",
                    root.display()
                )));
            }
            let meta = fs::symlink_metadata(&abs).map_err(|e| {
                Error::new(format!(
                    "cannot read {} ({e}); check its permissions",
                    abs.display()
                ))
            })?;
            let ft = meta.file_type();
            let mode = meta.permissions().mode() & 0o7777;
            let (kind, target, mode) = if ft.is_symlink() {
                let target = fs::read_link(&abs).map_err(|e| {
                    Error::new(format!("cannot read symlink {} ({e})", abs.display()))
                })?;
                let target = target.into_os_string().into_string().map_err(|_| {
                    Error::new(format!(
                        "symlink {} points to a path that is not UTF-8; change its target",
                        abs.display()
                    ))
                })?;
                if target.is_empty() || target.len() > MAX_PATH_LEN || target.contains('\0') {
                    return Err(Error::new(format!(
                        "symlink {} has an unusable target; change it",
                        abs.display()
                    )));
                }
                (EntryKind::Symlink, Some(target), 0o777)
            } else if ft.is_dir() {
                stack.push((abs.clone(), path.clone()));
                (EntryKind::Dir, None, mode)
            } else if ft.is_file() {
                (EntryKind::File, None, mode)
            } else {
                let what = if ft.is_socket() {
                    "a socket"
                } else if ft.is_fifo() {
                    "a named pipe"
                } else if ft.is_block_device() || ft.is_char_device() {
                    "a device"
                } else {
                    "a special file"
                };
                return Err(Error::new(format!(
                    "{} is {what}, which cannot be published; remove it from the package",
                    abs.display()
                )));
            };
            found.push(Found {
                path,
                abs,
                kind,
                mode,
                target,
            });
        }
    }
    Ok(found)
}

fn current_seq(hub_dir: &Path, channel: &str) -> Result<u64> {
    match hub::read_latest(hub_dir, channel)? {
        None => Ok(0),
        Some(bytes) => {
            let signed = SignedRelease::decode(&bytes).map_err(|e| {
                Error::new(format!(
                    "the latest release of channel '{channel}' in {} cannot be read ({e}); \
                     restore it from its <seq>.release file before publishing",
                    hub_dir.display()
                ))
            })?;
            Ok(signed.release.seq)
        }
    }
}

fn write_release(hub_dir: &Path, channel: &str, seq: u64, bytes: &[u8]) -> Result<()> {
    let dir = hub::channel_dir(hub_dir, channel);
    let err = |path: &Path, e: io::Error| {
        Error::new(format!(
            "cannot write release file {} ({e}); check that the hub directory is writable",
            path.display()
        ))
    };
    fs::create_dir_all(&dir).map_err(|e| err(&dir, e))?;
    fsync_dir(&hub_dir.join(hub::CHANNELS_DIR)).map_err(|e| err(&dir, e))?;
    let history = hub::release_path(hub_dir, channel, seq);
    write_new_atomic(&history, bytes, Some(0o644)).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            Error::new(format!(
                "release {seq} of channel '{channel}' already exists in {}; another publish ran at \
                 the same time, run publish again",
                hub_dir.display()
            ))
        } else {
            err(&history, e)
        }
    })?;
    let latest = hub::latest_path(hub_dir, channel);
    write_atomic(&latest, bytes, Some(0o644)).map_err(|e| err(&latest, e))
}

/// Writes blocks into a hub directory, skipping those already there, and counts them.
#[derive(Debug)]
pub(crate) struct BlockWriter {
    hub_dir: PathBuf,
    chunker: Chunker,
    seen: HashSet<Cid>,
    total_bytes: u64,
    new_blocks: usize,
    new_bytes: u64,
    /// Shown while files are chunked.
    progress: Progress,
}

impl BlockWriter {
    pub(crate) fn new(hub_dir: &Path) -> Result<Self> {
        let blocks = hub_dir.join(hub::BLOCKS_DIR);
        fs::create_dir_all(&blocks).map_err(|e| {
            Error::new(format!(
                "cannot create the hub block directory {} ({e}); check the --hub-dir path and its permissions",
                blocks.display()
            ))
        })?;
        Ok(Self {
            hub_dir: hub_dir.to_path_buf(),
            chunker: Chunker::default(),
            seen: HashSet::new(),
            total_bytes: 0,
            new_blocks: 0,
            new_bytes: 0,
            progress: Progress::new(false),
        })
    }

    pub(crate) fn write_block(&mut self, cid: &Cid, bytes: &[u8]) -> Result<()> {
        if !self.seen.insert(*cid) {
            return Ok(());
        }
        self.total_bytes += bytes.len() as u64;
        let path = hub::block_path(&self.hub_dir, cid);
        if let Ok(meta) = fs::symlink_metadata(&path)
            && meta.is_file()
            && meta.len() == bytes.len() as u64
        {
            return Ok(());
        }
        write_atomic(&path, bytes, Some(0o644)).map_err(|e| {
            Error::new(format!(
                "cannot write block file {} ({e}); check free space and permissions of the hub directory",
                path.display()
            ))
        })?;
        self.new_blocks += 1;
        self.new_bytes += bytes.len() as u64;
        Ok(())
    }

    /// Chunks a file while reading it (at most two chunks in memory) and writes its chunks.
    fn write_file(&mut self, path: &Path) -> Result<(u64, Vec<ChunkRef>)> {
        let read_err = |e: io::Error| {
            Error::new(format!(
                "cannot read {} ({e}); check its permissions",
                path.display()
            ))
        };
        let mut file = File::open(path).map_err(read_err)?;
        let mut buf: Vec<u8> = Vec::with_capacity(MAX_CHUNK);
        let mut scratch = vec![0u8; MAX_CHUNK];
        let mut eof = false;
        let mut size = 0u64;
        let mut chunks = Vec::new();
        loop {
            while !eof && buf.len() < MAX_CHUNK {
                let want = MAX_CHUNK - buf.len();
                match file.read(&mut scratch[..want]) {
                    Ok(0) => eof = true,
                    Ok(n) => buf.extend_from_slice(&scratch[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(read_err(e)),
                }
            }
            if buf.is_empty() {
                break;
            }
            let mut n = self.chunker.cut(&buf, eof);
            if n == 0 || n > buf.len() {
                n = buf.len().min(MAX_CHUNK);
            }
            let chunk = &buf[..n];
            let cid = cid_of(Codec::Raw, chunk);
            let len = u32::try_from(n).unwrap_or(u32::MAX);
            self.write_block(&cid, chunk)?;
            chunks.push(ChunkRef {
                cid,
                len,
                key: None,
            });
            size += n as u64;
            self.progress.inc(n as u64);
            buf.drain(..n);
        }
        Ok((size, chunks))
    }
}
