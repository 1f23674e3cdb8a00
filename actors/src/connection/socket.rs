//! The TCP socket a Connection owns once its upgrade is answered: the client's frames in
//! ([`Inbound`], a stream its actor polls) and the server's frames out ([`Outbox`]).
//!
//! A broadcast goes straight to the socket: the Hub hands the frame to the kernel, with no
//! task woken and no copy, unless the kernel's send buffer is full. Only then is it queued
//! (the shared bytes, never copied), and the [`Inbound`] stream, which the Connection's actor
//! polls anyway, writes the queue out as the socket drains. So the queue is what the client
//! has not taken yet, and past `WS_OUTBOUND_QUEUE_MAX` the client is cut (4008
//! `slow_consumer`). A Connection's own replies are queued for the end of its turn instead
//! ([`Outbox::send_soon`]), so the answers to frames that arrived together leave in one write.
//!
//! Reads use a buffer only while a frame is incomplete: an idle socket holds no buffer.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use actix_http::ws::{CloseCode, OpCode, Parser, ProtocolError};
use bytes::{Buf, Bytes, BytesMut};
use bytestring::ByteString;
use futures_util::Stream;
use tokio::net::TcpStream;

use crate::domain::error::CloseReason;

/// One server frame as it goes on the wire (header and payload; server frames are not
/// masked), so the same bytes serve every member of a broadcast.
#[derive(Clone, Debug)]
pub struct Frame(Bytes);

impl Frame {
    pub fn text(payload: &str) -> Self {
        Self::encode(payload.as_bytes(), OpCode::Text)
    }

    pub fn ping() -> Self {
        Self::encode(b"", OpCode::Ping)
    }

    pub fn pong(payload: &[u8]) -> Self {
        Self::encode(payload, OpCode::Pong)
    }

    pub fn close(reason: CloseReason) -> Self {
        let mut out = BytesMut::new();
        let reason = actix_http::ws::CloseReason {
            code: CloseCode::from(reason.code()),
            description: Some(reason.as_str().to_owned()),
        };
        Parser::write_close(&mut out, Some(reason), false);
        Self(out.freeze())
    }

    fn encode(payload: &[u8], op: OpCode) -> Self {
        let mut out = BytesMut::with_capacity(payload.len() + 10);
        Parser::write_message(&mut out, payload, op, true, false);
        Self(out.freeze())
    }

    /// The payload of a frame (for tests that stand in for a socket).
    #[cfg(test)]
    pub fn payload(&self) -> &[u8] {
        let header = match self.0.get(1).map(|b| b & 0x7F) {
            Some(126) => 4,
            Some(127) => 10,
            _ => 2,
        };
        &self.0[header.min(self.0.len())..]
    }
}

/// What became of a frame handed to [`Outbox::send`].
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    /// Taken by the kernel, or queued behind frames that were not.
    Yes,
    /// Not sent: the client has more than the cap waiting; it is being cut.
    Overflow,
    /// Not sent: the socket is closing or broken.
    Closed,
}

#[derive(Default)]
struct Out {
    queue: VecDeque<Bytes>,
    queued: usize,
    /// Frames accepted for this client (sent or queued), for the log line of its close.
    frames: u64,
    /// Everything queued was put there by [`Outbox::send_soon`] and not yet offered to the
    /// kernel: it waits for this socket's own turn, not for the client, so the cap does not
    /// count it.
    deferred: bool,
    /// No frame is accepted any more (a close frame was queued, or the socket broke).
    shut: bool,
    /// The queue passed the cap, or a write failed: the Connection must close.
    alarm: Option<CloseReason>,
    /// The Connection's actor, polling [`Inbound`]: woken to write the queue or to close.
    waker: Option<Waker>,
}

/// The socket's write side, shared (an `Rc`, on its worker's thread) by its Connection, the
/// Hub of that thread and the [`Inbound`] stream.
pub struct Outbox {
    stream: TcpStream,
    out: RefCell<Out>,
    limit: usize,
}

impl Outbox {
    pub fn new(stream: TcpStream, limit: usize) -> Self {
        Self {
            stream,
            out: RefCell::default(),
            limit,
        }
    }

    /// Bytes waiting for the client in user space (the kernel's send buffer holds the rest).
    pub fn queued(&self) -> usize {
        self.out.borrow().queued
    }

    /// Frames accepted for the client so far, broadcasts included.
    pub fn frames(&self) -> u64 {
        self.out.borrow().frames
    }

    /// Sends `frame`: written now when nothing waits before it, else queued.
    pub fn send(&self, frame: &Frame) -> Sent {
        self.push(frame, false, false)
    }

    /// Sends `frame` once the Connection's current work is done: queued, and written with
    /// whatever else is queued by then in one `writev` when the [`Inbound`] stream is polled
    /// next (the Connection's actor is woken for it). A client that pipelines (eight
    /// `start_game`s in one packet, say) gets its eight answers in one write instead of eight:
    /// each write to a socket costs the kernel's whole send path, and on loopback the
    /// receiver's too.
    pub fn send_soon(&self, frame: &Frame) -> Sent {
        self.push(frame, false, true)
    }

    /// The last frame: sent whatever the cap, and nothing after it.
    pub fn send_last(&self, frame: &Frame) {
        self.push(frame, true, false);
        self.out.borrow_mut().shut = true;
    }

    fn push(&self, frame: &Frame, last: bool, soon: bool) -> Sent {
        let mut out = self.out.borrow_mut();
        if out.shut {
            return Sent::Closed;
        }
        let bytes = &frame.0;
        out.frames += 1;
        if soon && out.waker.is_some() && (out.queue.is_empty() || out.deferred) {
            out.deferred = true;
            out.enqueue(bytes.clone());
            out.wake();
            return Sent::Yes;
        }
        if out.queue.is_empty() {
            match self.stream.try_write(bytes) {
                Ok(n) if n == bytes.len() => return Sent::Yes,
                Ok(n) => out.enqueue(bytes.slice(n..)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => out.enqueue(bytes.clone()),
                Err(_) => {
                    out.broke();
                    return Sent::Closed;
                }
            }
            out.wake();
            return Sent::Yes;
        }
        if !last && !out.deferred && out.queued + bytes.len() > self.limit {
            out.frames -= 1;
            out.alarm.get_or_insert(CloseReason::SlowConsumer);
            out.wake();
            return Sent::Overflow;
        }
        out.enqueue(bytes.clone());
        Sent::Yes
    }

    /// Writes the queue while the socket takes it; `Ready` once it is empty.
    pub fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut out = self.out.borrow_mut();
        while !out.queue.is_empty() {
            if let Err(e) = std::task::ready!(self.stream.poll_write_ready(cx)) {
                out.broke();
                return Poll::Ready(Err(e));
            }
            let mut slices = [IoSlice::new(&[]); 64];
            let mut n = 0;
            for (slot, bytes) in slices.iter_mut().zip(&out.queue) {
                *slot = IoSlice::new(bytes);
                n += 1;
            }
            let written = self.stream.try_write_vectored(&slices[..n]);
            // Offered to the kernel: what it does not take now waits for the client.
            out.deferred = false;
            match written {
                Ok(n) => out.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    out.broke();
                    return Poll::Ready(Err(e));
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    fn register(&self, cx: &Context<'_>) {
        let mut out = self.out.borrow_mut();
        if !out.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            out.waker = Some(cx.waker().clone());
        }
    }

    fn alarm(&self) -> Option<CloseReason> {
        self.out.borrow_mut().alarm.take()
    }
}

impl Out {
    fn enqueue(&mut self, bytes: Bytes) {
        self.queued += bytes.len();
        self.queue.push_back(bytes);
    }

    fn advance(&mut self, mut n: usize) {
        self.queued -= n;
        while n > 0 {
            let front = self.queue.front_mut().expect("written bytes were queued");
            if n < front.len() {
                front.advance(n);
                return;
            }
            n -= front.len();
            self.queue.pop_front();
        }
        if self.queue.is_empty() {
            // A burst should not keep its ring's memory on an idle socket.
            self.queue = VecDeque::new();
        }
    }

    fn broke(&mut self) {
        self.shut = true;
        self.queue = VecDeque::new();
        self.queued = 0;
        self.deferred = false;
        self.alarm.get_or_insert(CloseReason::ClientClosed);
        self.wake();
    }

    fn wake(&mut self) {
        if let Some(waker) = &self.waker {
            waker.wake_by_ref();
        }
    }
}

/// A frame from the client, or why the socket must close.
#[derive(Debug)]
pub enum Event {
    Text(ByteString),
    /// A binary frame or a fragment: podium speaks single text frames.
    Other,
    Ping(Bytes),
    Pong,
    Close,
    /// Close the socket for this reason.
    Shut(CloseReason),
}

/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 4_096;

/// The client's frames, read and unmasked as they arrive; also writes the [`Outbox`] queue
/// out when the socket drains, and raises the outbox's alarms. Ends when the client is gone.
pub struct Inbound {
    outbox: std::rc::Rc<Outbox>,
    /// Bytes of a frame not complete yet; empty (no allocation) between frames.
    buf: BytesMut,
    max_payload: usize,
    done: bool,
}

impl Inbound {
    pub fn new(outbox: std::rc::Rc<Outbox>, leftover: BytesMut, max_payload: usize) -> Self {
        Self {
            outbox,
            buf: leftover,
            max_payload,
            done: false,
        }
    }

    /// The next complete frame in `buf`, if any.
    fn parse(&mut self) -> Option<Event> {
        if self.buf.is_empty() {
            return None;
        }
        let parsed = Parser::parse(&mut self.buf, true, self.max_payload);
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
        let (fin, op, payload) = match parsed {
            Ok(Some(frame)) => frame,
            Ok(None) => return None,
            Err(ProtocolError::Overflow) => return Some(Event::Shut(CloseReason::TooBig)),
            Err(_) => return Some(Event::Shut(CloseReason::ProtocolError)),
        };
        let payload = payload.unwrap_or_default().freeze();
        Some(match op {
            OpCode::Text if fin => match ByteString::try_from(payload) {
                Ok(text) => Event::Text(text),
                Err(_) => Event::Shut(CloseReason::InvalidPayload),
            },
            OpCode::Text | OpCode::Binary | OpCode::Continue => Event::Other,
            OpCode::Ping => Event::Ping(payload),
            OpCode::Pong => Event::Pong,
            OpCode::Close => Event::Close,
            OpCode::Bad => Event::Shut(CloseReason::ProtocolError),
        })
    }

    /// Reads what the socket has into `buf`: `Ready(true)` when bytes came, `Ready(false)` at
    /// the end of the stream.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let stream = &self.outbox.stream;
        loop {
            if std::task::ready!(stream.poll_read_ready(cx)).is_err() {
                return Poll::Ready(false);
            }
            self.buf.reserve(READ_CHUNK);
            match stream.try_read_buf(&mut self.buf) {
                Ok(0) => return Poll::Ready(false),
                Ok(_) => return Poll::Ready(true),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.buf.is_empty() {
                        self.buf = BytesMut::new();
                    }
                }
                Err(_) => return Poll::Ready(false),
            }
        }
    }
}

impl Stream for Inbound {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        if self.done {
            return Poll::Ready(None);
        }
        self.outbox.register(cx);
        // A write error shows up as an alarm, below.
        let _ = self.outbox.poll_flush(cx);
        if let Some(reason) = self.outbox.alarm() {
            return Poll::Ready(Some(Event::Shut(reason)));
        }
        loop {
            if let Some(event) = self.parse() {
                return Poll::Ready(Some(event));
            }
            if !std::task::ready!(self.poll_read(cx)) {
                self.done = true;
                return Poll::Ready(None);
            }
        }
    }
}

/// How long a closed socket has to take what is queued for it before it is reset.
const FLUSH_GRACE: Duration = Duration::from_secs(2);
/// How long a closed socket waits for the client's own close before the descriptor goes.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// The end of a socket whose Connection stopped: the queue (its close frame last) is written
/// out, the write side shut, and the client given a moment to close its side, so the close
/// frame is not lost to a reset. A client that takes nothing within `FLUSH_GRACE` (one cut
/// for not reading) is reset at once, so the kernel frees what it still holds for it.
pub async fn linger(outbox: std::rc::Rc<Outbox>) {
    let flushed = tokio::time::timeout(
        FLUSH_GRACE,
        futures_util::future::poll_fn(|cx| outbox.poll_flush(cx)),
    )
    .await;
    let socket = socket2::SockRef::from(&outbox.stream);
    if !matches!(flushed, Ok(Ok(()))) {
        let _ = socket.set_linger(Some(Duration::ZERO));
        return;
    }
    let _ = socket.shutdown(std::net::Shutdown::Write);
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        let mut sink = [0u8; 512];
        loop {
            if outbox.stream.readable().await.is_err() {
                return;
            }
            match outbox.stream.try_read(&mut sink) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server socket and its client, the client a plain non-blocking socket so a read is a
    /// real `read` (tokio's `try_read` answers from its own readiness, without asking).
    async fn pair() -> (TcpStream, std::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client.set_nonblocking(true).unwrap();
        let server = listener.accept().await.unwrap().0;
        // Known writable, as a socket in use is: a write is then tried at once.
        server.writable().await.unwrap();
        (server, client)
    }

    fn waiting(mut client: &std::net::TcpStream) -> usize {
        use std::io::Read;
        let mut buf = [0u8; 4096];
        match client.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => panic!("{e}"),
        }
    }

    #[tokio::test]
    async fn frames_sent_soon_go_out_together_and_do_not_count_against_the_cap() {
        let (server, client) = pair().await;
        // A cap below one frame: only what the kernel refused may count against it.
        let outbox = Outbox::new(server, 8);
        let waker = futures_util::task::noop_waker();
        outbox.register(&Context::from_waker(&waker));
        let (a, b) = (Frame::text("first reply"), Frame::text("second reply"));
        assert_eq!(outbox.send_soon(&a), Sent::Yes);
        assert_eq!(outbox.send_soon(&b), Sent::Yes);
        // Queued behind deferred frames, a broadcast is not an overflow either.
        assert_eq!(outbox.send(&a), Sent::Yes);
        // Loopback delivers within the write: had anything been written, it would be here.
        assert_eq!(waiting(&client), 0, "nothing is written before the flush");
        let flushed = futures_util::future::poll_fn(|cx| outbox.poll_flush(cx)).await;
        assert!(flushed.is_ok());
        assert_eq!(outbox.queued(), 0);
        let want = 2 * a.0.len() + b.0.len();
        // Loopback again: all of it is there once the flush returned.
        assert_eq!(waiting(&client), want);
    }
}
