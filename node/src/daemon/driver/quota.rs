//! `--store-quota` in the event loop: a boot whose release cannot fit is given up, with one
//! sentence naming the sizes, and the node goes back to serving the version it runs.

use super::*;
use crate::units::format_size;

impl Driver {
    /// A boot begins: its blocks are pinned in the store from now on.
    pub(super) fn begin_boot(&mut self, root: Cid) {
        self.tasks.store.begin_boot();
        self.quota_checked = None;
        self.feed(Input::Boot { root });
    }

    /// Once the release's size is known, gives up its boot if it cannot fit beside the
    /// blocks pinned.
    pub(super) fn check_quota(&mut self) {
        let Some(limit) = self.opts.store_quota else {
            return;
        };
        let Some(root) = self.follower.status().booting else {
            return;
        };
        let p = self.agent.progress();
        // Every manifest known and every block looked up in the store: `have` is final.
        let looked_up = self.lookups.is_empty() && self.lookups_in_flight == 0;
        if !p.complete || !looked_up || self.quota_checked == Some(root) {
            return;
        }
        self.quota_checked = Some(root);
        let usage = self.tasks.store.usage_now();
        let missing = p.total_bytes.saturating_sub(p.have_bytes);
        let room = limit.saturating_sub(usage.pinned);
        if missing > room {
            let need = usage.pinned + missing;
            self.refuse_boot(
                root,
                format!(
                    "needs {} more of blocks but --store-quota {} leaves {} beside the {} pinned by the versions kept and the blocks of it already held; raise --store-quota to at least {} or lower --keep",
                    format_size(missing),
                    format_size(limit),
                    format_size(room),
                    format_size(usage.pinned),
                    format_size(need),
                ),
            );
        }
    }

    /// A verified block could not be stored: beyond the quota, the boot is given up.
    pub(super) fn on_store_failed(&mut self, cid: Cid, error: &StoreError) {
        match error {
            StoreError::Full(full) => {
                if let (Some(root), Some(limit)) =
                    (self.follower.status().booting, self.opts.store_quota)
                {
                    self.refuse_boot(
                        root,
                        format!(
                            "does not fit in --store-quota {}: its block {} ({}) would not fit beside the {} pinned by the versions kept and the blocks of it already held; raise --store-quota or lower --keep",
                            format_size(limit),
                            full.cid,
                            format_size(full.len),
                            format_size(full.pinned),
                        ),
                    );
                }
            }
            _ => tracing::warn!(%cid, "storing a verified block failed: {error}"),
        }
    }

    /// Gives up booting `root`: the follower records why, and the agent goes back to the
    /// version in use (or, with none, the daemon stops).
    fn refuse_boot(&mut self, root: Cid, why: String) {
        let seq = self
            .follower
            .current()
            .filter(|c| c.version.root == root)
            .map_or(0, |c| c.version.seq);
        let reason = format!("release seq {seq} ({root}) {why}");
        self.tell(follower::Input::BootRefused {
            root,
            reason: reason.clone(),
        });
        match self.follower.status().installed {
            Some(v) if v.root != root => self.begin_boot(v.root),
            _ => {
                if self.exit.is_none() {
                    self.exit = Some(Err(Error::new(reason)));
                }
            }
        }
    }
}
