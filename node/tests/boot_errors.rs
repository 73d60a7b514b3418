//! Bad input to `bootswarm boot` and `bootswarm demo`: one sentence on stderr, non-zero exit,
//! nothing in the target.

mod boot_common;

use std::fs;
use std::net::TcpListener;

use boot_common::*;

/// A loopback port nothing listens on (bound, then closed).
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn unreachable_hub() {
    let dir = tempfile::tempdir().unwrap();
    let (_, trust) = keygen(dir.path(), "k");
    let url = format!("http://127.0.0.1:{}", closed_port());
    let target = dir.path().join("t");
    let out = boot(&url, CHANNEL, &trust, &dir.path().join("s"), &target);
    assert_one_sentence(&out, &url);
    assert_untouched(&target);
}

#[test]
fn malformed_hub_url() {
    let dir = tempfile::tempdir().unwrap();
    let (_, trust) = keygen(dir.path(), "k");
    let out = boot(
        "ftp//nowhere",
        CHANNEL,
        &trust,
        &dir.path().join("s"),
        &dir.path().join("t"),
    );
    assert_one_sentence(&out, "ftp//nowhere");
}

#[test]
fn unknown_channel() {
    let fx = Fixture::new();
    let target = fx.path("t");
    let out = boot(&fx.hub.url, "nosuch", &fx.trust, &fx.path("s"), &target);
    assert_one_sentence(&out, "'nosuch'");
    assert_untouched(&target);
}

#[test]
fn missing_and_bad_trust_files() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}", closed_port());
    let missing = dir.path().join("absent.pub");
    let out = boot(
        &url,
        CHANNEL,
        &missing,
        &dir.path().join("s"),
        &dir.path().join("t"),
    );
    assert_one_sentence(&out, "absent.pub");

    let garbage = dir.path().join("garbage.pub");
    fs::write(&garbage, "this is not a key\n").unwrap();
    let out = boot(
        &url,
        CHANNEL,
        &garbage,
        &dir.path().join("s"),
        &dir.path().join("t"),
    );
    assert_one_sentence(&out, "garbage.pub");

    // A directory where a file is expected (unreadable as a file, even for root).
    let out = boot(
        &url,
        CHANNEL,
        dir.path(),
        &dir.path().join("s"),
        &dir.path().join("t"),
    );
    assert_one_sentence(&out, &dir.path().display().to_string());
}

#[test]
fn release_signed_by_an_untrusted_key() {
    let fx = Fixture::new();
    let (_, stranger) = keygen(fx.dir.path(), "stranger.key");
    let target = fx.path("t");
    let out = boot(&fx.hub.url, CHANNEL, &stranger, &fx.path("s"), &target);
    assert_one_sentence(&out, CHANNEL);
    assert_untouched(&target);
}

#[test]
fn missing_store_parent_and_bad_target() {
    let fx = Fixture::new();
    let store = fx.path("no/such/parent/store");
    let out = boot(&fx.hub.url, CHANNEL, &fx.trust, &store, &fx.path("t"));
    assert_one_sentence(&out, "no/such/parent");
    assert_untouched(&fx.path("t"));

    let target = fx.path("missing/parent/target");
    let out = boot(&fx.hub.url, CHANNEL, &fx.trust, &fx.path("s"), &target);
    assert_one_sentence(&out, "missing/parent");

    let file = fx.path("a-file");
    fs::write(&file, b"x").unwrap();
    let out = boot(&fx.hub.url, CHANNEL, &fx.trust, &fx.path("s"), &file);
    assert_one_sentence(&out, "a-file");
    assert_eq!(fs::read(&file).unwrap(), b"x");
}

#[test]
fn out_of_range_concurrency() {
    let fx = Fixture::new();
    let out = run(&[
        "boot",
        "--hub",
        &fx.hub.url,
        "--channel",
        CHANNEL,
        "--trust",
        fx.trust.to_str().unwrap(),
        "--store",
        fx.path("s").to_str().unwrap(),
        "--into",
        fx.path("t").to_str().unwrap(),
        "--concurrency",
        "0",
    ]);
    assert_one_sentence(&out, "--concurrency");
    assert_untouched(&fx.path("t"));
}

#[test]
fn bad_demo_arguments() {
    let out = run(&["demo", "--nodes", "0"]);
    assert_one_sentence(&out, "--nodes");
    let out = run(&["demo", "--size", "lots"]);
    assert_one_sentence(&out, "'lots'");
    let out = run(&["demo", "--hub-rate", "fast"]);
    assert_one_sentence(&out, "'fast'");
    let out = run(&["demo", "--size", "10KiB"]);
    assert_one_sentence(&out, "--size");
}
