//! `bootswarm status` and `bootswarm top`: a running node's state at a glance, from its
//! `--http` endpoint, on one screen (or as the raw JSON).

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::units::format_size;

/// The address `bootswarm status` asks when none is given (`bootswarm run --http` on it).
pub const DEFAULT_NODE: &str = "127.0.0.1:4180";
/// Largest `/status` document read.
const MAX_STATUS: usize = 1 << 20;
/// Peers listed by name; the rest are summed.
const PEERS_SHOWN: usize = 8;

/// Arguments of `bootswarm status`.
#[derive(clap::Args, Debug, Clone)]
pub struct StatusArgs {
    /// The node's --http address, e.g. 127.0.0.1:4180 or http://10.0.0.5:4180.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_NODE)]
    pub node: String,
    /// Print the node's /status document as JSON instead of the summary.
    #[arg(long, conflicts_with = "watch")]
    pub json: bool,
    /// Redraw every SECONDS until interrupted (`bootswarm top` is `--watch 1`).
    #[arg(long, value_name = "SECONDS")]
    pub watch: Option<u64>,
}

/// Arguments of `bootswarm top`.
#[derive(clap::Args, Debug, Clone)]
pub struct TopArgs {
    /// The node's --http address.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_NODE)]
    pub node: String,
}

fn base_url(node: &str) -> String {
    if node.starts_with("http://") || node.starts_with("https://") {
        node.trim_end_matches('/').to_string()
    } else {
        format!("http://{node}")
    }
}

/// Reads the node's `/status`.
pub async fn fetch(client: &reqwest::Client, node: &str) -> Result<Value> {
    let url = format!("{}/status", base_url(node));
    let unreachable = |e: &dyn std::fmt::Display| {
        Error::new(format!(
            "cannot read {url} ({e}); check --node and that the node runs with --http {DEFAULT_NODE} or another address"
        ))
    };
    let resp = client.get(&url).send().await.map_err(|e| unreachable(&e))?;
    if !resp.status().is_success() {
        return Err(unreachable(&resp.status()));
    }
    let body = resp.bytes().await.map_err(|e| unreachable(&e))?;
    if body.len() > MAX_STATUS {
        return Err(Error::new(format!(
            "{url} answered {} bytes, more than a status document; is it a bootswarm node?",
            body.len()
        )));
    }
    serde_json::from_slice(&body).map_err(|_| {
        Error::new(format!(
            "{url} did not answer a JSON status document; is it a bootswarm node?"
        ))
    })
}

/// Runs `bootswarm status`.
pub fn run(args: StatusArgs) -> Result<()> {
    let rt = crate::task::runtime(crate::task::Runtime::Client)?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| Error::new(format!("cannot build an HTTP client ({e})")))?;
    let Some(every) = args.watch else {
        let status = rt.block_on(fetch(&client, &args.node))?;
        if args.json {
            println!("{status}");
        } else {
            print!("{}", render(&status, &args.node));
        }
        return Ok(());
    };
    let every = Duration::from_secs(every.max(1));
    loop {
        let screen = match rt.block_on(fetch(&client, &args.node)) {
            Ok(status) => render(&status, &args.node),
            Err(e) => format!("{e}\n"),
        };
        // Clear the screen and draw from the top left.
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\x1b[2J\x1b[H{screen}");
        let _ = out.flush();
        drop(out);
        std::thread::sleep(every);
    }
}

/// Runs `bootswarm top`.
pub fn top(args: TopArgs) -> Result<()> {
    run(StatusArgs {
        node: args.node,
        json: false,
        watch: Some(1),
    })
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn secs(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".to_string(), |s| format!("{s:.1} s"))
}

fn duration(s: i64) -> String {
    let a = s.unsigned_abs();
    let text = match a {
        0..=119 => format!("{a} s"),
        120..=7199 => format!("{} min", a / 60),
        7200..=172_799 => format!("{} h", a / 3600),
        _ => format!("{} days", a / 86_400),
    };
    if s < 0 {
        format!("{text} ago")
    } else {
        format!("in {text}")
    }
}

fn short(id: &str) -> String {
    if id.len() > 16 {
        format!("{}…{}", &id[..8], &id[id.len() - 6..])
    } else {
        id.to_string()
    }
}

/// The one-screen summary of a `/status` document.
pub fn render(s: &Value, node: &str) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "bootswarm node {} at {node}",
        short(s["peer_id"].as_str().unwrap_or("?"))
    );
    render_release(&mut o, s);
    render_traffic(&mut o, s);
    render_peers(&mut o, s);
    render_refusals(&mut o, s);
    o
}

fn render_release(o: &mut String, s: &Value) {
    let r = &s["release"];
    if r.is_null() {
        let _ = writeln!(o, "release   none yet (waiting for the hub or a peer)");
    } else {
        let expiry = r["expires_in_secs"]
            .as_i64()
            .map_or_else(String::new, |e| format!(", expires {}", duration(e)));
        let stale = if r["stale"].as_bool() == Some(true) {
            "  STALE: polling the hub"
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "release   {} seq {} root {}{expiry}{stale}",
            r["channel"].as_str().unwrap_or("?"),
            u(&r["seq"]),
            short(r["root"].as_str().unwrap_or("?")),
        );
    }
    let p = &s["progress"];
    let (have, total) = (u(&p["have_bytes"]), u(&p["total_bytes"]));
    let state = if s["booted"].as_bool() == Some(true) {
        format!("booted after {}", secs(&s["booted_after_secs"]))
    } else if total > 0 {
        let pct = have as f64 * 100.0 / total as f64;
        format!(
            "booting: {} of {} ({pct:.0} %), {}/{} blocks",
            format_size(have),
            format_size(total),
            u(&p["have_blocks"]),
            u(&p["total_blocks"])
        )
    } else {
        "not booting".to_string()
    };
    let _ = writeln!(o, "state     {state}");
    match &s["installed"] {
        Value::Null => {}
        i => {
            let _ = writeln!(o, "installed seq {} (TARGET/current)", u(&i["seq"]));
        }
    }
    if let Some(f) = s["upgrade_failure"].as_object() {
        let _ = writeln!(
            o,
            "FAILED    seq {}: {}",
            f.get("seq").map_or(0, u),
            f.get("reason").and_then(Value::as_str).unwrap_or("?")
        );
    }
}

fn render_traffic(o: &mut String, s: &Value) {
    let (hub, peers) = (u(&s["bytes_from_hub"]), u(&s["bytes_from_peers"]));
    let share = if hub + peers > 0 {
        format!(
            " ({:.0} % from peers)",
            peers as f64 * 100.0 / (hub + peers) as f64
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        o,
        "received  {} from the hub, {} from peers{share}; served {} to peers",
        format_size(hub),
        format_size(peers),
        format_size(u(&s["bytes_served"]))
    );
    let _ = writeln!(
        o,
        "hub polls {} ({} periods left to the farm)",
        u(&s["hub_polls"]),
        u(&s["polls_deferred"])
    );
}

fn render_peers(o: &mut String, s: &Value) {
    let _ = writeln!(o, "peers     {} connected", u(&s["peers"]));
    let mut by_peer: Vec<(String, u64)> = s["bytes_by_peer"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), u(v))).collect())
        .unwrap_or_default();
    by_peer.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let banned: Vec<&str> = s["banned"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (peer, bytes) in by_peer.iter().take(PEERS_SHOWN) {
        let flag = if banned.contains(&peer.as_str()) {
            "  banned"
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "  {:<22} sent us {}{flag}",
            short(peer),
            format_size(*bytes)
        );
    }
    if by_peer.len() > PEERS_SHOWN {
        let rest: u64 = by_peer[PEERS_SHOWN..].iter().map(|p| p.1).sum();
        let _ = writeln!(
            o,
            "  and {} more peers     sent us {}",
            by_peer.len() - PEERS_SHOWN,
            format_size(rest)
        );
    }
    if !banned.is_empty() {
        let names: Vec<String> = banned.iter().map(|b| short(b)).collect();
        let _ = writeln!(o, "banned    {}", names.join(", "));
    }
}

fn render_refusals(o: &mut String, s: &Value) {
    let refused: u64 = s["releases_refused"]
        .as_object()
        .map(|m| m.values().map(u).sum())
        .unwrap_or(0);
    if refused > 0 {
        let _ = writeln!(
            o,
            "refused   {refused} releases; last: {}",
            s["last_refusal"].as_str().unwrap_or("-")
        );
    }
    let failures: u64 = s["verification_failures"]
        .as_object()
        .map(|m| m.values().map(u).sum())
        .unwrap_or(0);
    if failures > 0 {
        let _ = writeln!(
            o,
            "corrupt   {failures} blocks failed verification and were thrown away"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_release_progress_traffic_and_trouble() {
        let s = serde_json::json!({
            "peer_id": "12D3KooWAbCdEfGhIjKlMnOpQrStUvWxYz",
            "release": {"channel": "prod", "seq": 7, "root": "bafyreiabcdefghijklmnop",
                        "expires_in_secs": 86_400 * 3, "stale": false},
            "booted": false,
            "progress": {"have_blocks": 10, "total_blocks": 40,
                         "have_bytes": 64 << 20, "total_bytes": 256 << 20},
            "peers": 3,
            "bytes_from_hub": 16 << 20, "bytes_from_peers": 48 << 20, "bytes_served": 1 << 20,
            "bytes_by_peer": {"12D3KooWpeerA": 40 << 20, "12D3KooWpeerB": 8 << 20},
            "banned": ["12D3KooWpeerB"],
            "hub_polls": 1, "polls_deferred": 4,
            "releases_refused": {"bad_signature": 2},
            "last_refusal": "release signature by trusted key ab does not verify",
            "verification_failures": {"12D3KooWpeerB": 3},
            "upgrade_failure": {"seq": 6, "reason": "the health check failed"},
            "installed": {"seq": 5, "root": "bafyold"},
        });
        let text = render(&s, "127.0.0.1:4180");
        for needle in [
            "prod seq 7",
            "expires in 3 days",
            "booting: 64.00 MiB of 256.00 MiB (25 %), 10/40 blocks",
            "(75 % from peers)",
            "3 connected",
            "banned",
            "refused   2 releases",
            "3 blocks failed verification",
            "FAILED    seq 6: the health check failed",
            "installed seq 5",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
        }
        let none = render(&serde_json::json!({"peer_id": "x", "release": null}), "n");
        assert!(none.contains("none yet"), "{none}");
        assert_eq!(duration(-90), "90 s ago");
        assert_eq!(duration(7200), "in 2 h");
    }
}
