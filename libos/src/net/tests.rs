//! The stack over smoltcp's loopback device, driven by hand: runner
//! turns, socket futures polled with counting wakers, a clock the test
//! moves. What it checks is what the guest relies on: wakers fire when
//! data or connections arrive, many clients can connect at once, dropped
//! sockets are freed, a stack with nothing to do asks for no timer (so
//! the runner sleeps until an event), and a socket whose stack is gone
//! gives an error instead of a panic.

use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use std::boxed::Box;

use smoltcp::iface::{Config, Interface};
use smoltcp::wire::{EthernetAddress, IpEndpoint, Ipv4Address, Ipv4Cidr};

use super::clock;
use super::stack::host::LoopbackLink;
use super::stack::{Shared, Stack, Turn};
use super::{MacAddress, Net, NetConfig, NetError, TcpListener, TcpStream, UdpSocket};
use crate::rng::Rng;

extern crate std;

const HOST: Ipv4Address = Ipv4Address::new(127, 0, 0, 1);

struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A future under test with its own waker, polled by hand.
struct Probe<T> {
    future: Pin<Box<dyn Future<Output = T>>>,
    wakes: Arc<CountingWaker>,
}

impl<T> Probe<T> {
    fn new(future: impl Future<Output = T> + 'static) -> Probe<T> {
        Probe {
            future: Box::pin(future),
            wakes: Arc::new(CountingWaker(AtomicUsize::new(0))),
        }
    }

    fn poll(&mut self) -> Poll<T> {
        let waker = Waker::from(self.wakes.clone());
        self.future.as_mut().poll(&mut Context::from_waker(&waker))
    }

    fn wakes(&self) -> usize {
        self.wakes.0.load(Ordering::SeqCst)
    }
}

fn net() -> Net {
    let mut link = LoopbackLink::new();
    let mac = [0x02, 0, 0, 0, 0, 1];
    let iface = Interface::new(
        Config::new(EthernetAddress(mac).into()),
        &mut link.device,
        clock::instant(clock::now_ns()),
    );
    let mut stack = Stack::new(link, iface, Rng::from_seed(7));
    stack
        .apply_config(Some(NetConfig {
            address: Ipv4Cidr::new(HOST, 8),
            gateway: None,
        }))
        .unwrap();
    Net::from_shared(Shared::new(stack), MacAddress(mac))
}

/// Runs runner turns until one leaves nothing to do at once.
fn settle(net: &Net) -> Turn {
    for _ in 0..100 {
        let turn = net
            .shared()
            .with(|stack| Ok(stack.turn(clock::now_ns())))
            .unwrap();
        if !turn.again {
            return turn;
        }
    }
    panic!("the stack never settled");
}

/// Polls `probe` between runner turns until it is ready.
fn drive<T>(net: &Net, probe: &mut Probe<T>) -> T {
    for _ in 0..50 {
        if let Poll::Ready(value) = probe.poll() {
            return value;
        }
        settle(net);
    }
    panic!("the future never completed");
}

fn endpoint(port: u16) -> IpEndpoint {
    IpEndpoint::new(HOST.into(), port)
}

/// A connected pair: (server side, client side).
fn connected(net: &Net, listener: &Arc<TcpListener>, port: u16) -> (TcpStream, TcpStream) {
    let mut client = Probe::new({
        let net = net.clone();
        async move { TcpStream::connect(&net, endpoint(port)).await }
    });
    let mut server = Probe::new({
        let listener = listener.clone();
        async move { listener.accept().await }
    });
    assert!(server.poll().is_pending());
    let client = drive(net, &mut client).unwrap();
    let (server_stream, peer) = drive(net, &mut server).unwrap();
    assert_eq!(Some(peer), client.local_endpoint());
    (server_stream, client)
}

#[test]
fn a_connection_carries_bytes_both_ways_and_wakes_its_reader() {
    let net = net();
    let listener = Arc::new(TcpListener::bind(&net, 7).unwrap());
    let (mut server, mut client) = connected(&net, &listener, 7);

    let mut read = Probe::new(async move {
        let mut buf = [0u8; 64];
        let n = server.read(&mut buf).await?;
        Ok::<_, NetError>((server, buf[..n].to_vec()))
    });
    assert!(read.poll().is_pending(), "nothing sent yet");
    let mut write = Probe::new(async move {
        client.write_all(b"hello, stack").await?;
        Ok::<_, NetError>(client)
    });
    let mut client = drive(&net, &mut write).unwrap();
    settle(&net);
    assert!(read.wakes() > 0, "data arriving must wake the reader");
    let (mut server, got) = drive(&net, &mut read).unwrap();
    assert_eq!(got, b"hello, stack");

    // The peer closing shows as a read of 0.
    client.close();
    settle(&net);
    let mut eof = Probe::new(async move {
        let mut buf = [0u8; 8];
        server.read(&mut buf).await
    });
    assert_eq!(drive(&net, &mut eof), Ok(0));
}

#[test]
fn dropped_streams_are_freed_and_an_idle_stack_wants_no_timer() {
    let net = net();
    let listener = Arc::new(TcpListener::bind(&net, 80).unwrap());
    // Only the listener's listening socket; nothing to time.
    assert_eq!(net.socket_count(), 1);
    assert_eq!(settle(&net).deadline_ns, None);

    for round in 0..3u8 {
        let (mut server, client) = connected(&net, &listener, 80);
        let mut reply = Probe::new(async move {
            server.write_all(&[round; 3000]).await?;
            Ok::<_, NetError>(server)
        });
        let server = drive(&net, &mut reply).unwrap();
        drop(server);
        drop(client);
        for _ in 0..5 {
            settle(&net);
        }
        assert_eq!(
            net.socket_count(),
            1,
            "round {round}: both ends closed and freed, the listener's spare remains"
        );
        assert_eq!(
            settle(&net).deadline_ns,
            None,
            "round {round}: after the connection, nothing is left to time"
        );
    }
}

#[test]
fn many_clients_connecting_at_once_are_all_accepted() {
    let net = net();
    let listener = Arc::new(TcpListener::bind(&net, 8080).unwrap());
    const CLIENTS: usize = 40;
    let mut clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let net = net.clone();
            Probe::new(async move { TcpStream::connect(&net, endpoint(8080)).await })
        })
        .collect();
    // Every SYN goes out in the same turn.
    for client in &mut clients {
        assert!(client.poll().is_pending());
    }
    settle(&net);
    let mut accepted = Vec::new();
    for _ in 0..CLIENTS {
        let mut accept = Probe::new({
            let listener = listener.clone();
            async move { listener.accept().await }
        });
        accepted.push(drive(&net, &mut accept).unwrap());
    }
    let connected = clients
        .iter_mut()
        .map(|c| matches!(c.poll(), Poll::Ready(Ok(_))))
        .filter(|ok| *ok)
        .count();
    assert_eq!(connected, CLIENTS);
}

#[test]
fn a_full_backlog_refuses_and_recovers() {
    let net = net();
    let options = super::ListenOptions {
        backlog: 2,
        ..Default::default()
    };
    let listener = Arc::new(TcpListener::bind_with(&net, 9, options).unwrap());
    let mut clients: Vec<_> = (0..4)
        .map(|_| {
            let net = net.clone();
            Probe::new(async move { TcpStream::connect(&net, endpoint(9)).await })
        })
        .collect();
    for client in &mut clients {
        assert!(client.poll().is_pending());
    }
    for _ in 0..5 {
        settle(&net);
    }
    let outcomes: Vec<bool> = clients
        .iter_mut()
        .map(|c| matches!(c.poll(), Poll::Ready(Ok(_))))
        .collect();
    assert_eq!(outcomes.iter().filter(|ok| **ok).count(), 2, "{outcomes:?}");
    // Accepting makes room: the next client gets in.
    let mut accept = Probe::new({
        let listener = listener.clone();
        async move { listener.accept().await }
    });
    let _first = drive(&net, &mut accept).unwrap();
    let mut late = Probe::new({
        let net = net.clone();
        async move { TcpStream::connect(&net, endpoint(9)).await }
    });
    assert!(drive(&net, &mut late).is_ok(), "room again after an accept");
}

#[test]
fn sockets_give_errors_not_panics_once_the_stack_is_down() {
    let net = net();
    let listener = Arc::new(TcpListener::bind(&net, 7).unwrap());
    let (mut server, client) = connected(&net, &listener, 7);
    let mut udp = UdpSocket::bind(&net, 53).unwrap();
    assert!(net.shared().take().is_some());
    let mut read = Probe::new(async move {
        let mut buf = [0u8; 8];
        let result = server.read(&mut buf).await;
        (server, result)
    });
    let Poll::Ready((server, result)) = read.poll() else {
        panic!("a read on a dead stack must not wait");
    };
    assert_eq!(result, Err(NetError::Down));
    let mut send = Probe::new(async move { udp.send_to(b"x", endpoint(53)).await });
    assert_eq!(send.poll(), Poll::Ready(Err(NetError::Down)));
    assert_eq!(
        TcpListener::bind(&net, 81).err(),
        Some(NetError::Down),
        "no new sockets either"
    );
    drop((server, client, listener));
    assert_eq!(net.config().address.address(), Ipv4Address::UNSPECIFIED);
}

#[test]
fn a_reset_connection_reads_as_closed() {
    let net = net();
    let listener = Arc::new(TcpListener::bind(&net, 7).unwrap());
    let (mut server, mut client) = connected(&net, &listener, 7);
    client.abort();
    settle(&net);
    let mut read = Probe::new(async move {
        let mut buf = [0u8; 8];
        server.read(&mut buf).await
    });
    assert_eq!(drive(&net, &mut read), Err(NetError::Closed));
}

#[test]
fn an_orphan_whose_peer_never_closes_is_reset_after_the_linger() {
    let net = net();
    let listener = Arc::new(TcpListener::bind(&net, 7).unwrap());
    let (server, _client) = connected(&net, &listener, 7);
    // Only one side closes: the socket waits in FIN-WAIT-2 for a FIN.
    drop(server);
    settle(&net);
    assert_eq!(net.socket_count(), 3, "listener spare, client, orphan");
    let turn = settle(&net);
    let deadline = turn.deadline_ns.expect("the linger is a deadline");
    assert!(deadline <= clock::now_ns() + super::LINGER.as_nanos() as u64);
    clock::set_now_ns(clock::now_ns() + super::LINGER.as_nanos() as u64 + 1);
    settle(&net);
    settle(&net);
    assert_eq!(net.socket_count(), 2, "the orphan was reset and freed");
}

#[test]
fn udp_datagrams_go_both_ways_and_a_timeout_ends_a_wait() {
    let net = net();
    let mut a = UdpSocket::bind(&net, 69).unwrap();
    let mut b = UdpSocket::bind(&net, 0).unwrap();
    let b_port = b.port();
    assert_ne!(b_port, 0);
    let mut exchange = Probe::new(async move {
        b.send_to(b"ping", endpoint(69)).await?;
        let mut buf = [0u8; 16];
        let (n, from) = a.recv_from(&mut buf).await?;
        a.send_to(&buf[..n], from).await?;
        let (n, from) = b.recv_from(&mut buf).await?;
        Ok::<_, NetError>((buf[..n].to_vec(), from, b))
    });
    let (got, from, mut b) = drive(&net, &mut exchange).unwrap();
    assert_eq!(got, b"ping");
    assert_eq!(from, endpoint(69));

    b.set_timeout(Some(Duration::from_secs(1)));
    let mut wait = Probe::new(async move {
        let mut buf = [0u8; 16];
        b.recv_from(&mut buf).await.map(|_| ())
    });
    assert!(wait.poll().is_pending());
    clock::set_now_ns(clock::now_ns() + 2_000_000_000);
    assert_eq!(wait.poll(), Poll::Ready(Err(NetError::Timeout)));
}

#[test]
fn finish_waits_for_both_sides_to_close() {
    let net = net();
    let listener = Arc::new(TcpListener::bind(&net, 7).unwrap());
    let (mut server, mut client) = connected(&net, &listener, 7);
    let mut finish = Probe::new(async move {
        server.write_all(b"bye").await?;
        let result = server.finish().await;
        result.map(|()| server)
    });
    assert!(finish.poll().is_pending());
    settle(&net);
    assert!(finish.poll().is_pending(), "the client has not closed yet");
    let mut read = Probe::new(async move {
        let mut buf = [0u8; 8];
        let n = client.read(&mut buf).await?;
        let end = client.read(&mut buf[n..]).await?;
        client.close();
        Ok::<_, NetError>((n, end, client))
    });
    let (n, end, _client) = drive(&net, &mut read).unwrap();
    assert_eq!((n, end), (3, 0));
    let server = drive(&net, &mut finish).unwrap();
    assert_eq!(server.state_name(), "TIME-WAIT");
}

/// An Ethernet/IPv4/TCP frame from 127.0.0.1:`from` to 127.0.0.1:`to`
/// with TCP flags `flags` (checksums zero: the loopback ignores them).
fn tcp_frame(from: u16, to: u16, flags: u8) -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    frame.extend_from_slice(&[0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0]);
    frame.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 1]);
    frame.extend_from_slice(&from.to_be_bytes());
    frame.extend_from_slice(&to.to_be_bytes());
    frame.extend_from_slice(&[
        0, 0, 0x04, 0xd2, 0, 0, 0, 0, 0x50, flags, 0x10, 0, 0, 0, 0, 0,
    ]);
    frame
}

#[test]
fn only_a_syn_repeating_a_connection_counts_as_a_duplicate() {
    let peer = endpoint(40000);
    let known = [(peer, 80)];
    assert!(super::stack::is_duplicate_syn(
        &tcp_frame(40000, 80, 0x02),
        &known
    ));
    assert!(
        !super::stack::is_duplicate_syn(&tcp_frame(40000, 80, 0x12), &known),
        "SYN-ACK"
    );
    assert!(
        !super::stack::is_duplicate_syn(&tcp_frame(40000, 80, 0x10), &known),
        "ACK"
    );
    assert!(
        !super::stack::is_duplicate_syn(&tcp_frame(40001, 80, 0x02), &known),
        "new peer"
    );
    assert!(
        !super::stack::is_duplicate_syn(&tcp_frame(40000, 81, 0x02), &known),
        "other port"
    );
    assert!(
        !super::stack::is_duplicate_syn(&tcp_frame(40000, 80, 0x02)[..40], &known),
        "cut short"
    );
    assert!(!super::stack::is_duplicate_syn(&[], &known));
}

/// A client that retransmits its SYN after the connection exists must
/// not get a second socket for the same addresses (a listening socket
/// in an earlier slot would take it, and the client would be reset).
#[test]
fn a_retransmitted_syn_does_not_open_a_second_connection() {
    let net = net();
    // Two low slots, freed: the client takes the first, and the listening
    // socket that replaces the one the SYN went to takes the second, in
    // front of the connection.
    let spares = [81, 82].map(|port| TcpListener::bind(&net, port).unwrap());
    let listener = Arc::new(TcpListener::bind(&net, 80).unwrap());
    drop(spares);
    let (mut server, mut client) = connected(&net, &listener, 80);
    let port = client.local_endpoint().unwrap().port;
    let before = net.socket_count();
    net.shared()
        .with(|stack| {
            stack
                .link
                .device
                .get_mut()
                .unwrap()
                .inject(tcp_frame(port, 80, 0x02));
            Ok(())
        })
        .unwrap();
    settle(&net);
    assert_eq!(net.runner_stats().duplicate_syns, 1);
    assert_eq!(net.socket_count(), before, "no second connection");
    let mut exchange = Probe::new(async move {
        client.write_all(b"still here").await?;
        let mut buf = [0u8; 16];
        let n = server.read(&mut buf).await?;
        Ok::<_, NetError>(buf[..n].to_vec())
    });
    assert_eq!(drive(&net, &mut exchange).unwrap(), b"still here");
}

#[test]
fn a_connection_survives_the_link_going_down_and_up_again() {
    let net = net();
    let listener = Arc::new(TcpListener::bind(&net, 9).unwrap());
    let (mut server, mut client) = connected(&net, &listener, 9);
    assert!(net.is_link_up());
    // The vif is lost: the device is taken out from under the interface.
    let device = net
        .shared()
        .with(|stack| Ok(stack.link.device.take()))
        .unwrap()
        .expect("the link was up");
    assert!(!net.is_link_up());
    let sockets = net.socket_count();
    // The app writes meanwhile; nothing can arrive, nothing is lost.
    let mut write = Probe::new(async move {
        client.write_all(b"sent while the link was down").await?;
        Ok::<_, NetError>(client)
    });
    let client = drive(&net, &mut write).unwrap();
    let turn = settle(&net);
    let dropped = net
        .shared()
        .with(|stack| Ok(stack.link.device.dropped()))
        .unwrap();
    assert!(dropped >= 1, "the segment went to the sink");
    // The runner is not spinning: the next thing due is TCP's timer.
    let due = turn.deadline_ns.expect("a retransmission is due");
    assert!(due > clock::now_ns(), "no busy loop while the link is down");
    assert_eq!(net.socket_count(), sockets, "every socket lives on");
    // The link comes back (a new device, same interface): TCP's
    // retransmission delivers what was written.
    net.shared()
        .with(|stack| {
            stack.link.device.put(device);
            stack.kick();
            Ok(())
        })
        .unwrap();
    assert!(net.is_link_up());
    let mut read = Probe::new(async move {
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < 28 {
            let n = server.read(&mut buf).await?;
            got.extend_from_slice(&buf[..n]);
        }
        Ok::<_, NetError>(got)
    });
    for _ in 0..100 {
        if let Poll::Ready(got) = read.poll() {
            assert_eq!(got.unwrap(), b"sent while the link was down");
            drop(client);
            return;
        }
        let turn = settle(&net);
        if let Some(due) = turn.deadline_ns {
            clock::set_now_ns(due.max(clock::now_ns()));
        }
    }
    panic!("the data written while the link was down never arrived");
}
