//! `bootswarm zinit-restart PACKAGE`: the `--on-change` recipe for a Zero-OS node. It restarts
//! the zinit services a changed package ships (`PACKAGE/etc/zinit/*.yaml` in the version now in
//! use) the way the Zero-OS upgrader does: `zinit stop`, `forget`, the new service file into
//! place, `monitor`, `start`; `identityd` and `redis` are never touched.
//!
//! Use it as `bootswarm run --on-change 'bootswarm zinit-restart {package}'`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// Services the Zero-OS upgrader never restarts (the node's identity and the local redis).
pub const NEVER_RESTARTED: &[&str] = &["identityd", "redis"];
/// Most service files one package may ship.
const MAX_SERVICES: usize = 256;

/// Arguments of `bootswarm zinit-restart`.
#[derive(clap::Args, Debug, Clone)]
pub struct ZinitRestartArgs {
    /// The changed package (`{package}` of --on-change).
    pub package: String,
    /// The version in use, TARGET/current (the hook's BOOTSWARM_CURRENT).
    #[arg(long, env = "BOOTSWARM_CURRENT", value_name = "DIR")]
    pub current: PathBuf,
    /// Where zinit reads service files.
    #[arg(long, default_value = "/etc/zinit", value_name = "DIR")]
    pub zinit_dir: PathBuf,
    /// The zinit command.
    #[arg(long, default_value = "zinit", value_name = "PROGRAM")]
    pub zinit: String,
}

/// The services a package ships, by name, sorted; `identityd` and `redis` left out.
pub fn services(package_dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let dir = package_dir.join("etc/zinit");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::new(format!(
                "cannot list the services in {} ({e})",
                dir.display()
            )));
        }
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".yaml"))
        else {
            continue;
        };
        let plain = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if plain && !NEVER_RESTARTED.contains(&name) && path.is_file() {
            out.push((name.to_string(), path));
        }
        if out.len() > MAX_SERVICES {
            return Err(Error::new(format!(
                "{} holds more than {MAX_SERVICES} service files; nothing was restarted",
                dir.display()
            )));
        }
    }
    out.sort();
    Ok(out)
}

fn zinit(program: &str, verb: &str, service: &str) -> Result<bool> {
    Command::new(program)
        .args([verb, service])
        .status()
        .map(|s| s.success())
        .map_err(|e| {
            Error::new(format!(
                "cannot run '{program} {verb} {service}' ({e}); is zinit installed?"
            ))
        })
}

/// Runs `bootswarm zinit-restart`.
pub fn run(args: ZinitRestartArgs) -> Result<()> {
    let name = &args.package;
    if name.is_empty() || name.contains(['/', '\0']) || name == "." || name == ".." {
        return Err(Error::new(format!(
            "'{}' is not a package name; give the {{package}} of --on-change",
            name.escape_debug()
        )));
    }
    for (service, file) in services(&args.current.join(name))? {
        // A service that is not running refuses stop and forget: that is fine.
        zinit(&args.zinit, "stop", &service)?;
        zinit(&args.zinit, "forget", &service)?;
        let bytes = std::fs::read(&file).map_err(|e| {
            Error::new(format!(
                "cannot read the service file {} ({e})",
                file.display()
            ))
        })?;
        let dest = args.zinit_dir.join(format!("{service}.yaml"));
        crate::fsutil::write_atomic(&dest, &bytes, Some(0o644)).map_err(|e| {
            Error::new(format!(
                "cannot install the service file {} ({e}); check --zinit-dir",
                dest.display()
            ))
        })?;
        if !zinit(&args.zinit, "monitor", &service)? {
            return Err(Error::new(format!(
                "zinit could not monitor service '{service}' of package '{name}'; see zinit log"
            )));
        }
        if !zinit(&args.zinit, "start", &service)? {
            return Err(Error::new(format!(
                "zinit could not start service '{service}' of package '{name}'; see zinit log"
            )));
        }
    }
    Ok(())
}
