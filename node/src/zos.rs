//! Zero-OS integration: the kernel command line a node booted with, and the zinit service
//! restarts of an upgrade (the way the Zero-OS upgrader does them).

pub mod cmdline;
pub mod zinit;
