//! `[[fault]]`: what goes wrong, when, and to which nodes.
//!
//! A new fault kind is a variant of [`FaultKind`], its keys in [`RawFault`] and one line in
//! [`KINDS`].

use super::nodes::{self, NodeSel, RawNodes};
use super::{Ctx, Scenario, ScenarioError};
use serde::Deserialize;

/// A bad release a peer injects into gossip (`[[fault]] kind = "inject"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injection {
    /// Signed by a key the farm does not trust.
    Forged,
    /// An old release replayed after it expired.
    Replayed,
    /// A validly signed release with a lower seq than the farm's.
    Rollback,
    /// A validly signed release of another channel.
    OtherChannel,
}

/// A fault.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// When it starts (ns).
    pub at: u64,
    /// When it ends (ns), if ever.
    pub until: Option<u64>,
    /// Which nodes (ignored by `hub_outage`).
    pub nodes: NodeSel,
    /// What.
    pub kind: FaultKind,
}

/// Kinds of faults.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// The nodes crash; with `until` they restart then, keeping their stores.
    Crash,
    /// The hub is unreachable.
    HubOutage,
    /// The nodes serve blocks that do not verify.
    Corrupt,
    /// The nodes are cut off from the rest of the farm (not from the hub).
    Partition,
    /// The nodes' NICs run at `rate` bytes/s, or at their capacity divided by `factor`.
    SlowNic {
        /// Divisor of the capacity.
        factor: f64,
        /// Absolute rate (bytes/s), overrides `factor`.
        rate: Option<u64>,
    },
    /// Control messages from or to the nodes are lost with probability `p`.
    Loss {
        /// Loss probability.
        p: f64,
    },
    /// The nodes gossip a bad release.
    Inject(Injection),
    /// Each node is an attacker presenting `identities` member identities (its own among
    /// them), all on its host and all silent: members from the attacker's start, they never
    /// answer anything.
    Sybil {
        /// Identities per attacker.
        identities: u32,
    },
    /// From `at`, the nodes claim every block and never serve one (each request gets no
    /// answer, `Busy` or `Other`).
    Withhold,
    /// From `at`, the nodes claim every block and serve it at `rate` bytes/s in all.
    Trickle {
        /// The attacker's upload rate (bytes/s).
        rate: u64,
    },
    /// The nodes re-gossip the release they started with every `period`, unjudged.
    Replay {
        /// Between two replays (ns).
        period: u64,
    },
    /// The nodes gossip forged releases (signed by an untrusted key), `rate` per second each.
    ForgeFlood {
        /// Forged releases per second and node.
        rate: f64,
    },
    /// Not hostile: the nodes' route to the hub is broken, so their hub fetches and polls
    /// fail (a bad uplink, a wrong `--hub`).
    HubUnreachable,
}

impl FaultKind {
    /// Whether the nodes stop running bootswarm and act as scripted attackers for the whole
    /// run (they boot nothing and are not honest).
    pub fn is_attacker(&self) -> bool {
        matches!(
            self,
            FaultKind::Sybil { .. } | FaultKind::Withhold | FaultKind::Trickle { .. }
        )
    }

    /// Whether the nodes are adversaries (not honest) without being [`attackers`]: they run
    /// bootswarm but misbehave or cannot reach the hub.
    ///
    /// [`attackers`]: FaultKind::is_attacker
    pub fn is_faulty_node(&self) -> bool {
        matches!(
            self,
            FaultKind::Replay { .. } | FaultKind::ForgeFlood { .. } | FaultKind::HubUnreachable
        )
    }
}

/// The keys of a `[[fault]]`; beyond `at`, `kind`, `nodes`/`fraction` and `until`, each
/// kind reads its own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFault {
    at: String,
    kind: String,
    nodes: Option<RawNodes>,
    fraction: Option<f64>,
    until: Option<String>,
    factor: Option<f64>,
    rate: Option<String>,
    p: Option<f64>,
    release: Option<String>,
    identities: Option<u32>,
    period: Option<String>,
    per_second: Option<f64>,
}

/// Reads the keys of one kind of `[[fault]]`: the context, the fault's key
/// (`[[fault]] #N`) and its raw keys.
type KindParser = fn(&Ctx<'_>, &str, &RawFault) -> Result<FaultKind, ScenarioError>;

/// Every fault kind, by its `kind = "..."` name, in the order errors list them.
const KINDS: &[(&str, KindParser)] = &[
    ("crash", |_, _, _| Ok(FaultKind::Crash)),
    ("hub_outage", |_, _, _| Ok(FaultKind::HubOutage)),
    ("corrupt", |_, _, _| Ok(FaultKind::Corrupt)),
    ("partition", |_, _, _| Ok(FaultKind::Partition)),
    ("slow_nic", slow_nic),
    ("loss", loss),
    ("inject", inject),
    ("sybil", sybil),
    ("withhold", |_, _, _| Ok(FaultKind::Withhold)),
    ("trickle", trickle),
    ("replay", replay),
    ("forge_flood", forge_flood),
    ("hub_unreachable", |_, _, _| Ok(FaultKind::HubUnreachable)),
];

/// Every injected release, by its `release = "..."` name.
const INJECTIONS: &[(&str, Injection)] = &[
    ("forged", Injection::Forged),
    ("replayed", Injection::Replayed),
    ("rollback", Injection::Rollback),
    ("other_channel", Injection::OtherChannel),
];

/// Fills `faults`; needs `nodes`.
pub(super) fn parse(
    cx: &Ctx<'_>,
    raw: &[RawFault],
    sc: &mut Scenario,
) -> Result<(), ScenarioError> {
    let mut faults = Vec::new();
    for (i, f) in raw.iter().enumerate() {
        let key = format!("[[fault]] #{}", i + 1);
        let at = cx.dur(&format!("{key}.at"), &f.at)?;
        let until = f
            .until
            .as_deref()
            .map(|v| cx.dur(&format!("{key}.until"), v))
            .transpose()?;
        if until.is_some_and(|u| u < at) {
            return Err(cx.err(format!("{key}.until is before its at")));
        }
        let Some((_, kind)) = KINDS.iter().find(|(name, _)| *name == f.kind) else {
            let names: Vec<&str> = KINDS.iter().map(|(name, _)| *name).collect();
            return Err(cx.err(format!(
                "{key}.kind = {:?} is not one of {}",
                f.kind,
                names.join(", ")
            )));
        };
        let kind = kind(cx, &key, f)?;
        if kind.is_attacker() && until.is_some() {
            return Err(cx.err(format!(
                "{key}.until is set, but a {} attacker stays one for the whole run",
                f.kind
            )));
        }
        faults.push(Fault {
            at,
            until,
            kind,
            nodes: nodes::select(cx, &key, f.nodes.as_ref(), f.fraction, sc.nodes)?,
        });
    }
    sc.faults = faults;
    Ok(())
}

fn slow_nic(cx: &Ctx<'_>, key: &str, f: &RawFault) -> Result<FaultKind, ScenarioError> {
    let factor = f.factor.unwrap_or(10.0);
    if !(factor >= 1.0 && factor.is_finite()) {
        return Err(cx.err(format!("{key}.factor = {factor} must be at least 1")));
    }
    let rate = f
        .rate
        .as_deref()
        .map(|v| cx.rate(&format!("{key}.rate"), v))
        .transpose()?;
    Ok(FaultKind::SlowNic { factor, rate })
}

fn loss(cx: &Ctx<'_>, key: &str, f: &RawFault) -> Result<FaultKind, ScenarioError> {
    let p =
        f.p.ok_or_else(|| cx.err(format!("{key}.p is missing (the loss probability)")))?;
    if !(0.0..=1.0).contains(&p) {
        return Err(cx.err(format!("{key}.p = {p} must be between 0 and 1")));
    }
    Ok(FaultKind::Loss { p })
}

fn inject(cx: &Ctx<'_>, key: &str, f: &RawFault) -> Result<FaultKind, ScenarioError> {
    let found = INJECTIONS
        .iter()
        .find(|(name, _)| Some(*name) == f.release.as_deref());
    match found {
        Some(&(_, injection)) => Ok(FaultKind::Inject(injection)),
        None => {
            let names: Vec<&str> = INJECTIONS.iter().map(|(name, _)| *name).collect();
            Err(cx.err(format!(
                "{key}.release = {:?} is not one of {}",
                f.release.as_deref(),
                names.join(", ")
            )))
        }
    }
}

fn sybil(cx: &Ctx<'_>, key: &str, f: &RawFault) -> Result<FaultKind, ScenarioError> {
    let identities = f.identities.unwrap_or(20);
    if !(1..=1000).contains(&identities) {
        return Err(cx.err(format!(
            "{key}.identities = {identities} must be between 1 and 1000"
        )));
    }
    Ok(FaultKind::Sybil { identities })
}

fn trickle(cx: &Ctx<'_>, key: &str, f: &RawFault) -> Result<FaultKind, ScenarioError> {
    let rate = match f.rate.as_deref() {
        Some(v) => cx.rate(&format!("{key}.rate"), v)?,
        None => 64 << 10,
    };
    Ok(FaultKind::Trickle { rate })
}

fn replay(cx: &Ctx<'_>, key: &str, f: &RawFault) -> Result<FaultKind, ScenarioError> {
    let period = match f.period.as_deref() {
        Some(v) => cx.dur(&format!("{key}.period"), v)?,
        None => 10_000_000_000,
    };
    if period == 0 {
        return Err(cx.err(format!("{key}.period must be above zero")));
    }
    Ok(FaultKind::Replay { period })
}

fn forge_flood(cx: &Ctx<'_>, key: &str, f: &RawFault) -> Result<FaultKind, ScenarioError> {
    let rate = f.per_second.unwrap_or(1.0);
    if !(rate > 0.0 && rate <= 1000.0) {
        return Err(cx.err(format!(
            "{key}.per_second = {rate} must be above 0 and at most 1000"
        )));
    }
    Ok(FaultKind::ForgeFlood { rate })
}
