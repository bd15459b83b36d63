//! `tftpd`: a TFTP server (RFC 1350) over libos's UDP sockets.
//!
//! Takes its network setup from the command line (`ip=dhcp`, or
//! `ip=10.0.0.2/24 gw=…`) or xenstore, answers pings (smoltcp does), and
//! serves TFTP on port 69, one transfer at a time, keeping files in
//! memory: a write request (put) stores the file (up to 16 MiB), a read
//! request (get) sends a stored one back. Each transfer runs in a task of
//! its own, so transfers overlap, on a fresh socket with a random port
//! (its "transfer id"), in lockstep: a block,
//! then its acknowledgement, retransmitting after 1 s, giving up after 8
//! tries. The `blksize` option (RFC 2348) is honoured up to what fits one
//! Ethernet frame, so clients can move 1428-byte datagrams as well as
//! 512-byte ones; other options are ignored, as RFC 2347 allows. Both
//! modes are served as bytes (no netascii conversion).
//!
//! A request repeated by a client whose first answer was slow (the same
//! address and port while its transfer runs) is ignored, as RFC 1350's
//! retransmission rules expect, rather than answered by a second
//! transfer. Reading the file `quit` gets `bye`; then the app stops taking
//! requests, lets the transfers in progress finish, and the domain
//! powers off. After each transfer it prints a line the rig's
//! e2e test reads:
//! `tftpd: put|get NAME from PEER: N bytes, B blocks of S, R retransmits, T s`.
//! It gives up (and fails) when no request comes within 2 minutes.
#![cfg_attr(target_os = "none", no_std, no_main)]

/// The wire format: pure logic, tested on the host.
#[cfg(any(test, target_os = "none"))]
mod tftp {
    // On the host only the tests use this.
    #![cfg_attr(not(target_os = "none"), allow(dead_code))]

    extern crate alloc;
    use alloc::vec::Vec;

    /// The block size without the `blksize` option.
    pub const DEFAULT_BLOCK: usize = 512;
    /// The largest block we agree to: one frame's UDP payload (1472)
    /// less the 4-byte DATA header.
    pub const MAX_BLOCK: usize = 1468;
    /// RFC 2348's smallest block size.
    const MIN_BLOCK: usize = 8;

    const RRQ: u16 = 1;
    const WRQ: u16 = 2;
    const DATA: u16 = 3;
    const ACK: u16 = 4;
    const ERROR: u16 = 5;
    const OACK: u16 = 6;

    /// Error codes (RFC 1350).
    pub mod code {
        /// File not found.
        pub const NOT_FOUND: u16 = 1;
        /// Disk full or allocation exceeded.
        pub const DISK_FULL: u16 = 3;
        /// Illegal TFTP operation.
        pub const ILLEGAL: u16 = 4;
        /// Unknown transfer ID.
        pub const UNKNOWN_TID: u16 = 5;
    }

    /// A read or write request.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Request<'a> {
        /// The file's name.
        pub filename: &'a str,
        /// The block size the client asked for with `blksize`, if it did
        /// and the value parsed (not yet clamped to what we accept).
        pub blksize: Option<usize>,
    }

    /// A packet, borrowed from the datagram.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Packet<'a> {
        /// RRQ: the client wants to read (get) a file.
        Read(Request<'a>),
        /// WRQ: the client wants to write (put) a file.
        Write(Request<'a>),
        /// DATA: block `block` of a transfer.
        Data {
            /// The block number (from 1, wrapping).
            block: u16,
            /// Its bytes (a block shorter than the block size is the last).
            data: &'a [u8],
        },
        /// ACK of block `0`.
        Ack(u16),
        /// ERROR: the peer gives up.
        Error {
            /// The error code.
            code: u16,
            /// The message (lossy: not necessarily UTF-8).
            message: &'a [u8],
        },
        /// OACK: options acknowledged (only servers send it).
        OptionAck,
    }

    /// Why a datagram is not a TFTP packet we understand.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Malformed {
        /// Shorter than its opcode and fixed fields.
        Short,
        /// An opcode that is not 1 to 6.
        Opcode(u16),
        /// A string field without its terminating zero, or not UTF-8.
        Field,
        /// A mode other than `octet` or `netascii` (e.g. `mail`).
        Mode,
    }

    fn word(bytes: &[u8], at: usize) -> Option<u16> {
        Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
    }

    /// Splits the zero-terminated strings of a request.
    fn strings(mut rest: &[u8]) -> Result<Vec<&str>, Malformed> {
        let mut out = Vec::new();
        while !rest.is_empty() {
            let end = rest.iter().position(|&b| b == 0).ok_or(Malformed::Field)?;
            out.push(core::str::from_utf8(&rest[..end]).map_err(|_| Malformed::Field)?);
            rest = &rest[end + 1..];
        }
        Ok(out)
    }

    fn request(body: &[u8]) -> Result<Request<'_>, Malformed> {
        let fields = strings(body)?;
        let (Some(filename), Some(mode)) = (fields.first(), fields.get(1)) else {
            return Err(Malformed::Field);
        };
        if filename.is_empty() {
            return Err(Malformed::Field);
        }
        if !mode.eq_ignore_ascii_case("octet") && !mode.eq_ignore_ascii_case("netascii") {
            return Err(Malformed::Mode);
        }
        // Options come in name/value pairs; an odd one out is ignored.
        let blksize = fields[2..]
            .chunks_exact(2)
            .find(|pair| pair[0].eq_ignore_ascii_case("blksize"))
            .and_then(|pair| pair[1].parse().ok());
        Ok(Request { filename, blksize })
    }

    /// Parses one datagram (any bytes: never panics).
    pub fn parse(packet: &[u8]) -> Result<Packet<'_>, Malformed> {
        let opcode = word(packet, 0).ok_or(Malformed::Short)?;
        let body = &packet[2..];
        match opcode {
            RRQ => Ok(Packet::Read(request(body)?)),
            WRQ => Ok(Packet::Write(request(body)?)),
            DATA => Ok(Packet::Data {
                block: word(body, 0).ok_or(Malformed::Short)?,
                data: &body[2..],
            }),
            ACK => Ok(Packet::Ack(word(body, 0).ok_or(Malformed::Short)?)),
            ERROR => {
                let code = word(body, 0).ok_or(Malformed::Short)?;
                let message = &body[2..];
                let message = message
                    .iter()
                    .position(|&b| b == 0)
                    .map_or(message, |end| &message[..end]);
                Ok(Packet::Error { code, message })
            }
            OACK => Ok(Packet::OptionAck),
            other => Err(Malformed::Opcode(other)),
        }
    }

    /// The block size we answer a `blksize` request with: the client's,
    /// capped at [`MAX_BLOCK`]; `None` (no OACK, 512-byte blocks) for no
    /// option or a value below RFC 2348's minimum.
    pub fn negotiate(requested: Option<usize>) -> Option<usize> {
        requested
            .filter(|&size| size >= MIN_BLOCK)
            .map(|size| size.min(MAX_BLOCK))
    }

    /// A DATA packet.
    pub fn data(block: u16, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + bytes.len());
        out.extend_from_slice(&DATA.to_be_bytes());
        out.extend_from_slice(&block.to_be_bytes());
        out.extend_from_slice(bytes);
        out
    }

    /// An ACK packet.
    pub fn ack(block: u16) -> [u8; 4] {
        let [a, b] = ACK.to_be_bytes();
        let [c, d] = block.to_be_bytes();
        [a, b, c, d]
    }

    /// An ERROR packet.
    pub fn error(code: u16, message: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + message.len());
        out.extend_from_slice(&ERROR.to_be_bytes());
        out.extend_from_slice(&code.to_be_bytes());
        out.extend_from_slice(message.as_bytes());
        out.push(0);
        out
    }

    /// An OACK packet agreeing to `blksize`.
    pub fn option_ack(blksize: usize) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&OACK.to_be_bytes());
        out.extend_from_slice(b"blksize\0");
        out.extend_from_slice(alloc::format!("{blksize}").as_bytes());
        out.push(0);
        out
    }

    /// The block number of the `index`th block (from 1), as it wraps on
    /// the wire.
    pub fn block_number(index: u64) -> u16 {
        index as u16
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn requests_parse_with_options() {
            let packet = b"\x00\x02big\x00octet\x00tsize\x00300000\x00BLKSIZE\x001428\x00";
            assert_eq!(
                parse(packet),
                Ok(Packet::Write(Request {
                    filename: "big",
                    blksize: Some(1428)
                }))
            );
            assert_eq!(
                parse(b"\x00\x01f\x00NetAscii\x00"),
                Ok(Packet::Read(Request {
                    filename: "f",
                    blksize: None
                }))
            );
            assert_eq!(parse(b"\x00\x01f\x00mail\x00"), Err(Malformed::Mode));
            assert_eq!(parse(b"\x00\x01f\x00octet"), Err(Malformed::Field));
            assert_eq!(parse(b"\x00\x01\x00octet\x00"), Err(Malformed::Field));
            assert_eq!(parse(b"\x00\x01f\x00"), Err(Malformed::Field));
            assert_eq!(parse(b"\x00\x01\xff\x00octet\x00"), Err(Malformed::Field));
        }

        #[test]
        fn data_ack_and_error_round_trip() {
            let packet = data(7, b"abc");
            assert_eq!(packet, b"\x00\x03\x00\x07abc");
            assert_eq!(
                parse(&packet),
                Ok(Packet::Data {
                    block: 7,
                    data: b"abc"
                })
            );
            assert_eq!(
                parse(&data(0xffff, b"")),
                Ok(Packet::Data {
                    block: 0xffff,
                    data: b""
                })
            );
            assert_eq!(parse(&ack(513)), Ok(Packet::Ack(513)));
            let packet = error(code::NOT_FOUND, "File not found");
            assert_eq!(packet, b"\x00\x05\x00\x01File not found\x00");
            assert_eq!(
                parse(&packet),
                Ok(Packet::Error {
                    code: 1,
                    message: b"File not found"
                })
            );
            assert_eq!(option_ack(1428), b"\x00\x06blksize\x001428\x00");
            assert_eq!(parse(&option_ack(8)), Ok(Packet::OptionAck));
        }

        #[test]
        fn garbage_is_refused_not_panicked_on() {
            assert_eq!(parse(b""), Err(Malformed::Short));
            assert_eq!(parse(b"\x00"), Err(Malformed::Short));
            assert_eq!(parse(b"\x00\x03\x01"), Err(Malformed::Short));
            assert_eq!(parse(b"\x00\x04"), Err(Malformed::Short));
            assert_eq!(parse(b"\x00\x09xx"), Err(Malformed::Opcode(9)));
            // Every short prefix of valid packets either parses or errs.
            let valid = b"\x00\x02big\x00octet\x00blksize\x001428\x00";
            for end in 0..valid.len() {
                let _ = parse(&valid[..end]);
            }
        }

        #[test]
        fn block_sizes_are_negotiated_within_a_frame() {
            assert_eq!(negotiate(None), None);
            assert_eq!(negotiate(Some(4)), None);
            assert_eq!(negotiate(Some(8)), Some(8));
            assert_eq!(negotiate(Some(1428)), Some(1428));
            assert_eq!(negotiate(Some(65464)), Some(MAX_BLOCK));
            assert_eq!(MAX_BLOCK + 4, libos::net::MAX_DATAGRAM);
        }

        #[test]
        fn block_numbers_wrap() {
            assert_eq!(block_number(1), 1);
            assert_eq!(block_number(65535), 65535);
            assert_eq!(block_number(65536), 0);
            assert_eq!(block_number(65537), 1);
        }
    }
}

libos::app! {
    extern crate alloc;

    use crate::tftp::{self, code, Packet};
    use alloc::collections::{BTreeMap, BTreeSet};
    use alloc::string::String;
    use alloc::sync::Arc;
    use alloc::vec;
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicU32, Ordering};
    use core::time::Duration;
    use libos::kernel::time;
    use libos::net::{with_timeout, IpEndpoint, Net, NetError, UdpSocket, MAX_DATAGRAM};
    use libos::task::{self, select, Either, Mutex, Signal};
    use libos::{println, AppError, AppResult, Env};

    /// The TFTP port.
    const PORT: u16 = 69;
    /// How long to wait for each request before giving up.
    const REQUEST_TIMEOUT_S: u64 = 120;
    /// How long to wait for each block or acknowledgement.
    const RETRY: Duration = Duration::from_secs(1);
    /// How many times to send a block (or an ACK) before giving up.
    const TRIES: u32 = 8;
    /// The most bytes stored, over all files.
    const MAX_STORED: usize = 16 * 1024 * 1024;

    /// What the transfer tasks share.
    struct Tftpd {
        files: Mutex<BTreeMap<String, Arc<Vec<u8>>>>,
        puts: AtomicU32,
        gets: AtomicU32,
        failed: AtomicU32,
        /// Transfers in progress.
        active: AtomicU32,
        /// The peers of the transfers in progress.
        peers: Mutex<BTreeSet<(IpEndpoint, bool)>>,
        /// Set once `quit` was read.
        quit: Signal,
    }

    /// One transfer's outcome, for the log line.
    struct Transfer {
        bytes: usize,
        blocks: u64,
        block_size: usize,
        retransmits: u32,
    }

    /// Why a transfer stopped early.
    enum Abort {
        /// The network failed under us.
        Net(NetError),
        /// The peer went quiet or sent an ERROR (the reason).
        Peer(String),
    }

    impl From<NetError> for Abort {
        fn from(e: NetError) -> Abort {
            Abort::Net(e)
        }
    }

    /// Sends `packet` and waits for the peer's answer that `accept` takes,
    /// resending up to [`TRIES`] times; datagrams from anyone else get an
    /// "unknown transfer id" error.
    async fn exchange<T>(
        socket: &mut UdpSocket,
        peer: IpEndpoint,
        packet: &[u8],
        retransmits: &mut u32,
        mut accept: impl FnMut(Packet<'_>) -> Option<Result<T, Abort>>,
    ) -> Result<T, Abort> {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        for attempt in 0..TRIES {
            if attempt > 0 {
                *retransmits += 1;
            }
            with_timeout(Some(RETRY), socket.send_to(packet, peer)).await?;
            let deadline = time::now_ns() + RETRY.as_nanos() as u64;
            loop {
                let left = Duration::from_nanos(deadline.saturating_sub(time::now_ns()));
                let (n, from) = match with_timeout(Some(left), socket.recv_from(&mut buf)).await {
                    Ok(got) => got,
                    Err(NetError::Timeout) => break,
                    // A datagram too big for a block: not from a sane peer.
                    Err(NetError::Socket(_)) => continue,
                    Err(e) => return Err(e.into()),
                };
                if from != peer {
                    let refusal = tftp::error(code::UNKNOWN_TID, "Unknown transfer ID");
                    with_timeout(Some(RETRY), socket.send_to(&refusal, from)).await?;
                    continue;
                }
                match tftp::parse(&buf[..n]) {
                    Ok(Packet::Error { code, message }) => {
                        return Err(Abort::Peer(alloc::format!(
                            "peer error {code}: {}",
                            String::from_utf8_lossy(message)
                        )))
                    }
                    Ok(packet) => {
                        if let Some(result) = accept(packet) {
                            return result;
                        }
                    }
                    Err(_) => {}
                }
            }
        }
        Err(Abort::Peer(alloc::format!("no answer after {TRIES} tries")))
    }

    /// Receives a file: ACK 0 (or OACK), then DATA 1, 2, … each ACKed,
    /// until a short block. Returns the file and what it took.
    async fn receive(
        socket: &mut UdpSocket,
        peer: IpEndpoint,
        blksize: Option<usize>,
        room: usize,
    ) -> Result<(Vec<u8>, Transfer), Abort> {
        let block_size = blksize.unwrap_or(tftp::DEFAULT_BLOCK);
        let mut file = Vec::new();
        let mut t = Transfer {
            bytes: 0,
            blocks: 0,
            block_size,
            retransmits: 0,
        };
        let mut reply = match blksize {
            Some(size) => tftp::option_ack(size),
            None => tftp::ack(0).to_vec(),
        };
        loop {
            let expected = tftp::block_number(t.blocks + 1);
            let mut last = false;
            let mut overflow = false;
            exchange(socket, peer, &reply, &mut t.retransmits, |packet| {
                match packet {
                    Packet::Data { block, data } if block == expected => {
                        if data.len() > block_size {
                            return Some(Err(Abort::Peer("block larger than agreed".into())));
                        }
                        if file.len() + data.len() > room {
                            overflow = true;
                        } else {
                            file.extend_from_slice(data);
                        }
                        last = data.len() < block_size;
                        Some(Ok(()))
                    }
                    // A duplicate of the block before: our ACK was lost;
                    // the retransmit loop resends it.
                    _ => None,
                }
            })
            .await?;
            if overflow {
                let refusal = tftp::error(code::DISK_FULL, "Disk full");
                with_timeout(Some(RETRY), socket.send_to(&refusal, peer)).await?;
                return Err(Abort::Peer("file too large".into()));
            }
            t.blocks += 1;
            reply = tftp::ack(expected).to_vec();
            if last {
                // The final ACK; if it is lost the client resends its last
                // block to a closed port, which is TFTP's accepted loss.
                with_timeout(Some(RETRY), socket.send_to(&reply, peer)).await?;
                t.bytes = file.len();
                return Ok((file, t));
            }
        }
    }

    /// Sends `file`: (OACK, ACK 0,) then DATA 1, 2, … each waiting for its
    /// ACK, ending with a short (perhaps empty) block.
    async fn send(
        socket: &mut UdpSocket,
        peer: IpEndpoint,
        blksize: Option<usize>,
        file: &[u8],
    ) -> Result<Transfer, Abort> {
        let block_size = blksize.unwrap_or(tftp::DEFAULT_BLOCK);
        let mut t = Transfer {
            bytes: file.len(),
            blocks: 0,
            block_size,
            retransmits: 0,
        };
        if let Some(size) = blksize {
            exchange(
                socket,
                peer,
                &tftp::option_ack(size),
                &mut t.retransmits,
                |p| (p == Packet::Ack(0)).then_some(Ok(())),
            )
            .await?;
        }
        // A file of exactly N blocks ends with an empty block N + 1.
        let count = file.len() / block_size + 1;
        for (index, chunk) in (1u64..).zip(
            file.chunks(block_size)
                .chain(core::iter::once(&file[..0]))
                .take(count),
        ) {
            let number = tftp::block_number(index);
            let packet = tftp::data(number, chunk);
            exchange(socket, peer, &packet, &mut t.retransmits, |p| {
                (p == Packet::Ack(number)).then_some(Ok(()))
            })
            .await?;
            t.blocks += 1;
        }
        Ok(t)
    }

    /// One transfer's task, on its own socket.
    async fn transfer(
        tftpd: Arc<Tftpd>,
        mut socket: UdpSocket,
        peer: IpEndpoint,
        name: String,
        write: bool,
        blksize: Option<usize>,
    ) {
        let start = time::now_ns();
        let port = socket.port();
        let outcome = if write {
            let stored: usize = tftpd
                .files
                .lock()
                .iter()
                .filter(|(k, _)| **k != name)
                .map(|(_, v)| v.len())
                .sum();
            let room = MAX_STORED.saturating_sub(stored);
            match receive(&mut socket, peer, blksize, room).await {
                Ok((file, t)) => {
                    tftpd.files.lock().insert(name.clone(), Arc::new(file));
                    Ok(t)
                }
                Err(e) => Err(e),
            }
        } else {
            let file = tftpd.files.lock().get(&name).cloned();
            match file {
                Some(file) => send(&mut socket, peer, blksize, &file).await,
                None => {
                    let refusal = tftp::error(code::NOT_FOUND, "File not found");
                    match with_timeout(Some(RETRY), socket.send_to(&refusal, peer)).await {
                        Ok(()) => Err(Abort::Peer(String::from("file not found"))),
                        Err(e) => Err(Abort::Net(e)),
                    }
                }
            }
        };
        drop(socket);
        let verb = if write { "put" } else { "get" };
        let secs = (time::now_ns() - start) as f64 / 1e9;
        match outcome {
            Ok(t) => {
                let counter = if write { &tftpd.puts } else { &tftpd.gets };
                counter.fetch_add(1, Ordering::SeqCst);
                println!(
                    "tftpd: {verb} {name} from {peer} (tid {port}): {} bytes, {} blocks of {}, {} retransmits, {secs:.3} s",
                    t.bytes, t.blocks, t.block_size, t.retransmits
                );
            }
            Err(Abort::Peer(why)) => {
                tftpd.failed.fetch_add(1, Ordering::SeqCst);
                println!("tftpd: {verb} {name} from {peer} (tid {port}) failed: {why}");
            }
            Err(Abort::Net(e)) => {
                tftpd.failed.fetch_add(1, Ordering::SeqCst);
                println!("tftpd: {verb} {name} from {peer} (tid {port}) failed: network: {e}");
            }
        }
        tftpd.peers.lock().remove(&(peer, write));
        tftpd.active.fetch_sub(1, Ordering::SeqCst);
        if !write && name == "quit" {
            tftpd.quit.set();
        }
    }

    async fn main(env: &Env<'_>) -> AppResult {
        let fail = |e: NetError| AppError::new(format_args!("tftpd: {e}"));
        let net = Net::connect(env).await.map_err(fail)?;
        println!(
            "tftpd: up: mac {}, ip {}, gw {}, listening on udp {PORT}",
            net.mac(),
            net.config().address,
            net.config()
                .gateway
                .map_or(String::from("none"), |gw| alloc::format!("{gw}")),
        );
        let mut server = UdpSocket::bind(&net, PORT).map_err(fail)?;
        let mut files = BTreeMap::new();
        files.insert(String::from("quit"), Arc::new(b"bye\n".to_vec()));
        let tftpd = Arc::new(Tftpd {
            files: Mutex::new(files),
            puts: AtomicU32::new(0),
            gets: AtomicU32::new(0),
            failed: AtomicU32::new(0),
            active: AtomicU32::new(0),
            peers: Mutex::new(BTreeSet::new()),
            quit: Signal::new(),
        });
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let request = with_timeout(
                Some(Duration::from_secs(REQUEST_TIMEOUT_S)),
                server.recv_from(&mut buf),
            );
            let (n, peer) = match select(tftpd.quit.wait(), request).await {
                Either::Left(()) => break,
                Either::Right(Ok(got)) => got,
                Either::Right(Err(NetError::Socket(why))) => {
                    println!("tftpd: dropped a datagram: {why}");
                    continue;
                }
                Either::Right(Err(e)) => {
                    println!("tftpd: {}", net.stats());
        println!("tftpd: {}", net.runner_stats());
                    return Err(fail(e));
                }
            };
            let (request, write) = match tftp::parse(&buf[..n]) {
                Ok(Packet::Read(request)) => (request, false),
                Ok(Packet::Write(request)) => (request, true),
                other => {
                    println!("tftpd: from {peer}: not a request: {other:?}");
                    let refusal = tftp::error(code::ILLEGAL, "Illegal TFTP operation");
                    with_timeout(Some(RETRY), server.send_to(&refusal, peer))
                        .await
                        .map_err(fail)?;
                    continue;
                }
            };
            if !tftpd.peers.lock().insert((peer, write)) {
                // Its transfer is answering already.
                println!("tftpd: from {peer}: repeated request ignored");
                continue;
            }
            let name = String::from(request.filename);
            let blksize = tftp::negotiate(request.blksize);
            // Each transfer answers from its own random port (its TID).
            let socket = match UdpSocket::bind(&net, 0) {
                Ok(socket) => socket,
                Err(e) => {
                    tftpd.peers.lock().remove(&(peer, write));
                    return Err(fail(e));
                }
            };
            tftpd.active.fetch_add(1, Ordering::SeqCst);
            task::spawn(transfer(tftpd.clone(), socket, peer, name, write, blksize));
        }
        drop(server);
        let deadline = time::now_ns() + 30 * time::NS_PER_SEC;
        while tftpd.active.load(Ordering::SeqCst) > 0 && time::now_ns() < deadline {
            task::sleep(Duration::from_millis(10)).await;
        }
        println!("tftpd: {}", net.stats());
        println!("tftpd: {}", net.runner_stats());
        if let Err(e) = net.shutdown().await {
            println!("tftpd: disconnecting the vif: {e}");
        }
        println!(
            "tftpd: {} puts, {} gets, {} failed, powering off",
            tftpd.puts.load(Ordering::SeqCst),
            tftpd.gets.load(Ordering::SeqCst),
            tftpd.failed.load(Ordering::SeqCst)
        );
        Ok(())
    }

    libos::entry!(async main);
}
