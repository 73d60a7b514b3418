//! Control messages between neighbours, with a compact, length-capped wire encoding.

use super::Rack;
use super::bitfield::{Bitfield, MAX_BLOCKS};

/// The most block indices one `Have` may carry.
pub const MAX_HAVE_BLOCKS: usize = 4096;
/// The largest encoded message.
pub const MAX_MESSAGE_SIZE: usize = 1 + 8 + 1 + 8 + 2 * (4 + (MAX_BLOCKS / 8) as usize);

const TAG_HELLO: u8 = 1;
const TAG_HAVE: u8 = 2;
const TAG_BYE: u8 = 3;
const TAG_FETCHING: u8 = 4;
const TAG_PING: u8 = 5;
const TAG_PONG: u8 = 6;
const TAG_CROSSING: u8 = 7;
const TAG_RESIGN: u8 = 8;
const TAG_UNFETCHED: u8 = 9;

/// `Hello` flags: the receiver should answer, and a rack follows.
const HELLO_REPLY: u8 = 1;
const HELLO_RACK: u8 = 2;

/// A control message. Block indices refer to the release plan both sides derive from the
/// release's manifests; `release` is the [`release_tag`](super::release_tag) of that release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Opens or refreshes a neighbour link and carries everything the sender holds.
    Hello {
        /// The release the bits refer to.
        release: u64,
        /// The blocks the sender holds.
        bits: Bitfield,
        /// The blocks the sender is fetching from the hub right now.
        fetching: Bitfield,
        /// Whether the receiver should answer with its own `Hello`.
        reply: bool,
        /// The rack the sender says it is in.
        rack: Option<Rack>,
    },
    /// The sender has just verified these blocks.
    Have {
        /// The release the indices refer to.
        release: u64,
        /// Block indices.
        blocks: Vec<u32>,
    },
    /// The sender has started fetching these blocks from the hub (it owns them), so nobody
    /// else needs to.
    Fetching {
        /// The release the indices refer to.
        release: u64,
        /// Block indices.
        blocks: Vec<u32>,
    },
    /// A member of the sender's rack (the sender, or one it heard from) is fetching these
    /// chunks across the rack's uplink, so the other members wait for that copy. Sent only to
    /// neighbours that said they are in the same rack.
    Crossing {
        /// The release the indices refer to.
        release: u64,
        /// Block indices.
        blocks: Vec<u32>,
    },
    /// The sender's hub fetch of these blocks failed (the hub could not be reached): the owners
    /// ranked next may each try them once, one rank sooner than their turn. Sent to the
    /// owners ranked below the sender for the blocks, neighbours or not.
    Unfetched {
        /// The release the indices refer to.
        release: u64,
        /// Block indices.
        blocks: Vec<u32>,
    },
    /// The sender cannot fetch from the hub while the hub serves others, so it no longer owns
    /// blocks of this release: the receiver moves them to the next-ranked owners. Sent to the
    /// owners ranked next to the sender, neighbours or not.
    Resign {
        /// The release it steps down for.
        release: u64,
    },
    /// The sender closes the neighbour link (full, banned, or leaving).
    Bye,
    /// Asks for a `Pong`: the sender counts on the receiver as an owner and checks that it
    /// is there at all.
    Ping,
    /// The answer to a `Ping`.
    Pong,
}

/// Why bytes are not a valid [`Message`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The input is longer than any message may be.
    #[error(
        "control message of {0} bytes is over the {MAX_MESSAGE_SIZE}-byte limit; the peer is misbehaving"
    )]
    TooLarge(usize),
    /// The input ends before the message does.
    #[error("control message is truncated; the peer is misbehaving")]
    Truncated,
    /// Unknown message type.
    #[error("control message has unknown type {0}; the peer may run an incompatible version")]
    UnknownTag(u8),
    /// A field is out of its allowed range.
    #[error("control message field {0} is out of range; the peer is misbehaving")]
    OutOfRange(&'static str),
    /// Bytes follow the message.
    #[error("control message has trailing bytes; the peer is misbehaving")]
    Trailing,
}

impl Message {
    /// The wire encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        match self {
            Message::Hello {
                release,
                bits,
                fetching,
                reply,
                rack,
            } => {
                out.push(TAG_HELLO);
                out.extend_from_slice(&release.to_le_bytes());
                let flags = if *reply { HELLO_REPLY } else { 0 }
                    | if rack.is_some() { HELLO_RACK } else { 0 };
                out.push(flags);
                if let Some(r) = rack {
                    out.extend_from_slice(&r.0.to_le_bytes());
                }
                for field in [bits, fetching] {
                    let bytes = field.to_bytes();
                    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                    out.extend_from_slice(&bytes);
                }
            }
            Message::Have { release, blocks }
            | Message::Fetching { release, blocks }
            | Message::Crossing { release, blocks }
            | Message::Unfetched { release, blocks } => {
                let tag = match self {
                    Message::Have { .. } => TAG_HAVE,
                    Message::Fetching { .. } => TAG_FETCHING,
                    Message::Crossing { .. } => TAG_CROSSING,
                    _ => TAG_UNFETCHED,
                };
                out.push(tag);
                out.extend_from_slice(&release.to_le_bytes());
                let n = blocks.len().min(MAX_HAVE_BLOCKS);
                out.extend_from_slice(&(n as u16).to_le_bytes());
                for b in &blocks[..n] {
                    out.extend_from_slice(&b.to_le_bytes());
                }
            }
            Message::Resign { release } => {
                out.push(TAG_RESIGN);
                out.extend_from_slice(&release.to_le_bytes());
            }
            Message::Bye => out.push(TAG_BYE),
            Message::Ping => out.push(TAG_PING),
            Message::Pong => out.push(TAG_PONG),
        }
        out
    }

    /// The length of [`encode`](Self::encode)'s output, without allocating.
    pub fn encoded_len(&self) -> usize {
        match self {
            Message::Hello {
                bits,
                fetching,
                rack,
                ..
            } => {
                1 + 8
                    + 1
                    + 8 * usize::from(rack.is_some())
                    + 4
                    + bits.encoded_len()
                    + 4
                    + fetching.encoded_len()
            }
            Message::Have { blocks, .. }
            | Message::Fetching { blocks, .. }
            | Message::Crossing { blocks, .. }
            | Message::Unfetched { blocks, .. } => {
                1 + 8 + 2 + 4 * blocks.len().min(MAX_HAVE_BLOCKS)
            }
            Message::Resign { .. } => 1 + 8,
            Message::Bye | Message::Ping | Message::Pong => 1,
        }
    }

    /// Decodes one message; never panics, whatever the input.
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageError> {
        if bytes.len() > MAX_MESSAGE_SIZE {
            return Err(MessageError::TooLarge(bytes.len()));
        }
        let mut r = Reader(bytes);
        let msg = match r.u8()? {
            TAG_HELLO => {
                let release = r.u64()?;
                let flags = r.u8()?;
                if flags & !(HELLO_REPLY | HELLO_RACK) != 0 {
                    return Err(MessageError::OutOfRange("hello flags"));
                }
                let rack = if flags & HELLO_RACK != 0 {
                    Some(Rack(r.u64()?))
                } else {
                    None
                };
                let bits = r.bitfield()?;
                let fetching = r.bitfield()?;
                Message::Hello {
                    release,
                    bits,
                    fetching,
                    reply: flags & HELLO_REPLY != 0,
                    rack,
                }
            }
            tag @ (TAG_HAVE | TAG_FETCHING | TAG_CROSSING | TAG_UNFETCHED) => {
                let release = r.u64()?;
                let n = usize::from(r.u16()?);
                if n > MAX_HAVE_BLOCKS {
                    return Err(MessageError::OutOfRange("have count"));
                }
                let mut blocks = Vec::with_capacity(n);
                for _ in 0..n {
                    let b = r.u32()?;
                    if b >= MAX_BLOCKS {
                        return Err(MessageError::OutOfRange("block index"));
                    }
                    blocks.push(b);
                }
                match tag {
                    TAG_HAVE => Message::Have { release, blocks },
                    TAG_FETCHING => Message::Fetching { release, blocks },
                    TAG_CROSSING => Message::Crossing { release, blocks },
                    _ => Message::Unfetched { release, blocks },
                }
            }
            TAG_RESIGN => Message::Resign { release: r.u64()? },
            TAG_BYE => Message::Bye,
            TAG_PING => Message::Ping,
            TAG_PONG => Message::Pong,
            tag => return Err(MessageError::UnknownTag(tag)),
        };
        if !r.0.is_empty() {
            return Err(MessageError::Trailing);
        }
        Ok(msg)
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MessageError> {
        if self.0.len() < n {
            return Err(MessageError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn bitfield(&mut self) -> Result<Bitfield, MessageError> {
        let len = self.u32()? as usize;
        if len > (MAX_BLOCKS / 8) as usize {
            return Err(MessageError::OutOfRange("bitfield length"));
        }
        Bitfield::from_bytes(self.take(len)?).ok_or(MessageError::OutOfRange("bitfield length"))
    }

    fn u8(&mut self) -> Result<u8, MessageError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, MessageError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, MessageError> {
        let mut buf = [0u8; 4];
        buf.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(buf))
    }

    fn u64(&mut self) -> Result<u64, MessageError> {
        let mut buf = [0u8; 8];
        buf.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Message> {
        let mut bits = Bitfield::new();
        bits.set(0);
        bits.set(77);
        let mut fetching = Bitfield::new();
        fetching.set(3);
        vec![
            Message::Hello {
                release: 42,
                bits,
                fetching,
                reply: true,
                rack: None,
            },
            Message::Hello {
                release: 0,
                bits: Bitfield::new(),
                fetching: Bitfield::new(),
                reply: false,
                rack: Rack::from_label("r7"),
            },
            Message::Fetching {
                release: 42,
                blocks: vec![5],
            },
            Message::Have {
                release: 42,
                blocks: vec![1, 2, 900],
            },
            Message::Crossing {
                release: 42,
                blocks: vec![4, 8],
            },
            Message::Unfetched {
                release: 42,
                blocks: vec![3],
            },
            Message::Resign { release: 42 },
            Message::Bye,
            Message::Ping,
            Message::Pong,
        ]
    }

    #[test]
    fn roundtrip_and_encoded_len() {
        for m in samples() {
            let bytes = m.encode();
            assert_eq!(bytes.len(), m.encoded_len());
            assert_eq!(Message::decode(&bytes).unwrap(), m);
        }
    }

    #[test]
    fn every_truncation_and_extension_is_an_error() {
        for m in samples() {
            let bytes = m.encode();
            for cut in 0..bytes.len() {
                assert!(
                    Message::decode(&bytes[..cut]).is_err(),
                    "{m:?} cut at {cut}"
                );
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(Message::decode(&longer), Err(MessageError::Trailing));
        }
    }

    #[test]
    fn out_of_range_fields_are_refused() {
        assert_eq!(Message::decode(&[10]), Err(MessageError::UnknownTag(10)));
        let mut have = vec![TAG_HAVE];
        have.extend_from_slice(&1u64.to_le_bytes());
        have.extend_from_slice(&1u16.to_le_bytes());
        have.extend_from_slice(&MAX_BLOCKS.to_le_bytes());
        assert_eq!(
            Message::decode(&have),
            Err(MessageError::OutOfRange("block index"))
        );
        let mut hello = vec![TAG_HELLO];
        hello.extend_from_slice(&1u64.to_le_bytes());
        hello.push(4);
        assert_eq!(
            Message::decode(&hello),
            Err(MessageError::OutOfRange("hello flags"))
        );
        assert!(matches!(
            Message::decode(&vec![0; MAX_MESSAGE_SIZE + 1]),
            Err(MessageError::TooLarge(_))
        ));
    }
}
