//! `bootswarm keygen`: a publisher key pair, or a farm's swarm key.

use std::path::PathBuf;

use crate::error::Result;
use crate::{keys, swarmkey};

/// Arguments of `bootswarm keygen`.
#[derive(clap::Args, Debug)]
pub struct KeygenArgs {
    /// Secret key file to write (mode 0600); the public key goes to FILE.pub.
    #[arg(long, value_name = "FILE", required_unless_present = "swarm_key")]
    pub out: Option<PathBuf>,
    /// Write a new swarm key (the farm's pre-shared key, kubo `swarm.key` format) to FILE
    /// instead, mode 0600; give the same file to every node with `--swarm-key`.
    #[arg(long, value_name = "FILE", conflicts_with = "out")]
    pub swarm_key: Option<PathBuf>,
}

/// Runs `bootswarm keygen`.
pub fn run(args: KeygenArgs) -> Result<()> {
    if let Some(path) = &args.swarm_key {
        swarmkey::generate(path)?;
        println!("swarm key: {}", path.display());
        return Ok(());
    }
    let Some(out) = &args.out else {
        return Err(crate::error::Error::new(
            "give --out FILE for a publisher key or --swarm-key FILE for a swarm key",
        ));
    };
    let public = keys::write_keypair(out)?;
    println!("secret key: {}", out.display());
    println!("public key: {}", keys::pub_path(out).display());
    println!("{}", keys::public_key_line(&public));
    Ok(())
}
