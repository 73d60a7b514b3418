//! The `bootswarm` processes a run starts: tools run to completion, and long-running
//! processes whose stdout is read line by line and which are killed when dropped.

use super::Error;
use super::lab::Lab;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// Longest wait for a process's first stdout line (hub URL, node address).
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Fails with [`Error::Interrupted`] once SIGINT/SIGTERM has set `stop`.
pub(crate) fn check_stop(stop: &AtomicBool) -> Result<(), Error> {
    if stop.load(Ordering::SeqCst) {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}

/// What every process of a run needs: the binary, the stop flag, whether to report progress.
pub(crate) struct Ctx<'a> {
    pub(crate) bin: &'a Path,
    pub(crate) stop: &'a AtomicBool,
    pub(crate) progress: bool,
}

impl Ctx<'_> {
    /// A progress line on stderr, when progress is on.
    pub(crate) fn report(&self, msg: &str) {
        if self.progress {
            eprintln!("testbed: {msg}");
        }
    }

    /// Runs a `bootswarm` subcommand in the root namespace (no network) to completion.
    pub(crate) fn tool(
        &self,
        w: &Path,
        what: &str,
        args: impl FnOnce(&mut std::process::Command),
    ) -> Result<(), Error> {
        self.tool_in(None, w, what, args)
    }

    /// Runs a `bootswarm` subcommand to completion, inside namespace `ns` if given; its
    /// output goes to `W/WHAT.log`.
    pub(crate) fn tool_in(
        &self,
        ns: Option<&str>,
        w: &Path,
        what: &str,
        args: impl FnOnce(&mut std::process::Command),
    ) -> Result<(), Error> {
        let log = w.join(format!("{what}.log"));
        let mut cmd = match ns {
            Some(ns) => Lab::command(ns, self.bin),
            None => std::process::Command::new(self.bin),
        };
        args(&mut cmd);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(log_file(&log)?)
            .stderr(log_file(&log)?)
            .spawn()
            .map_err(|e| {
                Error::Failed(format!(
                    "cannot run {} {what} ({e}); check --bin",
                    self.bin.display()
                ))
            })?;
        loop {
            if let Some(st) = child.try_wait().ok().flatten() {
                if st.success() {
                    return Ok(());
                }
                return Err(Error::Failed(format!(
                    "bootswarm {what} failed ({st}): {}",
                    last_line(&log)
                )));
            }
            if self.stop.load(Ordering::SeqCst) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Interrupted);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts `bootswarm ARGS` inside namespace `ns`, stdout read line by line.
    pub(crate) fn spawn(
        &self,
        ns: &str,
        name: &str,
        log: &Path,
        args: impl FnOnce(&mut std::process::Command),
    ) -> Result<Proc, Error> {
        let mut cmd = Lab::command(ns, self.bin);
        args(&mut cmd);
        if std::env::var_os("BOOTSWARM_LOG").is_none() {
            cmd.env("BOOTSWARM_LOG", "info");
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file(log)?)
            .spawn()
            .map_err(|e| {
                Error::Failed(format!(
                    "cannot start the {name} ({}) in namespace {ns} ({e})",
                    self.bin.display()
                ))
            })?;
        let (tx, rx) = channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((Instant::now(), line)).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Proc {
            name: name.to_string(),
            child,
            lines: rx,
            log: log.to_path_buf(),
            exited: None,
        })
    }
}

fn log_file(path: &Path) -> Result<fs::File, Error> {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::Failed(format!("cannot create the log {} ({e})", path.display())))
}

/// The last non-empty line of a log file.
pub(crate) fn last_line(path: &Path) -> String {
    fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| "no message".to_string())
}

/// A process we started; killed and reaped when dropped.
pub(crate) struct Proc {
    name: String,
    child: Child,
    /// Stdout lines with the time each was read.
    pub(crate) lines: Receiver<(Instant, String)>,
    /// The file its stderr goes to.
    pub(crate) log: PathBuf,
    exited: Option<ExitStatus>,
}

impl Proc {
    /// Waits for a stdout line starting with `prefix` and returns the rest.
    pub(crate) fn wait_line(&self, prefix: &str, ctx: &Ctx<'_>) -> Result<String, Error> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            check_stop(ctx.stop)?;
            match self.lines.recv_timeout(Duration::from_millis(50)) {
                Ok((_, line)) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return Ok(rest.trim().to_string());
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        Err(Error::Failed(format!(
            "the {} did not start ({}); see {}",
            self.name,
            last_line(&self.log),
            self.log.display()
        )))
    }

    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
