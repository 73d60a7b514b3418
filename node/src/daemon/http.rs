//! The local HTTP endpoint: `GET /` (the farm page), `GET /status` (JSON), `GET /metrics`
//! (Prometheus text, documented in `docs/metrics.md`) and `POST /v1/announce` (a signed
//! release handed over by `bootswarm announce`, at most [`ANNOUNCE_RATE`] a second after a
//! burst of [`ANNOUNCE_BURST`]).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use bootswarm_protocol::release::MAX_RELEASE_SIZE;
use tokio::sync::{mpsc, oneshot};

use super::status::{AnnounceReply, AnnounceRequest, Shared, Snapshot};

fn read(shared: &Shared) -> Snapshot {
    shared
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// Announcements accepted per second, sustained.
pub(crate) const ANNOUNCE_RATE: f64 = 2.0;
/// Announcements accepted at once after a quiet period.
pub(crate) const ANNOUNCE_BURST: f64 = 5.0;

/// A token bucket counting announcements.
#[derive(Debug)]
struct RateLimit {
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    fn new(now: Instant) -> Self {
        RateLimit {
            tokens: ANNOUNCE_BURST,
            last: now,
        }
    }

    /// Whether one more announcement fits at `now`.
    fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * ANNOUNCE_RATE).min(ANNOUNCE_BURST);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Clone)]
struct AppState {
    shared: Shared,
    announce: mpsc::Sender<AnnounceRequest>,
    limit: Arc<Mutex<RateLimit>>,
}

/// The router of the local endpoint.
pub(crate) fn router(shared: Shared, announce: mpsc::Sender<AnnounceRequest>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route(
            "/v1/announce",
            post(announce_release).layer(DefaultBodyLimit::max(MAX_RELEASE_SIZE)),
        )
        .with_state(AppState {
            shared,
            announce,
            limit: Arc::new(Mutex::new(RateLimit::new(Instant::now()))),
        })
}

/// `POST /v1/announce`: 200 when accepted or current, 422 with the reason when refused, 429
/// beyond the rate limit.
async fn announce_release(
    State(app): State<AppState>,
    body: axum::body::Bytes,
) -> impl IntoResponse {
    let allowed = app
        .limit
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .allow(Instant::now());
    if !allowed {
        let wait = Duration::from_secs_f64(1.0 / ANNOUNCE_RATE).as_millis();
        return (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(serde_json::json!({"result": "rate_limited",
                "message": format!("too many announcements (at most {ANNOUNCE_RATE} a second); try again in {wait} ms")})),
        );
    }
    let (reply, answer) = oneshot::channel();
    let sent = app
        .announce
        .send(AnnounceRequest {
            bytes: body.to_vec(),
            reply,
        })
        .await;
    let answer = match sent {
        Ok(()) => answer.await.ok(),
        Err(_) => None,
    };
    let (code, json) = match answer {
        Some(AnnounceReply::Accepted(seq)) => (
            StatusCode::OK,
            serde_json::json!({"result": "accepted", "seq": seq,
                "message": format!("release seq {seq} was accepted and is being installed and gossiped")}),
        ),
        Some(AnnounceReply::Current(seq)) => (
            StatusCode::OK,
            serde_json::json!({"result": "current", "seq": seq,
                "message": format!("release seq {seq} is already this node's release; it was gossiped again")}),
        ),
        Some(AnnounceReply::Refused(kind, why)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            serde_json::json!({"result": "refused", "reason": kind.as_str(), "message": why}),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"result": "unavailable",
                "message": "the node is shutting down; try again"}),
        ),
    };
    (code, axum::Json(json))
}

/// The farm page: one self-contained document (inline CSS and JS, no external asset) that
/// refreshes itself from `/status`.
const PAGE: &str = include_str!("page.html");

async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
}

async fn status(State(app): State<AppState>) -> impl IntoResponse {
    axum::Json(status_json(&read(&app.shared)))
}

async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics_text(&read(&app.shared)),
    )
}

/// The `/status` document.
pub(crate) fn status_json(s: &Snapshot) -> serde_json::Value {
    let release = s.release.as_ref().map(|(seq, root)| {
        serde_json::json!({"channel": s.channel, "seq": seq, "root": root,
                "expires_in_secs": s.expires_in, "stale": s.stale})
    });
    serde_json::json!({
        "peer_id": s.peer_id,
        "channel": s.channel,
        "release": release,
        "booted": s.booted,
        "booted_after_secs": s.booted_after,
        "held_after_secs": s.held_after,
        "progress": {
            "have_blocks": s.have_blocks,
            "total_blocks": s.total_blocks,
            "have_bytes": s.have_bytes,
            "total_bytes": s.total_bytes,
        },
        "peers": s.peers,
        "handshakes_refused": s.handshakes_refused,
        "bytes_from_peers": s.bytes_from_peers,
        "bytes_from_hub": s.bytes_from_hub,
        "bytes_served": s.bytes_served,
        "uploads_refused": s.uploads_refused,
        "last_install": s.last_install.map(|t| serde_json::json!({
            "files": t.files,
            "bytes": t.bytes,
            "written_ahead": t.streamed,
        })),
        "store": {
            "bytes": s.store.bytes,
            "quota": s.store.limit,
            "pinned": s.store.pinned,
            "evicted": s.store.evicted,
        },
        "bytes_by_peer": s.bytes_by_peer,
        "bytes_to_peer": s.bytes_to_peer,
        "release_bytes_from_hub": s.release_bytes_from_hub,
        "blocks_verified": s.blocks_verified,
        "verification_failures": s.failures,
        "penalties": s.penalties,
        "banned": s.banned,
        "hub_only": s.hub_only,
        "installed": s.installed.as_ref().map(|(seq, root)| serde_json::json!({"seq": seq, "root": root})),
        "upgrade_failure": s.upgrade_failure,
        "releases_accepted": s.releases_accepted,
        "releases_refused": s.refusals,
        "last_refusal": s.last_refusal,
        "hub_polls": s.hub_polls,
        "polls_deferred": s.polls_deferred,
        "peer_table": s.peer_rows,
        "recent_refusals": s.recent_refusals,
        "recent_hooks": s.recent_hooks,
        "hook_runs": s.hook_runs.iter()
            .map(|((what, result), n)| (format!("{what} {result}"), *n))
            .collect::<std::collections::BTreeMap<_, _>>(),
        "farm": s.farm,
    })
}

/// Escapes a Prometheus label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One metric family of `/metrics`: its samples as (labels, value).
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, u64)>,
}

impl Family {
    fn one(name: &'static str, kind: &'static str, help: &'static str, value: u64) -> Family {
        Family {
            name,
            kind,
            help,
            samples: vec![(Vec::new(), value)],
        }
    }

    fn by<'a>(
        name: &'static str,
        kind: &'static str,
        help: &'static str,
        key: &'static str,
        values: impl IntoIterator<Item = (&'a String, &'a u64)>,
    ) -> Family {
        Family {
            name,
            kind,
            help,
            samples: values
                .into_iter()
                .map(|(k, v)| (vec![(key, k.clone())], *v))
                .collect(),
        }
    }
}

/// Every metric the node exports, from a snapshot.
fn families(s: &Snapshot) -> Vec<Family> {
    let mut received = Family::by(
        "bootswarm_bytes_received_total",
        "counter",
        "Block bytes received, by source (the hub or a peer).",
        "peer",
        &s.bytes_by_peer,
    );
    for (labels, _) in &mut received.samples {
        labels.insert(0, ("source", "peer".to_string()));
    }
    received
        .samples
        .insert(0, (vec![("source", "hub".to_string())], s.bytes_from_hub));
    vec![
        received,
        Family::one(
            "bootswarm_bytes_served_total",
            "counter",
            "Block bytes served to peers.",
            s.bytes_served,
        ),
        Family::one(
            "bootswarm_uploads_refused_total",
            "counter",
            "Block requests answered busy because of --upload-rate or --max-upload-peers.",
            s.uploads_refused,
        ),
        Family::one(
            "bootswarm_store_bytes",
            "gauge",
            "Block bytes in the store.",
            s.store.bytes,
        ),
        Family::one(
            "bootswarm_store_quota_bytes",
            "gauge",
            "The store's quota in bytes (0: none).",
            s.store.limit.unwrap_or(0),
        ),
        Family::one(
            "bootswarm_store_evictions_total",
            "counter",
            "Blocks evicted to keep the store within its quota.",
            s.store.evicted,
        ),
        Family::one(
            "bootswarm_blocks_served_total",
            "counter",
            "Blocks served to peers.",
            s.blocks_served,
        ),
        Family::one(
            "bootswarm_blocks_verified_total",
            "counter",
            "Blocks received that verified against their CID and were stored.",
            s.blocks_verified,
        ),
        Family::by(
            "bootswarm_verification_failures_total",
            "counter",
            "Blocks received that did not verify, by source.",
            "source",
            &s.failures,
        ),
        Family::by(
            "bootswarm_peer_penalties_total",
            "counter",
            "Penalties given to peers (corrupt blocks, requests that ran out of time).",
            "peer",
            &s.penalties,
        ),
        Family::one(
            "bootswarm_peers_banned",
            "gauge",
            "Peers banned for repeated faults.",
            s.banned.len() as u64,
        ),
        Family::one(
            "bootswarm_peers",
            "gauge",
            "Connected peers.",
            s.peers as u64,
        ),
        Family::one(
            "bootswarm_handshakes_refused_total",
            "counter",
            "Connections refused because the other end does not hold the swarm key.",
            s.handshakes_refused,
        ),
        Family::one(
            "bootswarm_release_seq",
            "gauge",
            "Sequence number of the current release (0 before one is accepted).",
            s.release.as_ref().map_or(0, |r| r.0),
        ),
        Family::one(
            "bootswarm_release_expires_in_seconds",
            "gauge",
            "Seconds until the current release expires (0 once it has, or before one is accepted).",
            s.expires_in.map_or(0, |e| e.max(0) as u64),
        ),
        Family::one(
            "bootswarm_release_stale",
            "gauge",
            "1 when the current release expires within two poll periods or there is none.",
            u64::from(s.stale),
        ),
        Family::one(
            "bootswarm_booted",
            "gauge",
            "1 once the current release is booted.",
            u64::from(s.booted),
        ),
        Family::one(
            "bootswarm_have_bytes",
            "gauge",
            "Bytes of the release held.",
            s.have_bytes,
        ),
        Family::one(
            "bootswarm_total_bytes",
            "gauge",
            "Bytes of the release known so far.",
            s.total_bytes,
        ),
        Family::one(
            "bootswarm_installed_seq",
            "gauge",
            "Sequence number of the release TARGET/current points at (0 if none).",
            s.installed.as_ref().map_or(0, |r| r.0),
        ),
        Family::by(
            "bootswarm_releases_refused_total",
            "counter",
            "Releases refused (gossip, peers, announce), by reason.",
            "reason",
            &s.refusals,
        ),
        Family::one(
            "bootswarm_upgrade_rolled_back",
            "gauge",
            "1 when the last upgrade was rolled back.",
            u64::from(s.upgrade_failure.is_some()),
        ),
        Family::one(
            "bootswarm_hub_polls_total",
            "counter",
            "Release polls sent to the hub.",
            s.hub_polls,
        ),
        Family {
            name: "bootswarm_hook_runs_total",
            kind: "counter",
            help: "Runs of the change hooks and the health check, by what ran and result.",
            samples: s
                .hook_runs
                .iter()
                .map(|((what, result), n)| {
                    (vec![("what", what.clone()), ("result", result.clone())], *n)
                })
                .collect(),
        },
        Family::one(
            "bootswarm_farm_nodes",
            "gauge",
            "Farm nodes heard from in the last three summary periods, this one included.",
            s.farm.nodes,
        ),
        Family::one(
            "bootswarm_farm_nodes_booted",
            "gauge",
            "Farm nodes booted on the newest release any of them reports.",
            s.farm.booted,
        ),
        Family::one(
            "bootswarm_farm_hub_bytes",
            "gauge",
            "Hub bytes the farm's nodes on the newest release report spending on it.",
            s.farm.hub_bytes,
        ),
    ]
}

/// The `/metrics` text.
pub(crate) fn metrics_text(s: &Snapshot) -> String {
    let mut o = String::new();
    for f in families(s) {
        let _ = writeln!(
            o,
            "# HELP {} {}\n# TYPE {} {}",
            f.name, f.help, f.name, f.kind
        );
        for (labels, value) in &f.samples {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
                .collect();
            if labels.is_empty() {
                let _ = writeln!(o, "{} {value}", f.name);
            } else {
                let _ = writeln!(o, "{}{{{}}} {value}", f.name, labels.join(","));
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    /// `docs/metrics.md`'s table: name -> (type, labels).
    fn documented() -> BTreeMap<String, (String, BTreeSet<String>)> {
        include_str!("../../../docs/metrics.md")
            .lines()
            .filter(|l| l.starts_with("| `bootswarm_"))
            .map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let labels = cells[3]
                    .split(',')
                    .map(|l| l.trim().trim_matches('`').to_string())
                    .filter(|l| !l.is_empty() && l != "—")
                    .collect();
                (
                    cells[1].trim_matches('`').to_string(),
                    (cells[2].to_string(), labels),
                )
            })
            .collect()
    }

    #[test]
    fn every_family_is_documented_with_its_type_and_labels() {
        let mut s = Snapshot::default();
        s.bytes_by_peer.insert("12D3peer".into(), 5);
        s.failures.insert("hub".into(), 1);
        s.penalties.insert("12D3peer".into(), 1);
        s.refusals.insert("rollback".into(), 1);
        s.hook_runs.insert(("upgrade".into(), "ok".into()), 1);
        let exported: BTreeMap<String, (String, BTreeSet<String>)> = families(&s)
            .into_iter()
            .map(|f| {
                let labels = f
                    .samples
                    .iter()
                    .flat_map(|(labels, _)| labels.iter().map(|(k, _)| (*k).to_string()))
                    .collect();
                (f.name.to_string(), (f.kind.to_string(), labels))
            })
            .collect();
        assert_eq!(exported, documented());
    }

    #[test]
    fn announcements_are_limited_to_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(t0);
        let allowed = (0..20).filter(|_| limit.allow(t0)).count();
        assert_eq!(allowed, ANNOUNCE_BURST as usize);
        assert!(!limit.allow(t0 + Duration::from_millis(100)));
        assert!(
            limit.allow(t0 + Duration::from_millis(500)),
            "one more after 1/rate"
        );
        assert!(!limit.allow(t0 + Duration::from_millis(500)));
        let later = t0 + Duration::from_secs(3600);
        let allowed = (0..20).filter(|_| limit.allow(later)).count();
        assert_eq!(
            allowed, ANNOUNCE_BURST as usize,
            "the burst does not grow while idle"
        );
    }

    /// Many announcements at once over HTTP: the burst is judged, the rest get 429.
    #[tokio::test]
    async fn the_endpoint_answers_429_beyond_the_limit() {
        let (tx, mut rx) = mpsc::channel::<AnnounceRequest>(4);
        tokio::spawn(async move {
            while let Some(req) = rx.recv().await {
                let _ = req.reply.send(AnnounceReply::Current(7));
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/announce", listener.local_addr().unwrap());
        let app = router(Shared::default(), tx);
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = crate::tls::client_builder().build().unwrap();
        let mut codes = Vec::new();
        for _ in 0..12 {
            let resp = client.post(&url).body(vec![1u8; 10]).send().await.unwrap();
            let code = resp.status().as_u16();
            let json: serde_json::Value =
                serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
            if code == 429 {
                assert_eq!(json["result"], "rate_limited", "{json}");
                let message = json["message"].as_str().unwrap();
                assert!(message.starts_with("too many announcements"), "{message}");
            }
            codes.push(code);
        }
        assert_eq!(&codes[..5], [200; 5]);
        assert!(
            codes[5..].iter().filter(|c| **c == 429).count() >= 5,
            "{codes:?}"
        );
    }

    #[test]
    fn status_and_metrics_carry_the_fields() {
        let mut s = Snapshot {
            channel: "prod".into(),
            release: Some((3, "bafyroot".into())),
            bytes_from_hub: 10,
            ..Snapshot::default()
        };
        s.failures.insert("12D3bad\"peer".into(), 2);
        s.penalties.insert("12D3bad".into(), 2);
        s.expires_in = Some(3600);
        s.stale = false;
        let j = status_json(&s);
        assert_eq!(j["release"]["seq"], 3);
        assert_eq!(j["release"]["expires_in_secs"], 3600);
        assert_eq!(j["release"]["stale"], false);
        assert_eq!(j["release"]["channel"], "prod");
        for key in [
            "booted",
            "progress",
            "peers",
            "bytes_from_peers",
            "bytes_from_hub",
            "bytes_served",
            "hub_only",
        ] {
            assert!(j.get(key).is_some(), "{key}");
        }
        s.installed = Some((2, "bafyold".into()));
        s.refusals.insert("bad_signature".into(), 1);
        let j = status_json(&s);
        assert_eq!(j["installed"]["seq"], 2);
        assert_eq!(j["releases_refused"]["bad_signature"], 1);
        let m = metrics_text(&s);
        assert!(m.contains("bootswarm_installed_seq 2"));
        assert!(m.contains("bootswarm_releases_refused_total{reason=\"bad_signature\"} 1"));
        assert!(m.contains("bootswarm_bytes_received_total{source=\"hub\"} 10"));
        assert!(m.contains("bootswarm_verification_failures_total{source=\"12D3bad\\\"peer\"} 2"));
        assert!(m.contains("bootswarm_release_seq 3"));
        assert!(m.contains("bootswarm_release_expires_in_seconds 3600"));
        assert!(m.contains("bootswarm_release_stale 0"));
        assert!(m.contains("bootswarm_peer_penalties_total{peer=\"12D3bad\"} 2"));
    }
}
