//! The commands an upgrade runs: `--on-change` once per changed package and `--health-check`,
//! each bounded by `--hook-timeout`.

use std::io;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bootswarm_protocol::follower::HookAction;

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

/// Runs `sh -c cmd` with `env`, stdout sent to stderr, killed after `timeout`. The error is
/// a clause naming what failed.
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
        .spawn()
        .map_err(|e| format!("'{cmd}' could not be started ({e})"))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("'{cmd}' failed ({status})")),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("'{cmd}' timed out after {} s", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("'{cmd}' could not be waited for ({e})")),
        }
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
}
