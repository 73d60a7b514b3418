//! `bootswarm announce`: hands a signed release to a running node (`POST /v1/announce` on its
//! `--http` endpoint), which checks it like any release it hears and gossips it to the farm.

use std::path::PathBuf;
use std::time::Duration;

use bootswarm_protocol::release::MAX_RELEASE_SIZE;

use crate::error::{Error, Result};

/// Arguments of `bootswarm announce`.
#[derive(clap::Args, Debug, Clone)]
pub struct AnnounceArgs {
    /// The node's --http address, e.g. 127.0.0.1:9100 or http://127.0.0.1:9100.
    #[arg(long, value_name = "ADDR")]
    pub node: String,
    /// A signed release file, e.g. HUB_DIR/channels/<name>/<seq>.release.
    #[arg(long, value_name = "FILE")]
    pub release: PathBuf,
}

/// The node's answer: whether it took the release, and one sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// `accepted`, `current`, `refused` or `unavailable`.
    pub result: String,
    /// One sentence from the node.
    pub message: String,
}

/// Sends the release; an error when it cannot be read or the node cannot be reached.
pub async fn announce(node: &str, release: &std::path::Path) -> Result<Answer> {
    let bytes = crate::fsutil::read_capped(release, MAX_RELEASE_SIZE).map_err(|e| {
        Error::new(format!(
            "cannot read the release file {} ({e}); give a .release file written by bootswarm publish",
            release.display()
        ))
    })?;
    let base = if node.starts_with("http://") || node.starts_with("https://") {
        node.trim_end_matches('/').to_string()
    } else {
        format!("http://{node}")
    };
    let url = format!("{base}/v1/announce");
    let client = crate::tls::client_builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| Error::new(format!("cannot build an HTTP client ({e})")))?;
    let resp = client
        .post(&url)
        .header("content-type", "application/cbor")
        .body(bytes)
        .send()
        .await
        .map_err(|e| {
            Error::new(format!(
                "cannot reach the node at {url} ({e}); check --node and that the node runs with --http"
            ))
        })?;
    let status = resp.status();
    let body = resp.bytes().await.unwrap_or_default();
    let body: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
        Error::new(format!(
            "the node at {url} answered {status} without a JSON verdict; is it a bootswarm node?"
        ))
    })?;
    let text = |k: &str| body[k].as_str().unwrap_or_default().to_string();
    Ok(Answer {
        result: text("result"),
        message: text("message"),
    })
}

/// Runs `bootswarm announce`: prints the node's one-sentence answer; a refusal is an error.
pub fn run(args: AnnounceArgs) -> Result<()> {
    let rt = crate::task::runtime(crate::task::Runtime::Client)?;
    let answer = rt.block_on(announce(&args.node, &args.release))?;
    match answer.result.as_str() {
        "accepted" | "current" => {
            println!("{}", answer.message);
            Ok(())
        }
        "rate_limited" => Err(Error::new(answer.message)),
        _ => Err(Error::new(format!(
            "the node refused the release: {}",
            answer.message
        ))),
    }
}
