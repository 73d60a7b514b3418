//! The commands an upgrade runs: `--on-change` once per changed package and `--health-check`,
//! each bounded by `--hook-timeout`. Each runs in a process group of its own, and a timeout
//! kills the whole group, so nothing the hook started outlives it.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bootswarm_protocol::follower::HookAction;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::versions::CURRENT_LINK;

/// Hooks run around a switch.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hooks {
    /// Command template run once per changed package; `{package}` is replaced by its name.
    pub(crate) on_change: Option<String>,
    /// Command run after the hooks; a non-zero exit means unhealthy.
    pub(crate) health_check: Option<String>,
    /// Longest time one hook or check may run.
    pub(crate) timeout: Duration,
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Runs `sh -c cmd` with `env` in a new process group, stdout sent to stderr; after
/// `timeout` the whole group is killed. The error is a clause naming what failed.
fn run_command(
    cmd: &str,
    env: &[(&str, String)],
    timeout: Duration,
) -> std::result::Result<(), String> {
    let stdout = std::os::fd::AsFd::as_fd(&io::stderr())
        .try_clone_to_owned()
        .map_or_else(|_| Stdio::null(), Stdio::from);
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(stdout)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("'{cmd}' could not be started ({e})"))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("'{cmd}' failed ({status})")),
            Ok(None) if Instant::now() >= deadline => {
                kill_group(child.id());
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("'{cmd}' timed out after {} s", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("'{cmd}' could not be waited for ({e})")),
        }
    }
}

/// Kills the process group led by `pid` (the hook's shell and everything it started).
fn kill_group(pid: u32) {
    let Ok(pid) = i32::try_from(pid) else { return };
    if let Err(e) = killpg(Pid::from_raw(pid), Signal::SIGKILL) {
        tracing::debug!(pid, "cannot kill the hook's process group: {e}");
    }
}

/// Runs the change hook for each package of version `seq` in `target`; stops at the first
/// failure, except for a rollback, which runs every hook.
pub(crate) fn run_hooks(
    hooks: &Hooks,
    target: &Path,
    seq: u64,
    action: HookAction,
    packages: &[String],
) -> std::result::Result<(), String> {
    let Some(template) = &hooks.on_change else {
        return Ok(());
    };
    let mut first_error = None;
    for package in packages {
        let cmd = template.replace("{package}", &shell_quote(package));
        let env = [
            ("BOOTSWARM_PACKAGE", package.clone()),
            ("BOOTSWARM_SEQ", seq.to_string()),
            ("BOOTSWARM_ACTION", action.as_str().to_string()),
            (
                "BOOTSWARM_CURRENT",
                target.join(CURRENT_LINK).display().to_string(),
            ),
        ];
        if let Err(e) = run_command(&cmd, &env, hooks.timeout) {
            let e = format!("the on-change hook for package '{package}': {e}");
            tracing::warn!("{e}");
            first_error.get_or_insert(e);
            if action == HookAction::Upgrade {
                break;
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Runs the health check for version `seq` in `target`.
pub(crate) fn health_check(
    hooks: &Hooks,
    target: &Path,
    seq: u64,
) -> std::result::Result<(), String> {
    let Some(cmd) = &hooks.health_check else {
        return Ok(());
    };
    let env = [
        ("BOOTSWARM_SEQ", seq.to_string()),
        (
            "BOOTSWARM_CURRENT",
            target.join(CURRENT_LINK).display().to_string(),
        ),
    ];
    run_command(cmd, &env, hooks.timeout).map_err(|e| format!("the health check {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_report_failure_and_timeout() {
        assert!(run_command("true", &[], Duration::from_secs(5)).is_ok());
        let e = run_command("exit 3", &[], Duration::from_secs(5)).unwrap_err();
        assert!(e.contains("failed"), "{e}");
        let e = run_command("sleep 5", &[], Duration::from_millis(100)).unwrap_err();
        assert!(e.contains("timed out"), "{e}");
        assert_eq!(shell_quote("a'b"), "'a'\\''b'");
    }

    /// Whether process `pid` is gone (or a zombie waiting for its new parent to reap it).
    fn gone(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        }
    }

    #[test]
    fn a_timeout_kills_what_the_hook_started() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let cmd = format!("sleep 60 & echo $! > {}; wait", pidfile.display());
        let e = run_command(&cmd, &[], Duration::from_millis(500)).unwrap_err();
        assert!(e.contains("timed out"), "{e}");
        let pid: u32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !gone(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(gone(pid), "the hook's child {pid} outlived the timeout");
    }
}
