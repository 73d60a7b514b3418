//! The `bootswarm` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::Result;
use crate::{announce, boot, daemon, demo, hub, inspect, keygen, publish};

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
    }
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
}
