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
    let release = s
        .release
        .as_ref()
        .map(|(seq, root)| serde_json::json!({"channel": s.channel, "seq": seq, "root": root}));
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

/// The `/metrics` text.
pub(crate) fn metrics_text(s: &Snapshot) -> String {
    let mut o = String::new();
    let family = |o: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(
        &mut o,
        "bootswarm_bytes_received_total",
        "counter",
        "Block bytes received, by source (the hub or a peer).",
    );
    let _ = writeln!(
        o,
        "bootswarm_bytes_received_total{{source=\"hub\"}} {}",
        s.bytes_from_hub
    );
    for (peer, n) in &s.bytes_by_peer {
        let _ = writeln!(
            o,
            "bootswarm_bytes_received_total{{source=\"peer\",peer=\"{}\"}} {n}",
            label(peer)
        );
    }
    family(
        &mut o,
        "bootswarm_bytes_served_total",
        "counter",
        "Block bytes served to peers.",
    );
    let _ = writeln!(o, "bootswarm_bytes_served_total {}", s.bytes_served);
    family(
        &mut o,
        "bootswarm_blocks_served_total",
        "counter",
        "Blocks served to peers.",
    );
    let _ = writeln!(o, "bootswarm_blocks_served_total {}", s.blocks_served);
    family(
        &mut o,
        "bootswarm_blocks_verified_total",
        "counter",
        "Blocks received that verified against their CID and were stored.",
    );
    let _ = writeln!(o, "bootswarm_blocks_verified_total {}", s.blocks_verified);
    family(
        &mut o,
        "bootswarm_verification_failures_total",
        "counter",
        "Blocks received that did not verify, by source.",
    );
    for (source, n) in &s.failures {
        let _ = writeln!(
            o,
            "bootswarm_verification_failures_total{{source=\"{}\"}} {n}",
            label(source)
        );
    }
    family(
        &mut o,
        "bootswarm_peer_penalties_total",
        "counter",
        "Penalties given to peers (corrupt blocks, requests that ran out of time).",
    );
    for (peer, n) in &s.penalties {
        let _ = writeln!(
            o,
            "bootswarm_peer_penalties_total{{peer=\"{}\"}} {n}",
            label(peer)
        );
    }
    family(
        &mut o,
        "bootswarm_peers_banned",
        "gauge",
        "Peers banned for repeated faults.",
    );
    let _ = writeln!(o, "bootswarm_peers_banned {}", s.banned.len());
    family(&mut o, "bootswarm_peers", "gauge", "Connected peers.");
    let _ = writeln!(o, "bootswarm_peers {}", s.peers);
    family(
        &mut o,
        "bootswarm_release_seq",
        "gauge",
        "Sequence number of the current release (0 before one is accepted).",
    );
    let _ = writeln!(
        o,
        "bootswarm_release_seq {}",
        s.release.as_ref().map_or(0, |r| r.0)
    );
    family(
        &mut o,
        "bootswarm_booted",
        "gauge",
        "1 once the current release is booted.",
    );
    let _ = writeln!(o, "bootswarm_booted {}", u8::from(s.booted));
    family(
        &mut o,
        "bootswarm_have_bytes",
        "gauge",
        "Bytes of the release held.",
    );
    let _ = writeln!(o, "bootswarm_have_bytes {}", s.have_bytes);
    family(
        &mut o,
        "bootswarm_total_bytes",
        "gauge",
        "Bytes of the release known so far.",
    );
    let _ = writeln!(o, "bootswarm_total_bytes {}", s.total_bytes);
    family(
        &mut o,
        "bootswarm_installed_seq",
        "gauge",
        "Sequence number of the release TARGET/current points at (0 if none).",
    );
    let _ = writeln!(
        o,
        "bootswarm_installed_seq {}",
        s.installed.as_ref().map_or(0, |r| r.0)
    );
    family(
        &mut o,
        "bootswarm_releases_refused_total",
        "counter",
        "Releases refused (gossip, peers, announce), by reason.",
    );
    for (reason, n) in &s.refusals {
        let _ = writeln!(
            o,
            "bootswarm_releases_refused_total{{reason=\"{}\"}} {n}",
            label(reason)
        );
    }
    family(
        &mut o,
        "bootswarm_upgrade_rolled_back",
        "gauge",
        "1 when the last upgrade was rolled back.",
    );
    let _ = writeln!(
        o,
        "bootswarm_upgrade_rolled_back {}",
        u8::from(s.upgrade_failure.is_some())
    );
    family(
        &mut o,
        "bootswarm_hub_polls_total",
        "counter",
        "Release polls sent to the hub.",
    );
    let _ = writeln!(o, "bootswarm_hub_polls_total {}", s.hub_polls);
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
        let j = status_json(&s);
        assert_eq!(j["release"]["seq"], 3);
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
        assert!(m.contains("bootswarm_peer_penalties_total{peer=\"12D3bad\"} 2"));
    }
}
