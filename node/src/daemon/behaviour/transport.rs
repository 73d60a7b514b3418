//! TCP + Noise + Yamux, optionally inside a libp2p private network (a pre-shared swarm key):
//! then every connection first exchanges nonces and encrypts everything with the key, so a
//! host without it fails the very first negotiation and never reaches Noise.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use libp2p::futures::{AsyncRead, AsyncWrite, TryFutureExt};

use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::core::upgrade::{NegotiationError, Version};
use libp2p::pnet::{PnetConfig, PreSharedKey};
use libp2p::{PeerId, Transport, identity, noise, tcp, yamux};

use crate::error::{Error, Result};

/// Connections refused because the other end does not hold this node's swarm key: its
/// private-network handshake failed, or what followed it was not a protocol negotiation (the
/// bytes decrypted with another key, or with none).
#[derive(Debug, Clone, Default)]
pub(crate) struct Refused(Arc<AtomicU64>);

impl Refused {
    fn count(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Connections refused so far.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The node's transport; with `psk`, a private network whose refusals go to `refused`.
pub(crate) fn build(
    key: &identity::Keypair,
    psk: Option<PreSharedKey>,
    refused: &Refused,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>> {
    let noise = noise::Config::new(key)
        .map_err(|e| Error::new(format!("cannot set up Noise encryption ({e})")))?;
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
    let Some(psk) = psk else {
        return Ok(tcp
            .upgrade(Version::V1Lazy)
            .authenticate(noise)
            .multiplex(yamux::Config::default())
            .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
            .boxed());
    };
    let refused = refused.clone();
    Ok(tcp
        .and_then(move |socket, _| {
            PnetConfig::new(psk)
                .handshake(socket)
                .map_ok(|stream| Negotiation {
                    inner: stream,
                    checked: 0,
                })
        })
        // Not lazy: a dialer waits for the listener to confirm the first protocol, so a
        // listener holding another key fails the negotiation on this side too.
        .upgrade(Version::V1)
        .authenticate(noise)
        .multiplex(yamux::Config::default())
        .map_err(move |e| {
            // Either<Either<Either<tcp, pnet>, security upgrade>, multiplexer upgrade>
            let before_muxer = e.as_ref().left();
            let pnet = before_muxer
                .and_then(|e| e.as_ref().left())
                .and_then(|e| e.as_ref().right());
            let select = before_muxer
                .and_then(|e| e.as_ref().right())
                .and_then(std::error::Error::source)
                .is_some_and(|cause| cause.is::<NegotiationError>());
            if pnet.is_some() || select {
                refused.count();
            }
            e
        })
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
        .boxed())
}

/// What both ends of a connection send first once the private-network handshake is done:
/// the multistream-select header (a uvarint length, then the line).
const MULTISTREAM_HEADER: &[u8] = b"\x13/multistream/1.0.0\n";

/// A stream whose first bytes read must be [`MULTISTREAM_HEADER`]: bytes encrypted with
/// another key (or none) decrypt to noise, which is refused at once instead of being read as
/// a frame length and waited on until the connection times out.
#[derive(Debug)]
struct Negotiation<S> {
    inner: S,
    /// Bytes of the header checked so far.
    checked: usize,
}

impl<S: AsyncRead + Unpin> AsyncRead for Negotiation<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let from = self.checked;
        if from < MULTISTREAM_HEADER.len() {
            let k = n.min(MULTISTREAM_HEADER.len() - from);
            if buf[..k] != MULTISTREAM_HEADER[from..from + k] {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the other end does not hold this swarm key",
                )));
            }
            self.checked += k;
        }
        Poll::Ready(Ok(n))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Negotiation<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use libp2p::futures::{AsyncReadExt, executor::block_on, io::Cursor};

    use super::*;

    fn read_all(bytes: &[u8]) -> io::Result<Vec<u8>> {
        let mut s = Negotiation {
            inner: Cursor::new(bytes.to_vec()),
            checked: 0,
        };
        let mut out = Vec::new();
        let mut piece = [0u8; 7];
        loop {
            match block_on(s.read(&mut piece))? {
                0 => return Ok(out),
                n => out.extend_from_slice(&piece[..n]),
            }
        }
    }

    #[test]
    fn the_negotiation_must_start_with_the_header() {
        let mut good = MULTISTREAM_HEADER.to_vec();
        good.extend_from_slice(b"\x07/noise\n");
        assert_eq!(
            read_all(&good).unwrap(),
            good,
            "read in pieces across the header"
        );
        let mut noise = good.clone();
        noise[9] ^= 0x20;
        let err = read_all(&noise).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(
            read_all(b"\x13/multi").is_ok(),
            "a short read is not refused"
        );
    }
}
