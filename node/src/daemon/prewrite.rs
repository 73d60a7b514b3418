//! Writes a version's files into its staging directory while the boot still fetches
//! ([`Streamer`]), on a thread of its own; the install takes what it wrote.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bootswarm_protocol::block::Cid;
use tokio::sync::watch;

use crate::materialise::{Streamer, placed_from_store, plan};
use crate::store::SledStore;

/// Pause between passes that wrote nothing (a pass runs only if blocks were stored since).
const IDLE: Duration = Duration::from_millis(50);

/// A version being written ahead.
#[derive(Debug)]
pub(crate) struct Prewrite {
    /// The version's seq.
    pub(crate) seq: u64,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<HashSet<String>>>,
}

impl Prewrite {
    /// Starts writing `root`'s files into `dir` as their chunks reach `store`.
    pub(crate) fn start(
        store: Arc<SledStore>,
        stored: watch::Receiver<u64>,
        seq: u64,
        root: Cid,
        dir: PathBuf,
    ) -> Prewrite {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(format!("prewrite-{seq}"))
            .spawn(move || run(&store, stored, root, &dir, &flag))
            .map_err(|e| tracing::warn!("cannot start writing files ahead ({e})"))
            .ok();
        Prewrite { seq, stop, thread }
    }

    /// Stops it (after the file it is writing) and returns the files written.
    pub(crate) fn finish(mut self) -> HashSet<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Prewrite {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn run(
    store: &SledStore,
    mut stored: watch::Receiver<u64>,
    root: Cid,
    dir: &std::path::Path,
    stop: &AtomicBool,
) -> HashSet<String> {
    // The flists are all held when this starts, but may still be on their way to the store.
    let tree = loop {
        if stop.load(Ordering::Relaxed) {
            return HashSet::new();
        }
        if let Ok(tree) = placed_from_store(store, &root).and_then(|f| plan(&f)) {
            break tree;
        }
        std::thread::sleep(IDLE);
    };
    let mut streamer = match Streamer::new(&tree, dir) {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!("not writing files ahead: {e}");
            return HashSet::new();
        }
    };
    while streamer.remaining() > 0 && !stop.load(Ordering::Relaxed) {
        stored.borrow_and_update();
        match streamer.pass(store, &tree) {
            Ok(0) => {
                // Nothing new to write until more blocks are stored.
                while !stop.load(Ordering::Relaxed) && !stored.has_changed().unwrap_or(false) {
                    std::thread::sleep(IDLE);
                }
            }
            Ok(_) => {}
            Err(e) => {
                // The install writes the rest, and reports the error if it is still there.
                tracing::debug!("stopped writing files ahead: {e}");
                break;
            }
        }
    }
    streamer.into_written()
}
