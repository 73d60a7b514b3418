//! `bootswarm demo --rfs`: the sample packages packed as rfs v2 flists, their blocks put into a
//! local RESP store (`redis-server`, the 0-db stand-in), imported into the hub; the farm then
//! boots rfs content, fetching each block no peer has from that store.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bootswarm_protocol::manifest::Route;

use crate::error::{Error, Result};
use crate::import::{ImportOptions, import};
use crate::publish::{PublishOptions, Published};
use crate::rfs::pack::pack;
use crate::rfs::resp;

/// A `redis-server` on loopback without persistence; stopped on drop.
#[derive(Debug)]
pub(crate) struct RespStore {
    child: Child,
    port: u16,
}

impl Drop for RespStore {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn missing() -> Error {
    Error::new(
        "bootswarm demo --rfs needs redis-server (the 0-db stand-in) on PATH, and it is not installed; install it (apt-get install redis-server) or run the demo without --rfs",
    )
}

/// Whether `redis-server` can be run (checked before anything is generated).
pub(crate) fn check_available() -> Result<()> {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()
        .filter(|s| s.success())
        .map(|_| ())
        .ok_or_else(missing)
}

impl RespStore {
    fn start(dir: &Path) -> Result<RespStore> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| Error::new(format!("cannot find a free port for redis-server ({e})")))?
            .port();
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::new(format!("cannot create {} ({e})", dir.display())))?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|_| missing())?;
        let store = RespStore { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(Error::new("redis-server did not start within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(store)
    }

    /// The store's URL for the rfs routes.
    pub(crate) fn url(&self) -> String {
        format!("zdb://127.0.0.1:{}", self.port)
    }

    /// Stores every block (`SET id stored`), pipelined.
    fn put_all(&self, blocks: &HashMap<[u8; 32], Vec<u8>>) -> Result<()> {
        let failed =
            |e: String| Error::new(format!("cannot store the blocks in redis-server ({e})"));
        let conn =
            TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| failed(e.to_string()))?;
        let mut reader = BufReader::new(conn.try_clone().map_err(|e| failed(e.to_string()))?);
        let mut writer = std::io::BufWriter::new(conn);
        for batch in blocks.iter().collect::<Vec<_>>().chunks(64) {
            for (id, stored) in batch {
                writer
                    .write_all(&resp::command(&[b"SET", &id[..], stored]))
                    .map_err(|e| failed(e.to_string()))?;
            }
            writer.flush().map_err(|e| failed(e.to_string()))?;
            for _ in 0..batch.len() {
                let mut line = String::new();
                reader
                    .read_line(&mut line)
                    .map_err(|e| failed(e.to_string()))?;
                if line != "+OK\r\n" {
                    return Err(failed(format!("SET answered {:?}", line.trim())));
                }
            }
        }
        Ok(())
    }
}

/// What the rfs variant of the demo set up.
#[derive(Debug)]
pub(crate) struct RfsRelease {
    /// The store serving the blocks; stop it when the farm is done.
    pub(crate) store: RespStore,
    /// The import.
    pub(crate) published: Published,
    /// Stored bytes of the distinct rfs blocks.
    pub(crate) stored_bytes: u64,
    /// Distinct rfs blocks.
    pub(crate) blocks: usize,
}

/// Packs `packages` into `.fl` files routed to a new local RESP store holding their blocks and
/// imports them into `hub_dir`.
pub(crate) async fn release(
    work: &Path,
    hub_dir: &Path,
    packages: &[PathBuf],
    publish: PublishOptions,
) -> Result<RfsRelease> {
    let store = RespStore::start(&work.join("resp"))?;
    let routes = [Route {
        start: 0,
        end: 255,
        url: store.url(),
    }];
    let fl_dir = work.join("fl");
    std::fs::create_dir_all(&fl_dir)
        .map_err(|e| Error::new(format!("cannot create {} ({e})", fl_dir.display())))?;
    let mut blocks = HashMap::new();
    let mut fls = Vec::with_capacity(packages.len());
    for p in packages {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::new(format!("{} has no usable name", p.display())))?;
        let fl = fl_dir.join(format!("{name}.fl"));
        pack(p, &fl, &routes, Some("demo"), &mut |id, stored| {
            blocks.entry(*id).or_insert_with(|| stored.to_vec());
            Ok(())
        })?;
        fls.push((name.to_string(), fl.display().to_string()));
    }
    store.put_all(&blocks)?;
    let opts = ImportOptions {
        publish,
        verify: false,
        upstreams: Vec::new(),
        tls: crate::tls::Tls::default(),
    };
    let imported = import(hub_dir, &fls, &opts).await?;
    Ok(RfsRelease {
        store,
        published: imported.published,
        stored_bytes: blocks.values().map(|b| b.len() as u64).sum(),
        blocks: blocks.len(),
    })
}
