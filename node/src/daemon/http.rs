//! The local HTTP endpoint: `GET /status` (JSON), `GET /metrics` (Prometheus text) and
//! `POST /v1/announce` (a signed release handed over by `bootswarm announce`).

use std::fmt::Write as _;
use std::sync::PoisonError;

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

#[derive(Clone)]
struct AppState {
    shared: Shared,
    announce: mpsc::Sender<AnnounceRequest>,
}

/// The router of the local endpoint.
pub(crate) fn router(shared: Shared, announce: mpsc::Sender<AnnounceRequest>) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route(
            "/v1/announce",
            post(announce_release).layer(DefaultBodyLimit::max(MAX_RELEASE_SIZE)),
        )
        .with_state(AppState { shared, announce })
}

/// `POST /v1/announce`: 200 when accepted or current, 422 with the reason when refused.
async fn announce_release(
    State(app): State<AppState>,
    body: axum::body::Bytes,
) -> impl IntoResponse {
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
    use super::*;

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
