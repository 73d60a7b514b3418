//! The RESP wire format 0-db speaks (the Redis protocol): commands as arrays of bulk
//! strings, replies read with every length capped.

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// Longest status, error or length line read.
const MAX_LINE: usize = 4096;

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Simple(String),
    /// `-ERR ...`.
    Error(String),
    /// `:1`.
    Integer(i64),
    /// `$n` and n bytes; `None` for `$-1` (no such key).
    Bulk(Option<Vec<u8>>),
}

/// Why a reply could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RespError {
    /// The connection failed or closed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The bytes are not RESP, or not a reply this client expects.
    #[error("the reply is not RESP ({0})")]
    Protocol(&'static str),
    /// A bulk reply longer than the caller allows.
    #[error("a {len}-byte reply is longer than the {max} bytes allowed")]
    TooLong {
        /// Announced length.
        len: usize,
        /// The cap.
        max: usize,
    },
}

/// A command: `*n` then each argument as a bulk string (binary safe).
pub fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads one reply; a bulk string longer than `max_bulk` is refused before it is read.
pub async fn read_reply<R: AsyncBufRead + Unpin>(
    r: &mut R,
    max_bulk: usize,
) -> Result<Reply, RespError> {
    let line = read_line(r).await?;
    let (kind, rest) = line
        .split_first()
        .ok_or(RespError::Protocol("an empty line"))?;
    let text = || String::from_utf8_lossy(rest).into_owned();
    match kind {
        b'+' => Ok(Reply::Simple(text())),
        b'-' => Ok(Reply::Error(text())),
        b':' => Ok(Reply::Integer(parse_int(rest)?)),
        b'$' => {
            let n = parse_int(rest)?;
            if n == -1 {
                return Ok(Reply::Bulk(None));
            }
            let len = usize::try_from(n).map_err(|_| RespError::Protocol("a negative length"))?;
            if len > max_bulk {
                return Err(RespError::TooLong { len, max: max_bulk });
            }
            let mut buf = vec![0u8; len + 2];
            r.read_exact(&mut buf).await?;
            if !buf.ends_with(b"\r\n") {
                return Err(RespError::Protocol("a bulk string without its CRLF"));
            }
            buf.truncate(len);
            Ok(Reply::Bulk(Some(buf)))
        }
        b'*' => Err(RespError::Protocol("an array where one value was expected")),
        _ => Err(RespError::Protocol("an unknown type byte")),
    }
}

/// One CRLF-terminated line without its CRLF, at most [`MAX_LINE`] bytes.
async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<Vec<u8>, RespError> {
    let mut line = Vec::new();
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Err(RespError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        line.extend_from_slice(&buf[..take]);
        r.consume(take);
        if line.len() > MAX_LINE + 2 {
            return Err(RespError::Protocol("a line longer than 4096 bytes"));
        }
        if done {
            break;
        }
    }
    if !line.ends_with(b"\r\n") {
        return Err(RespError::Protocol("a line not ending in CRLF"));
    }
    line.truncate(line.len() - 2);
    Ok(line)
}

fn parse_int(digits: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(RespError::Protocol("a malformed number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn reply(bytes: &[u8], max: usize) -> Result<Reply, RespError> {
        let mut r = tokio::io::BufReader::new(bytes);
        read_reply(&mut r, max).await
    }

    #[tokio::test]
    async fn replies_parse_and_caps_hold() {
        assert_eq!(
            command(&[b"GET", &[0, 13, 10]]),
            b"*2\r\n$3\r\nGET\r\n$3\r\n\0\r\n\r\n"
        );
        assert_eq!(
            reply(b"+OK\r\n", 8).await.unwrap(),
            Reply::Simple("OK".into())
        );
        assert_eq!(
            reply(b"-ERR no\r\n", 8).await.unwrap(),
            Reply::Error("ERR no".into())
        );
        assert_eq!(reply(b":42\r\n", 8).await.unwrap(), Reply::Integer(42));
        assert_eq!(reply(b"$-1\r\n", 8).await.unwrap(), Reply::Bulk(None));
        assert_eq!(
            reply(b"$3\r\na\r\n\r\n", 8).await.unwrap(),
            Reply::Bulk(Some(b"a\r\n".to_vec()))
        );
        assert!(matches!(
            reply(b"$9\r\n123456789\r\n", 8).await,
            Err(RespError::TooLong { len: 9, max: 8 })
        ));
        for bad in [
            &b"$3\r\nabc"[..],
            b"$x\r\n",
            b"*1\r\n",
            b"?\r\n",
            b"+OK\n",
            b"",
        ] {
            assert!(reply(bad, 8).await.is_err(), "{bad:?}");
        }
        let long = [b"+".to_vec(), vec![b'a'; 5000], b"\r\n".to_vec()].concat();
        assert!(matches!(reply(&long, 8).await, Err(RespError::Protocol(_))));
    }
}
