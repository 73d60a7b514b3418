//! The `bootswarm` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::{announce, boot, daemon, demo, hub, inspect, keygen, publish, status, zos};

/// bootswarm: a peer-to-peer boot cache for Zero-OS server farms.
#[derive(Parser, Debug)]
#[command(name = "bootswarm", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate a publisher key pair.
    Keygen(keygen::KeygenArgs),
    /// Publish package directories as a signed release into a hub directory.
    Publish(publish::PublishArgs),
    /// Run the hub (the origin of blocks and releases).
    Hub(hub::HubArgs),
    /// Fetch a channel's release and materialise it into a directory.
    Boot(boot::BootArgs),
    /// Show a release, an flist or a block.
    Inspect(inspect::InspectArgs),
    /// Run the swarm daemon: boot the channel's release from peers and the hub, then serve peers.
    Run(daemon::RunArgs),
    /// Hand a signed release to a running node, which checks it and gossips it to the farm.
    Announce(announce::AnnounceArgs),
    /// Run a whole farm on this machine: a throttled hub and N booting nodes.
    Demo(demo::DemoArgs),
    /// Show a running node's state at a glance (from its --http endpoint).
    Status(status::StatusArgs),
    /// Show a running node's state, redrawn every second.
    Top(status::TopArgs),
    /// Restart the zinit services of a changed package (for --on-change on Zero-OS).
    ZinitRestart(zos::zinit::ZinitRestartArgs),
    /// Print a shell completion script, e.g. `bootswarm completions bash > /etc/bash_completion.d/bootswarm`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages (bootswarm.1 and one per command) into a directory.
    Manpages {
        /// Directory the pages are written into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Keygen(args) => keygen::run(args),
        Command::Publish(args) => publish::run(args),
        Command::Hub(args) => hub::run(args),
        Command::Boot(args) => boot::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Run(args) => daemon::run(args),
        Command::Announce(args) => announce::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Status(args) => status::run(args),
        Command::Top(args) => status::top(args),
        Command::ZinitRestart(args) => zos::zinit::run(args),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "bootswarm", &mut std::io::stdout());
            Ok(())
        }
        Command::Manpages { out } => manpages(&out),
    }
}

/// Writes `bootswarm.1` and `bootswarm-<command>.1` for every command into `dir`.
fn manpages(dir: &std::path::Path) -> Result<()> {
    let cannot = |path: &std::path::Path, e: std::io::Error| {
        Error::new(format!(
            "cannot write the man page {} ({e}); check --out",
            path.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(|e| cannot(dir, e))?;
    let cmd = <Cli as clap::CommandFactory>::command();
    let mut pages = vec![("bootswarm".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands() {
        let name = format!("bootswarm-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for (name, page) in pages {
        let mut text = Vec::new();
        clap_mangen::Man::new(page)
            .render(&mut text)
            .map_err(|e| cannot(dir, e))?;
        let path = dir.join(format!("{name}.1"));
        crate::fsutil::write_atomic(&path, &text, Some(0o644)).map_err(|e| cannot(&path, e))?;
    }
    Ok(())
}

/// The binary's entry point: parses the arguments, runs, prints an error as one line.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BOOTSWARM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn completions_and_man_pages_cover_every_command() {
        use clap::ValueEnum;
        for shell in clap_complete::Shell::value_variants() {
            let mut out = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "bootswarm", &mut out);
            let text = String::from_utf8(out).unwrap();
            assert!(
                text.contains("announce") && text.contains("status"),
                "{shell}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        manpages(dir.path()).unwrap();
        for sub in Cli::command().get_subcommands() {
            let page = dir.path().join(format!("bootswarm-{}.1", sub.get_name()));
            let text = std::fs::read_to_string(&page).unwrap();
            assert!(text.contains(".TH"), "{}", page.display());
        }
        assert!(dir.path().join("bootswarm.1").is_file());
    }
}
