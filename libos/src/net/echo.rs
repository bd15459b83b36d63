//! Echoing one TCP connection back to its peer until the peer closes it:
//! what the `echo`, `soak` and `vifresume` guests each serve, written
//! once. The caller says how big a buffer to use and how long the close
//! may take, and gets the tally back to report in its own words.

use super::{NetError, TcpStream};
use alloc::vec;
use core::time::Duration;

/// What one echoed connection came to.
#[derive(Debug)]
pub struct Echoed {
    /// Bytes read from the peer.
    pub bytes_in: u64,
    /// Bytes written back (equal to `bytes_in` unless a write failed).
    pub bytes_out: u64,
    /// The peer's first bytes were `quit`: the apps end on that.
    pub quit: bool,
    /// The read or write that ended the connection early, if any.
    pub failure: Option<NetError>,
    /// Whether the close completed (our FIN acknowledged, the peer's
    /// seen) within the close limit.
    pub closed: bool,
}

/// Reads and writes back everything the peer sends, `buf_size` bytes at
/// a time, until the peer closes its side (or a read or write fails);
/// then closes ours, waiting up to `close_limit`.
pub async fn echo_until_closed(
    stream: &mut TcpStream,
    buf_size: usize,
    close_limit: Duration,
) -> Echoed {
    let mut buf = vec![0u8; buf_size.max(1)];
    let mut echoed = Echoed {
        bytes_in: 0,
        bytes_out: 0,
        quit: false,
        failure: None,
        closed: false,
    };
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                echoed.failure = Some(e);
                break;
            }
        };
        if echoed.bytes_in == 0 && buf[..n].starts_with(b"quit") {
            echoed.quit = true;
        }
        echoed.bytes_in += n as u64;
        if let Err(e) = stream.write_all(&buf[..n]).await {
            echoed.failure = Some(e);
            break;
        }
        echoed.bytes_out += n as u64;
    }
    stream.set_timeout(Some(close_limit));
    echoed.closed = stream.finish().await.is_ok();
    echoed
}
