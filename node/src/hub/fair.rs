//! The hub's egress limit shared fairly among clients: every body slice waits for a grant
//! from one pacer, which grants at the link rate in start-time fair queuing order over the
//! clients (remote IP addresses), so a client with many requests in flight gets the same share
//! as a client with one.
//!
//! Each client's slices are stamped in bytes of its own service: a slice starts where the
//! client's previous one finished, or at the virtual time (the start of the slice last
//! granted) if the client was idle; the waiting slice that starts first is granted next.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Bytes a response body sends per grant.
pub const SLICE: usize = 64 * 1024;

/// One slice waiting for its grant.
#[derive(Debug)]
struct Waiter {
    bytes: u64,
    grant: oneshot::Sender<()>,
}

/// A client's place in the fair order.
#[derive(Debug, Default, Clone, Copy)]
struct Client {
    /// Where its last slice finishes, in virtual bytes.
    finish: u64,
    /// Its slices waiting.
    waiting: usize,
}

/// The waiting slices in grant order and the clients' stamps. A client is remembered while it
/// has a slice waiting or its last one finishes after the virtual time, and none once no slice
/// waits.
#[derive(Debug, Default)]
struct Queues {
    /// By (start, arrival).
    waiting: BTreeMap<(u64, u64), (IpAddr, Waiter)>,
    clients: BTreeMap<IpAddr, Client>,
    virtual_time: u64,
    arrivals: u64,
}

impl Queues {
    fn push(&mut self, client: IpAddr, waiter: Waiter) {
        let c = self.clients.entry(client).or_default();
        let start = c.finish.max(self.virtual_time);
        c.finish = start.saturating_add(waiter.bytes);
        c.waiting += 1;
        self.waiting
            .insert((start, self.arrivals), (client, waiter));
        self.arrivals += 1;
    }

    /// The next slice to grant.
    fn pop(&mut self) -> Option<Waiter> {
        let ((start, _), (client, waiter)) = self.waiting.pop_first()?;
        self.virtual_time = start;
        if let Some(c) = self.clients.get_mut(&client) {
            c.waiting = c.waiting.saturating_sub(1);
        }
        if self.waiting.is_empty() {
            // Nothing waits: every client starts afresh, at no disadvantage to another.
            self.clients.clear();
            self.virtual_time = 0;
        } else if self.clients.len() > 2 * self.waiting.len() + 16 {
            let now = self.virtual_time;
            self.clients.retain(|_, c| c.waiting > 0 || c.finish > now);
        }
        Some(waiter)
    }
}

#[derive(Debug)]
struct Shared {
    queues: Mutex<Queues>,
    wake: Notify,
}

impl Shared {
    fn queues(&self) -> std::sync::MutexGuard<'_, Queues> {
        // Each use leaves the queues consistent, so they are usable after a panic.
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An egress limit of `rate` bytes per second (after a burst), shared fairly among clients.
#[derive(Debug)]
pub struct FairShare {
    rate: u64,
    shared: Arc<Shared>,
    pacer: JoinHandle<()>,
}

impl FairShare {
    /// Starts the pacer on the current tokio runtime.
    pub fn new(rate: u64) -> FairShare {
        let rate = rate.max(1);
        let shared = Arc::new(Shared {
            queues: Mutex::new(Queues::default()),
            wake: Notify::new(),
        });
        let burst = (4 * SLICE as u64).max(rate / 100);
        let pacer = tokio::spawn(pace(Arc::clone(&shared), rate, burst));
        FairShare {
            rate,
            shared,
            pacer,
        }
    }

    /// The rate in bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Waits until `client` may send `bytes` (at most a slice).
    pub async fn take(&self, client: IpAddr, bytes: u64) {
        let (grant, granted) = oneshot::channel();
        self.shared.queues().push(client, Waiter { bytes, grant });
        self.shared.wake.notify_one();
        let _ = granted.await;
    }
}

impl Drop for FairShare {
    fn drop(&mut self) {
        self.pacer.abort();
    }
}

/// Grants slices one at a time, each paid for at `rate` after it is granted; an idle link
/// saves up at most `burst` bytes. A slice whose taker is gone costs nothing.
async fn pace(shared: Arc<Shared>, rate: u64, burst: u64) {
    let burst = Duration::from_secs_f64(burst as f64 / rate as f64);
    let mut paid_until = Instant::now();
    loop {
        let next = shared.queues().pop();
        let Some(waiter) = next else {
            shared.wake.notified().await;
            continue;
        };
        if waiter.grant.send(()).is_err() {
            continue;
        }
        let now = Instant::now();
        let earliest = now.checked_sub(burst).unwrap_or(now);
        paid_until =
            paid_until.max(earliest) + Duration::from_secs_f64(waiter.bytes as f64 / rate as f64);
        if paid_until > now {
            tokio::time::sleep_until(paid_until).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: u64 = SLICE as u64;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    fn next_client(q: &Queues) -> Option<IpAddr> {
        q.waiting.first_key_value().map(|(_, (client, _))| *client)
    }

    fn push(q: &mut Queues, client: u8, bytes: u64, keep: &mut Vec<oneshot::Receiver<()>>) {
        let (grant, rx) = oneshot::channel();
        q.push(ip(client), Waiter { bytes, grant });
        keep.push(rx);
    }

    #[test]
    fn a_client_with_one_request_at_a_time_gets_as_much_as_one_with_eight() {
        let mut q = Queues::default();
        let mut keep = Vec::new();
        // The greedy client (1) keeps 8 slices waiting, the modest one (2) queues its next
        // slice only once the last one was granted.
        for _ in 0..8 {
            push(&mut q, 1, Q, &mut keep);
        }
        push(&mut q, 2, Q, &mut keep);
        let mut granted = [0u64; 3];
        for _ in 0..1000 {
            let client = next_client(&q).unwrap();
            let w = q.pop().unwrap();
            let who = if client == ip(1) { 1 } else { 2 };
            granted[who] += w.bytes;
            push(&mut q, who as u8, Q, &mut keep);
        }
        let ratio = granted[2] as f64 / granted[1] as f64;
        assert!((ratio - 1.0).abs() < 0.01, "{granted:?}");
        assert!(q.clients.len() <= 2);
    }

    #[test]
    fn shares_are_counted_in_bytes_not_in_slices() {
        let mut q = Queues::default();
        let mut keep = Vec::new();
        for _ in 0..16 {
            push(&mut q, 1, Q / 4, &mut keep);
        }
        for _ in 0..4 {
            push(&mut q, 2, Q, &mut keep);
        }
        let (mut a, mut b) = (0i64, 0i64);
        while let Some(client) = next_client(&q) {
            let bytes = q.pop().unwrap().bytes as i64;
            if client == ip(1) {
                a += bytes;
            } else {
                b += bytes;
            }
            assert!((a - b).abs() <= Q as i64, "{a} vs {b}");
        }
        assert_eq!((a, b), (4 * Q as i64, 4 * Q as i64));
    }

    #[test]
    fn idle_clients_are_forgotten() {
        let mut q = Queues::default();
        let mut keep = Vec::new();
        for c in 0..100 {
            push(&mut q, c, Q, &mut keep);
        }
        while q.pop().is_some() {}
        assert!(q.clients.is_empty());
        // Under load, clients that sent once are swept as the virtual time passes them.
        for _ in 0..50 {
            push(&mut q, 200, Q, &mut keep);
        }
        for c in 0..100 {
            push(&mut q, c, Q, &mut keep);
            q.pop();
        }
        assert!(
            q.clients.len() <= 2 * q.waiting.len() + 17,
            "{}",
            q.clients.len()
        );
    }
}
