//! Where `bootswarm run` takes its settings from, so that a Zero-OS node needs no flags:
//! a flag, else its `BOOTSWARM_*` environment variable (both through clap), else the config
//! file (TOML, `--config`, default [`DEFAULT_CONFIG`] when it exists), else the kernel
//! command line ([`crate::zos::cmdline`]), else a default.
//!
//! Kernel parameters read: `runmode` (→ channel, as Zero-OS's bootstrap picks its taglink),
//! `version=v3light`, `farmer_id` (→ farm scope), `zos-debug` (→ debug log) and the namespaced
//! `bootswarm.hub`, `bootswarm.channel`, `bootswarm.trust`, `bootswarm.peers` (comma
//! separated), `bootswarm.store`, `bootswarm.farm`, `bootswarm.rack`, `bootswarm.rack_subnet`,
//! `bootswarm.hub_window`, `bootswarm.store_quota`,
//! `bootswarm.upload_rate` and `bootswarm.off`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::daemon::RunArgs;
use crate::error::{Error, Result};
use crate::zos::cmdline::Cmdline;

/// The config file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG: &str = "/etc/bootswarm/config.toml";
/// Where Zero-OS mounts the node's cache disk.
pub const CACHE_MOUNT: &str = "/var/cache";
/// The store on the cache disk.
const CACHE_STORE: &str = "/var/cache/bootswarm";
/// The store when no cache disk is mounted (a tmpfs on Linux, so in memory).
const MEMORY_STORE: &str = "/run/bootswarm/store";
/// Longest config file read.
const MAX_CONFIG: usize = 64 * 1024;
/// Most peers taken from the kernel command line or the config file.
const MAX_PEERS: usize = 64;

/// The config file: every key optional, unknown keys refused.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Base URL of the hub.
    pub hub: Option<String>,
    /// Channel followed.
    pub channel: Option<String>,
    /// Trust file.
    pub trust: Option<PathBuf>,
    /// Store directory.
    pub store: Option<PathBuf>,
    /// Install directory.
    pub into: Option<PathBuf>,
    /// Peers to dial.
    #[serde(default)]
    pub peers: Vec<String>,
    /// Listen address.
    pub listen: Option<String>,
    /// Farm scope.
    pub farm: Option<String>,
    /// Rack label.
    pub rack: Option<String>,
    /// Rack from the subnet of this prefix length.
    pub rack_subnet: Option<u8>,
    /// Hub window size.
    pub hub_window: Option<String>,
    /// Swarm key file.
    pub swarm_key: Option<PathBuf>,
    /// Local HTTP address.
    pub http: Option<String>,
    /// Change hook.
    pub on_change: Option<String>,
    /// Health check.
    pub health_check: Option<String>,
    /// Poll interval.
    pub poll_interval: Option<String>,
    /// Store quota.
    pub store_quota: Option<String>,
    /// Upload rate limit.
    pub upload_rate: Option<String>,
    /// Most peers served at once.
    pub max_upload_peers: Option<usize>,
    /// Debug logging.
    #[serde(default)]
    pub debug: bool,
}

impl ConfigFile {
    /// Parses a config file's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<ConfigFile> {
        toml::from_str(text).map_err(|e| {
            Error::new(format!(
                "config file {} is not valid: {}; fix it or give another with --config",
                origin.display(),
                e.message()
            ))
        })
    }

    /// Reads `--config`, or [`DEFAULT_CONFIG`] if that exists, or nothing.
    pub fn load(path: Option<&Path>) -> Result<ConfigFile> {
        let (path, required) = match path {
            Some(p) => (p, true),
            None => (Path::new(DEFAULT_CONFIG), false),
        };
        match crate::fsutil::read_capped(path, MAX_CONFIG) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes).map_err(|_| {
                    Error::new(format!(
                        "config file {} is not UTF-8 text; fix it or give another with --config",
                        path.display()
                    ))
                })?;
                ConfigFile::parse(&text, path)
            }
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                Ok(ConfigFile::default())
            }
            Err(e) => Err(Error::new(format!(
                "cannot read the config file {} ({e}); check --config",
                path.display()
            ))),
        }
    }
}

/// `bootswarm run`'s arguments with every layer applied.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The arguments, hub, channel, trust and store filled in.
    pub args: RunArgs,
    /// `bootswarm.off` was on the kernel command line.
    pub off: bool,
    /// Debug logging was asked for (`zos-debug`, `debug = true`).
    pub debug: bool,
    /// Sentences to log once the log is set up (where the store went).
    pub notes: Vec<Note>,
}

/// A sentence for the log, with its level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// Worth knowing.
    Info(String),
    /// Worth acting on.
    Warn(String),
}

/// The channel Zero-OS's bootstrap follows for a `runmode` (and `version=v3light`).
pub fn channel_for_runmode(runmode: &str, version: Option<&str>) -> String {
    let base = match runmode {
        "prod" => "production",
        "dev" => "development",
        "test" => "testing",
        other => other,
    };
    match version {
        Some("v3light") => format!("{base}-v3light"),
        _ => base.to_string(),
    }
}

/// Whether `mountinfo` (the text of `/proc/self/mountinfo`) has a mount at `point`.
pub fn is_mount_point(mountinfo: &str, point: &str) -> bool {
    mountinfo
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(point))
}

/// Applies the config file and the kernel command line under what clap gave (flags and
/// environment); `mountinfo` decides the store's default.
pub fn resolve(
    mut args: RunArgs,
    config: &ConfigFile,
    cmdline: &Cmdline,
    mountinfo: &str,
) -> Result<Resolved> {
    let kernel = |key: &str| cmdline.get(&format!("bootswarm.{key}")).map(str::to_string);
    fill(&mut args.hub, config.hub.clone(), kernel("hub"));
    let runmode = cmdline
        .get("runmode")
        .map(|m| channel_for_runmode(m, cmdline.get("version")));
    fill(
        &mut args.channel,
        config.channel.clone(),
        kernel("channel").or(runmode),
    );
    fill(
        &mut args.trust,
        config.trust.clone(),
        kernel("trust").map(PathBuf::from),
    );
    fill(&mut args.into, config.into.clone(), None);
    fill(
        &mut args.swarm.farm,
        config.farm.clone(),
        kernel("farm").or_else(|| cmdline.get("farmer_id").map(str::to_string)),
    );
    fill(&mut args.swarm.rack, config.rack.clone(), kernel("rack"));
    fill(
        &mut args.swarm.rack_subnet,
        config.rack_subnet,
        kernel("rack_subnet").and_then(|b| b.parse().ok()),
    );
    fill(
        &mut args.swarm.hub_window,
        config.hub_window.clone(),
        kernel("hub_window"),
    );
    fill(&mut args.swarm.swarm_key, config.swarm_key.clone(), None);
    fill(&mut args.swarm.listen, config.listen.clone(), None);
    fill(&mut args.http, config.http.clone(), None);
    fill(&mut args.on_change, config.on_change.clone(), None);
    fill(&mut args.health_check, config.health_check.clone(), None);
    fill(&mut args.poll_interval, config.poll_interval.clone(), None);
    fill(
        &mut args.store_quota,
        config.store_quota.clone(),
        kernel("store_quota"),
    );
    fill(
        &mut args.upload_rate,
        config.upload_rate.clone(),
        kernel("upload_rate"),
    );
    fill(&mut args.max_upload_peers, config.max_upload_peers, None);
    if args.swarm.peers.is_empty() {
        args.swarm.peers = if !config.peers.is_empty() {
            config.peers.clone()
        } else {
            kernel("peers")
                .map(|p| {
                    p.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
    }
    if args.swarm.peers.len() > MAX_PEERS {
        return Err(Error::new(format!(
            "{} peers were given, more than {MAX_PEERS}; give the nearest ones",
            args.swarm.peers.len()
        )));
    }
    let mut notes = Vec::new();
    fill(
        &mut args.store,
        config.store.clone(),
        kernel("store").map(PathBuf::from),
    );
    if args.store.is_none() {
        let (store, note) = if is_mount_point(mountinfo, CACHE_MOUNT) {
            (
                CACHE_STORE,
                Note::Info(format!("the store is on the cache disk at {CACHE_STORE}")),
            )
        } else {
            (
                MEMORY_STORE,
                Note::Warn(format!(
                    "no cache disk is mounted at {CACHE_MOUNT}, so the store is kept in memory at {MEMORY_STORE} and is lost at power-off"
                )),
            )
        };
        args.store = Some(PathBuf::from(store));
        notes.push(note);
    }
    Ok(Resolved {
        args,
        off: cmdline.has("bootswarm.off"),
        debug: cmdline.has("zos-debug") || config.debug,
        notes,
    })
}

/// The error for a setting no layer gave.
pub(crate) fn unset(name: &str) -> Error {
    Error::new(format!(
        "no {name} is set; give --{name}, BOOTSWARM_{}, `{name} = ...` in the config file or bootswarm.{name}= on the kernel command line",
        name.to_uppercase()
    ))
}

/// Sets `slot` from the first of `config` and `kernel` when no flag or variable did.
fn fill<T>(slot: &mut Option<T>, config: Option<T>, kernel: Option<T>) {
    if slot.is_none() {
        *slot = config.or(kernel);
    }
}

/// Reads the layers from this machine: `--config`, the kernel command line (`--kernel-cmdline`
/// or `/proc/cmdline`) and `/proc/self/mountinfo`.
pub fn resolve_here(args: RunArgs) -> Result<Resolved> {
    let config = ConfigFile::load(args.config.as_deref())?;
    let cmdline = match &args.kernel_cmdline {
        Some(path) => Cmdline::read(path)?,
        None => Cmdline::current()?,
    };
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    resolve(args, &config, &cmdline, &mountinfo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        run: RunArgs,
    }

    fn args(flags: &[&str]) -> RunArgs {
        Wrap::try_parse_from(std::iter::once("run").chain(flags.iter().copied()))
            .unwrap()
            .run
    }

    const MOUNTS_CACHE: &str = "36 25 0:32 / /var/cache rw,relatime shared:1 - btrfs /dev/sda rw\n";
    const MOUNTS_NONE: &str = "22 1 0:20 / / rw - rootfs rootfs rw\n";

    #[test]
    fn a_zero_os_node_needs_no_flags() {
        let cmdline = Cmdline::parse(
            "nomodeset version=v3light runmode=dev farmer_id=42 zos-debug bootswarm.hub=http://10.0.0.1:8080 bootswarm.trust=/etc/bootswarm/trust bootswarm.peers=/ip4/10.0.0.2/tcp/4101,/ip4/10.0.0.3/tcp/4101",
        )
        .unwrap();
        let r = resolve(args(&[]), &ConfigFile::default(), &cmdline, MOUNTS_CACHE).unwrap();
        assert_eq!(r.args.hub.as_deref(), Some("http://10.0.0.1:8080"));
        assert_eq!(r.args.channel.as_deref(), Some("development-v3light"));
        assert_eq!(r.args.swarm.farm.as_deref(), Some("42"));
        assert_eq!(r.args.swarm.peers.len(), 2);
        assert_eq!(r.args.store.as_deref(), Some(Path::new(CACHE_STORE)));
        assert!(r.debug);
        assert!(!r.off);
        assert_eq!(r.notes.len(), 1);
    }

    #[test]
    fn runmodes_name_the_taglinks_bootstrap_follows() {
        for (mode, version, channel) in [
            ("prod", None, "production"),
            ("test", Some("v3"), "testing"),
            ("qa", Some("v3light"), "qa-v3light"),
            ("dev", Some("v4"), "development"),
        ] {
            assert_eq!(channel_for_runmode(mode, version), channel);
        }
    }

    #[test]
    fn flags_beat_the_config_file_which_beats_the_kernel_command_line() {
        let cmdline = Cmdline::parse(
            "runmode=prod bootswarm.hub=http://kernel bootswarm.trust=/kernel bootswarm.store=/kernel bootswarm.store_quota=9GiB bootswarm.upload_rate=1gbit bootswarm.hub_window=128MiB",
        )
        .unwrap();
        let config = ConfigFile::parse(
            "hub = \"http://config\"\nchannel = \"config\"\nupload_rate = \"200mbit\"\nmax_upload_peers = 4\n",
            Path::new("c.toml"),
        )
        .unwrap();
        let r = resolve(
            args(&["--hub", "http://flag"]),
            &config,
            &cmdline,
            MOUNTS_NONE,
        )
        .unwrap();
        assert_eq!(r.args.hub.as_deref(), Some("http://flag"));
        assert_eq!(r.args.channel.as_deref(), Some("config"));
        assert_eq!(r.args.trust.as_deref(), Some(Path::new("/kernel")));
        assert_eq!(r.args.store.as_deref(), Some(Path::new("/kernel")));
        assert_eq!(r.args.store_quota.as_deref(), Some("9GiB"));
        assert_eq!(r.args.swarm.hub_window.as_deref(), Some("128MiB"));
        assert_eq!(r.args.upload_rate.as_deref(), Some("200mbit"));
        assert_eq!(r.args.max_upload_peers, Some(4));
        assert!(r.notes.is_empty());
    }

    #[test]
    fn the_rack_comes_from_the_kernel_unless_a_flag_or_the_config_gives_it() {
        let cmdline = Cmdline::parse("bootswarm.rack=r7 bootswarm.hub=h").unwrap();
        let r = resolve(args(&[]), &ConfigFile::default(), &cmdline, MOUNTS_NONE).unwrap();
        assert_eq!(r.args.swarm.rack.as_deref(), Some("r7"));
        let config = ConfigFile {
            rack: Some("r8".into()),
            ..ConfigFile::default()
        };
        let r = resolve(args(&[]), &config, &cmdline, MOUNTS_NONE).unwrap();
        assert_eq!(r.args.swarm.rack.as_deref(), Some("r8"));
        let r = resolve(args(&["--rack", "r9"]), &config, &cmdline, MOUNTS_NONE).unwrap();
        assert_eq!(r.args.swarm.rack.as_deref(), Some("r9"));
    }

    #[test]
    fn no_cache_disk_means_a_store_in_memory_said_once() {
        let cmdline =
            Cmdline::parse("bootswarm.hub=h bootswarm.channel=c bootswarm.trust=t").unwrap();
        let r = resolve(args(&[]), &ConfigFile::default(), &cmdline, MOUNTS_NONE).unwrap();
        assert_eq!(r.args.store.as_deref(), Some(Path::new(MEMORY_STORE)));
        assert!(
            matches!(&r.notes[..], [Note::Warn(n)] if n.contains("in memory")),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn a_missing_setting_is_one_sentence_naming_every_way_to_give_it() {
        let r = resolve(
            args(&["--channel", "c", "--trust", "t"]),
            &ConfigFile::default(),
            &Cmdline::default(),
            MOUNTS_NONE,
        )
        .unwrap();
        let err = crate::daemon::DaemonOptions::from_run_args(&r.args)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "no hub is set; give --hub, BOOTSWARM_HUB, `hub = ...` in the config file or bootswarm.hub= on the kernel command line"
        );
    }

    #[test]
    fn off_and_config_errors() {
        let cmdline =
            Cmdline::parse("bootswarm.off bootswarm.hub=h runmode=qa bootswarm.trust=t").unwrap();
        assert!(
            resolve(args(&[]), &ConfigFile::default(), &cmdline, "")
                .unwrap()
                .off
        );
        let err = ConfigFile::parse("hbu = \"x\"\n", Path::new("/etc/b.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("config file /etc/b.toml is not valid: unknown field `hbu`"),
            "{err}"
        );
    }

    #[test]
    fn too_many_peers_are_refused() {
        let peers: Vec<String> = (0..65).map(|i| format!("/ip4/10.0.0.{i}/tcp/1")).collect();
        let cmdline = Cmdline::parse(&format!(
            "bootswarm.hub=h runmode=qa bootswarm.trust=t bootswarm.peers={}",
            peers.join(",")
        ))
        .unwrap();
        let err = resolve(args(&[]), &ConfigFile::default(), &cmdline, "")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "65 peers were given, more than 64; give the nearest ones"
        );
    }

    #[test]
    fn mount_points_come_from_the_fifth_field() {
        assert!(is_mount_point(MOUNTS_CACHE, "/var/cache"));
        assert!(!is_mount_point(MOUNTS_CACHE, "/var"));
        assert!(!is_mount_point("garbage", "/var/cache"));
    }
}
