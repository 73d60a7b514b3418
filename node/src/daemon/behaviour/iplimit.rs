//! Connections per remote IP address, so that one host cannot take every connection slot
//! with many identities (libp2p's `connection_limits` counts per peer id). Loopback addresses
//! are exempt: the demo and the process tests run whole farms on 127.0.0.1.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, DialFailure, FromSwarm, ListenFailure,
    NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};

/// Why a connection was denied.
#[derive(Debug, thiserror::Error)]
#[error("{ip} already has {max} connections, the most one address may hold")]
pub(crate) struct TooManyFromIp {
    ip: IpAddr,
    max: u32,
}

/// The counts behind [`IpLimit`]: pending inbound and established connections by address.
#[derive(Debug, Default)]
struct Counts {
    by_conn: HashMap<ConnectionId, IpAddr>,
    per_ip: HashMap<IpAddr, u32>,
}

impl Counts {
    /// Counts `conn` against `ip` unless the address already holds `max`.
    fn admit(&mut self, conn: ConnectionId, ip: IpAddr, max: u32) -> Result<(), TooManyFromIp> {
        if ip.is_loopback() || self.by_conn.contains_key(&conn) {
            return Ok(());
        }
        let n = self.per_ip.entry(ip).or_insert(0);
        if *n >= max {
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
            return Err(TooManyFromIp { ip, max });
        }
        *n += 1;
        self.by_conn.insert(conn, ip);
        Ok(())
    }

    fn release(&mut self, conn: ConnectionId) {
        let Some(ip) = self.by_conn.remove(&conn) else {
            return;
        };
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }
}

/// The IP address a multiaddr starts with, if any.
fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    match addr.iter().next()? {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    }
}

/// A behaviour that denies connections beyond `max` per remote IP address (inbound from the
/// moment they are accepted, outbound once established), loopback exempt.
#[derive(Debug)]
pub(crate) struct IpLimit {
    max: u32,
    counts: Counts,
}

impl IpLimit {
    pub(crate) fn new(max: u32) -> Self {
        IpLimit {
            max,
            counts: Counts::default(),
        }
    }

    fn admit(&mut self, conn: ConnectionId, remote: &Multiaddr) -> Result<(), ConnectionDenied> {
        match ip_of(remote) {
            Some(ip) => self
                .counts
                .admit(conn, ip, self.max)
                .map_err(ConnectionDenied::new),
            None => Ok(()),
        }
    }
}

impl NetworkBehaviour for IpLimit {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.admit(connection_id, remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _peer: PeerId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        // Counted when it was accepted; `admit` is a no-op for a connection it knows.
        self.admit(connection_id, remote)?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _peer: PeerId,
        addr: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.admit(connection_id, addr)?;
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        match event {
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. })
            | FromSwarm::DialFailure(DialFailure { connection_id, .. })
            | FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.counts.release(connection_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _conn: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(n: usize) -> ConnectionId {
        ConnectionId::new_unchecked(n)
    }

    #[test]
    fn one_address_holds_at_most_max_connections_whatever_its_identities() {
        let mut limit = IpLimit::new(2);
        let host: Multiaddr = "/ip4/10.0.0.7/tcp/4101".parse().unwrap();
        let other: Multiaddr = "/ip4/10.0.0.8/tcp/4101".parse().unwrap();
        assert!(limit.admit(conn(1), &host).is_ok());
        assert!(limit.admit(conn(1), &host).is_ok(), "counted once");
        assert!(limit.admit(conn(2), &host).is_ok());
        let denied = limit.admit(conn(3), &host).unwrap_err();
        let why = denied.downcast::<TooManyFromIp>().unwrap().to_string();
        assert_eq!(
            why,
            "10.0.0.7 already has 2 connections, the most one address may hold"
        );
        assert!(limit.admit(conn(4), &other).is_ok(), "another host");
        limit.counts.release(conn(1));
        assert!(limit.admit(conn(5), &host).is_ok(), "a slot freed");
        assert!(limit.admit(conn(6), &host).is_err());
        for c in [2, 4, 5, 6] {
            limit.counts.release(conn(c));
        }
        assert!(limit.counts.per_ip.is_empty() && limit.counts.by_conn.is_empty());
    }

    #[test]
    fn loopback_and_addresses_without_ip_are_exempt() {
        let mut limit = IpLimit::new(1);
        for (i, a) in ["/ip4/127.0.0.1/tcp/1", "/ip6/::1/tcp/1", "/dns4/x/tcp/1"]
            .iter()
            .enumerate()
        {
            let a: Multiaddr = a.parse().unwrap();
            for k in 0..5 {
                assert!(limit.admit(conn(10 * i + k), &a).is_ok(), "{a}");
            }
        }
        assert!(limit.counts.per_ip.is_empty());
    }
}
