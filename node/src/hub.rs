//! The hub: the origin of blocks and releases. Its directory layout, the HTTP server
//! (`bootswarm hub serve`) and the client used by nodes.
//!
//! Layout of a hub directory:
//! - `blocks/<cid>`: one file per block;
//! - `channels/<name>/latest`: the latest signed release of a channel;
//! - `channels/<name>/<seq>.release`: every release ever published on it.

pub mod client;
pub mod conn;
pub mod fair;
pub mod server;

use std::io;
use std::path::{Path, PathBuf};

use bootswarm_protocol::block::Cid;
use bootswarm_protocol::release::{MAX_CHANNEL_LEN, MAX_RELEASE_SIZE, is_valid_channel};

use crate::error::{Error, Result};
use crate::fsutil::read_capped;
use crate::units::parse_rate;

pub use conn::Limits;
pub use server::{HubHandle, HubStats, serve, start, start_with};

/// Directory of block files inside a hub directory.
pub const BLOCKS_DIR: &str = "blocks";
/// Directory of channels inside a hub directory.
pub const CHANNELS_DIR: &str = "channels";
/// File name of a channel's latest release.
pub const LATEST: &str = "latest";

/// Path of a block's file.
pub fn block_path(hub_dir: &Path, cid: &Cid) -> PathBuf {
    hub_dir.join(BLOCKS_DIR).join(cid.to_string())
}

/// Directory of a channel (the name must have passed [`check_channel_name`]).
pub fn channel_dir(hub_dir: &Path, channel: &str) -> PathBuf {
    hub_dir.join(CHANNELS_DIR).join(channel)
}

/// Path of a channel's latest release.
pub fn latest_path(hub_dir: &Path, channel: &str) -> PathBuf {
    channel_dir(hub_dir, channel).join(LATEST)
}

/// Path of a channel's release with sequence number `seq`.
pub fn release_path(hub_dir: &Path, channel: &str, seq: u64) -> PathBuf {
    channel_dir(hub_dir, channel).join(format!("{seq}.release"))
}

/// Checks a channel name: 1 to 64 characters of `[a-z0-9._-]`, not starting with a dot
/// (it names a directory).
pub fn check_channel_name(name: &str) -> Result<()> {
    if is_valid_channel(name) && !name.starts_with('.') {
        Ok(())
    } else {
        Err(Error::new(format!(
            "'{}' is not a channel name; use 1 to {MAX_CHANNEL_LEN} characters of a-z, 0-9, '.', '_' and '-', not starting with '.'",
            name.escape_debug()
        )))
    }
}

/// The latest release bytes of a channel in a hub directory, or `None` if it has none.
pub fn read_latest(hub_dir: &Path, channel: &str) -> Result<Option<Vec<u8>>> {
    check_channel_name(channel)?;
    let path = latest_path(hub_dir, channel);
    match read_capped(&path, MAX_RELEASE_SIZE) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::new(format!(
            "cannot read release file {} ({e}); check the hub directory",
            path.display()
        ))),
    }
}

/// Arguments of `bootswarm hub`.
#[derive(clap::Args, Debug)]
pub struct HubArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: HubCommand,
}

/// Subcommands of `bootswarm hub`.
#[derive(clap::Subcommand, Debug)]
pub enum HubCommand {
    /// Serve a hub directory over HTTP.
    Serve(ServeArgs),
}

/// Arguments of `bootswarm hub serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Hub directory written by `bootswarm publish`.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Address to listen on, e.g. `0.0.0.0:8080` (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: String,
    /// Egress limit standing in for a WAN link, e.g. `100mbit`; shared fairly among client
    /// addresses, whatever the number of requests each has in flight.
    #[arg(long, value_name = "RATE")]
    pub rate: Option<String>,
    /// Connections open at once; more wait in the listen backlog.
    #[arg(long, default_value_t = conn::DEFAULT_MAX_CONNECTIONS, value_name = "N")]
    pub max_connections: usize,
}

/// Runs `bootswarm hub ...`.
pub fn run(args: HubArgs) -> Result<()> {
    match args.command {
        HubCommand::Serve(args) => run_serve(args),
    }
}

fn run_serve(args: ServeArgs) -> Result<()> {
    check_hub_dir(&args.dir)?;
    let rate = args.rate.as_deref().map(parse_rate).transpose()?;
    let runtime = crate::task::runtime(crate::task::Runtime::Server)?;
    runtime.block_on(async {
        let listener = server::bind(&args.listen).await?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::new(format!("cannot read the listening address ({e})")))?;
        match rate {
            Some(rate) => println!(
                "hub serving {} on http://{addr} (egress limited to {} bytes/s)",
                args.dir.display(),
                rate
            ),
            None => println!("hub serving {} on http://{addr}", args.dir.display()),
        }
        let limits = Limits {
            max_connections: args.max_connections,
            ..Limits::default()
        };
        server::serve_until(args.dir.clone(), listener, rate, limits, shutdown_signal()).await
    })
}

/// Checks that `dir` is an existing directory usable as a hub directory.
pub fn check_hub_dir(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Error::new(format!(
            "hub directory {} is not a directory; pass the directory given to `bootswarm publish --hub-dir`",
            dir.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::new(format!(
            "hub directory {} does not exist; create it with `bootswarm publish --hub-dir {}` or fix the path",
            dir.display(),
            dir.display()
        ))),
        Err(e) => Err(Error::new(format!(
            "cannot read hub directory {} ({e}); check its permissions",
            dir.display()
        ))),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names() {
        for good in ["zos-prod", "a", "v1.2_x", &"a".repeat(64)] {
            assert!(check_channel_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "Zos",
            "a/b",
            "a b",
            &"a".repeat(65),
            "é",
        ] {
            assert!(check_channel_name(bad).is_err(), "{bad}");
        }
    }
}
