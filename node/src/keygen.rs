//! `bootswarm keygen`: a publisher key pair.

use std::path::PathBuf;

use crate::error::Result;
use crate::keys;

/// Arguments of `bootswarm keygen`.
#[derive(clap::Args, Debug)]
pub struct KeygenArgs {
    /// Secret key file to write (mode 0600); the public key goes to FILE.pub.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Runs `bootswarm keygen`.
pub fn run(args: KeygenArgs) -> Result<()> {
    let public = keys::write_keypair(&args.out)?;
    println!("secret key: {}", args.out.display());
    println!("public key: {}", keys::pub_path(&args.out).display());
    println!("{}", keys::public_key_line(&public));
    Ok(())
}
