//! The RESP side of the local block endpoint: what rfs's `zdb://` store and 0-fs send to a
//! 0-db (`PING`, `SELECT ns [password]`, `AUTH`, `GET id`, `EXISTS id`, `QUIT`), the id
//! being the block's 32 raw bytes (or its 64 hex characters). A miss is the empty reply
//! rfs expects. Commands are read totally: arrays and strings are capped, anything else is
//! an error reply or the end of the connection.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::{LocalBlocks, Miss, from_hex};

/// Connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 64;
/// Most arguments in one command.
const MAX_ARGS: usize = 8;
/// Longest argument or inline line.
const MAX_ARG: usize = 4096;
/// A connection silent this long is closed.
const IDLE: Duration = Duration::from_secs(120);

/// Why a connection is closed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// The peer closed the connection.
    Closed,
    /// The bytes are not a RESP command within the caps.
    Malformed,
}

/// Serves RESP clients on `listener` until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, blocks: LocalBlocks) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let blocks = blocks.clone();
        tokio::spawn(async move {
            connection(stream, &blocks).await;
            drop(permit);
        });
    }
}

async fn connection(stream: TcpStream, blocks: &LocalBlocks) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        let cmd = match tokio::time::timeout(IDLE, read_command(&mut read)).await {
            Ok(Ok(cmd)) => cmd,
            Ok(Err(FrameError::Malformed)) => {
                let _ = write.write_all(b"-ERR malformed command\r\n").await;
                return;
            }
            _ => return,
        };
        let quit = cmd.first().is_some_and(|c| c.eq_ignore_ascii_case(b"quit"));
        if reply(&cmd, blocks, &mut write).await.is_err() || quit {
            return;
        }
    }
}

/// Reads one command: a RESP array of bulk strings, or an inline line.
pub(crate) async fn read_command<R>(read: &mut R) -> Result<Vec<Vec<u8>>, FrameError>
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    let line = read_line(read).await?;
    let Some(count) = line.strip_prefix(b"*") else {
        let args: Vec<Vec<u8>> = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        if args.is_empty() || args.len() > MAX_ARGS {
            return Err(FrameError::Malformed);
        }
        return Ok(args);
    };
    let count = number(count).filter(|n| (1..=MAX_ARGS).contains(n));
    let count = count.ok_or(FrameError::Malformed)?;
    let mut args = Vec::with_capacity(count);
    for _ in 0..count {
        let head = read_line(read).await?;
        let len = head
            .strip_prefix(b"$")
            .and_then(number)
            .filter(|n| *n <= MAX_ARG)
            .ok_or(FrameError::Malformed)?;
        let mut arg = vec![0; len + 2];
        read.read_exact(&mut arg)
            .await
            .map_err(|_| FrameError::Closed)?;
        if !arg.ends_with(b"\r\n") {
            return Err(FrameError::Malformed);
        }
        arg.truncate(len);
        args.push(arg);
    }
    Ok(args)
}

/// One CRLF-terminated line (without it), at most [`MAX_ARG`] bytes.
async fn read_line<R>(read: &mut R) -> Result<Vec<u8>, FrameError>
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    let mut line = Vec::new();
    let n = read
        .take(MAX_ARG as u64 + 2)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|_| FrameError::Closed)?;
    if n == 0 {
        return Err(FrameError::Closed);
    }
    if !line.ends_with(b"\n") {
        return Err(FrameError::Malformed);
    }
    line.pop();
    if line.ends_with(b"\r") {
        line.pop();
    }
    Ok(line)
}

fn number(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The raw block id of a `GET`/`EXISTS` argument: 32 raw bytes or 64 hex characters.
fn block_id(arg: &[u8]) -> Result<Vec<u8>, Miss> {
    match arg.len() {
        32 => Ok(arg.to_vec()),
        64 => from_hex(&String::from_utf8_lossy(arg).to_ascii_lowercase()),
        _ => Err(Miss::BadId),
    }
}

async fn reply<W>(cmd: &[Vec<u8>], blocks: &LocalBlocks, out: &mut W) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let name = String::from_utf8_lossy(&cmd[0]).to_ascii_uppercase();
    let arg = cmd.get(1).map(Vec::as_slice);
    match (name.as_str(), arg) {
        ("PING", None) => out.write_all(b"+PONG\r\n").await,
        ("PING", Some(msg)) => bulk(out, msg).await,
        ("SELECT" | "AUTH", Some(_)) | ("QUIT", _) => out.write_all(b"+OK\r\n").await,
        ("COMMAND", _) => out.write_all(b"*0\r\n").await,
        ("GET", Some(id)) => match block_id(id) {
            Ok(id) => match blocks.get(&id).await {
                Ok(bytes) => bulk(out, &bytes).await,
                Err(Miss::Busy) => {
                    out.write_all(b"-BUSY too many missing blocks; retry\r\n")
                        .await
                }
                Err(_) => out.write_all(b"$-1\r\n").await,
            },
            Err(_) => {
                out.write_all(b"-ERR a block id is 32 bytes or 64 hex characters\r\n")
                    .await
            }
        },
        ("EXISTS", Some(id)) => {
            let held = match block_id(id) {
                Ok(id) => blocks.exists(&id).await.unwrap_or(false),
                Err(_) => false,
            };
            out.write_all(if held { b":1\r\n" } else { b":0\r\n" })
                .await
        }
        _ => {
            let name: String = name
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .take(32)
                .collect();
            out.write_all(format!("-ERR unknown command '{name}'\r\n").as_bytes())
                .await
        }
    }?;
    out.flush().await
}

async fn bulk<W: AsyncWrite + Unpin>(out: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(format!("${}\r\n", bytes.len()).as_bytes())
        .await?;
    out.write_all(bytes).await?;
    out.write_all(b"\r\n").await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut r = BufReader::new(bytes);
        read_command(&mut r).await
    }

    #[tokio::test]
    async fn commands_are_read_totally() {
        assert_eq!(
            parse(b"*2\r\n$3\r\nGET\r\n$2\r\nab\r\n").await,
            Ok(vec![b"GET".to_vec(), b"ab".to_vec()])
        );
        assert_eq!(parse(b"PING\r\n").await, Ok(vec![b"PING".to_vec()]));
        assert_eq!(
            parse(b"*2\r\n$3\r\nGET\r\n$40000\r\n").await,
            Err(FrameError::Malformed)
        );
        assert_eq!(parse(b"*99\r\n").await, Err(FrameError::Malformed));
        assert_eq!(parse(b"*-1\r\n").await, Err(FrameError::Malformed));
        assert_eq!(
            parse(b"*1\r\n$3\r\nGETxx").await,
            Err(FrameError::Malformed)
        );
        assert_eq!(parse(b"*1\r\n$3\r\nGE").await, Err(FrameError::Closed));
        assert_eq!(parse(b"").await, Err(FrameError::Closed));
        assert_eq!(parse(&[b'a'; 5000]).await, Err(FrameError::Malformed));
    }

    #[test]
    fn ids_are_raw_or_hex() {
        assert_eq!(block_id(&[7; 32]).unwrap(), vec![7; 32]);
        assert_eq!(block_id(&[b'0'; 64]).unwrap(), vec![0; 32]);
        assert_eq!(block_id(b"short"), Err(Miss::BadId));
    }
}
