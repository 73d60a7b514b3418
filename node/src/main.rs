//! The `bootswarm` binary.

use std::process::ExitCode;

fn main() -> ExitCode {
    bootswarm_node::cli::main()
}
