//! Length-capped request-response codecs: a message is the whole stream up to its end, and
//! neither side ever reads more than the protocol's cap.

use std::io;

use libp2p::StreamProtocol;
use libp2p::futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::request_response::Codec;

use bootswarm_protocol::agent::MAX_MESSAGE_SIZE;
use bootswarm_protocol::block::MAX_BLOCK_SIZE;
use bootswarm_protocol::release::{MAX_CHANNEL_LEN, MAX_RELEASE_SIZE};

/// Block protocol: the request is a CID's bytes.
pub(crate) const BLOCK_PROTOCOL: StreamProtocol = StreamProtocol::new("/bootswarm/block/1");
/// Control protocol: the request is one encoded agent message, the response is empty.
pub(crate) const CONTROL_PROTOCOL: StreamProtocol = StreamProtocol::new("/bootswarm/control/1");
/// Release protocol: the request is a channel name, the response the peer's current signed
/// release for it (empty when it has none).
pub(crate) const RELEASE_PROTOCOL: StreamProtocol = StreamProtocol::new("/bootswarm/release/1");

/// Longest block request (a CIDv1 with a sha2-256 digest is 36 bytes).
pub(crate) const MAX_BLOCK_REQUEST: usize = 100;
/// Longest block response: one status byte and the block.
pub(crate) const MAX_BLOCK_RESPONSE: usize = 1 + MAX_BLOCK_SIZE;

/// Status byte of a block response that carries the block.
pub(crate) const STATUS_OK: u8 = 0;
/// Status byte: the server is at its upload limit.
pub(crate) const STATUS_BUSY: u8 = 1;
/// Status byte: the server does not have the block.
pub(crate) const STATUS_NOT_FOUND: u8 = 2;
/// Status byte: any other refusal.
pub(crate) const STATUS_OTHER: u8 = 3;

/// Blocks: CID bytes in, status byte plus block out.
pub(crate) type BlockCodec = CappedCodec<MAX_BLOCK_REQUEST, MAX_BLOCK_RESPONSE>;
/// Control: an agent message in, nothing out.
pub(crate) type ControlCodec = CappedCodec<MAX_MESSAGE_SIZE, 0>;
/// Releases: a channel name in, a signed release (or nothing) out.
pub(crate) type ReleaseCodec = CappedCodec<MAX_CHANNEL_LEN, MAX_RELEASE_SIZE>;

/// Requests and responses are raw bytes, at most `REQ` and `RESP` of them.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CappedCodec<const REQ: usize, const RESP: usize>;

/// Reads the rest of the stream, refusing it once it exceeds `cap` bytes.
async fn read_capped<T>(io: &mut T, cap: usize) -> io::Result<Vec<u8>>
where
    T: AsyncRead + Unpin + Send,
{
    let mut buf = Vec::new();
    io.take(cap as u64 + 1).read_to_end(&mut buf).await?;
    if buf.len() > cap {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("message over the {cap}-byte limit"),
        ));
    }
    Ok(buf)
}

async fn write_capped<T>(io: &mut T, bytes: &[u8], cap: usize) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
{
    if bytes.len() > cap {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("message over the {cap}-byte limit"),
        ));
    }
    io.write_all(bytes).await
}

impl<const REQ: usize, const RESP: usize> Codec for CappedCodec<REQ, RESP> {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_capped(io, REQ).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_capped(io, RESP).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_capped(io, &req, REQ).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_capped(io, &res, RESP).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::futures::executor::block_on;
    use libp2p::futures::io::Cursor;

    #[test]
    fn reads_up_to_the_cap_and_refuses_more() {
        let mut codec = CappedCodec::<4, 8>;
        let p = BLOCK_PROTOCOL;
        let ok = block_on(codec.read_request(&p, &mut Cursor::new(vec![1u8; 4]))).unwrap();
        assert_eq!(ok, vec![1u8; 4]);
        let err = block_on(codec.read_request(&p, &mut Cursor::new(vec![1u8; 5]))).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let ok = block_on(codec.read_response(&p, &mut Cursor::new(vec![2u8; 8]))).unwrap();
        assert_eq!(ok.len(), 8);
        assert!(block_on(codec.read_response(&p, &mut Cursor::new(vec![2u8; 9]))).is_err());
    }

    #[test]
    fn refuses_to_write_over_the_cap() {
        let mut codec = CappedCodec::<4, 0>;
        let mut out = Cursor::new(Vec::new());
        let p = CONTROL_PROTOCOL;
        assert!(block_on(codec.write_request(&p, &mut out, vec![0; 5])).is_err());
        assert!(block_on(codec.write_response(&p, &mut out, vec![0; 1])).is_err());
        block_on(codec.write_request(&p, &mut out, vec![7; 4])).unwrap();
        assert_eq!(out.into_inner(), vec![7; 4]);
    }

    #[test]
    fn caps_fit_the_protocol_limits() {
        let cid = bootswarm_protocol::block::cid_of(bootswarm_protocol::block::Codec::Raw, b"x");
        assert!(cid.to_bytes().len() <= MAX_BLOCK_REQUEST);
        assert_eq!(MAX_BLOCK_RESPONSE, MAX_BLOCK_SIZE + 1);
    }
}
