//! The bytes queued for a client. A Connection raises the count when it writes a frame; the
//! response body ([`Metered`]) lowers it as the socket takes bytes. So the count is what the
//! client has not read yet, and a Connection can close a client that stopped reading.

use std::cell::Cell;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;

/// The size a server frame takes on the wire: payload plus an unmasked header.
pub fn wire_len(payload: usize) -> usize {
    payload
        + if payload < 126 {
            2
        } else if payload <= 0xFFFF {
            4
        } else {
            10
        }
}

/// The response body: the context's encoded frames. Every byte handed to the socket writer
/// comes off `queued` (the writer stops polling while the socket is full).
pub struct Metered<E> {
    pub frames: tokio::sync::mpsc::UnboundedReceiver<Result<Bytes, E>>,
    pub queued: Rc<Cell<usize>>,
    /// Cleared when the body is dropped, which the HTTP layer does with the socket: while it
    /// is set, the socket's descriptor is this connection's (see [`cut_later`]).
    pub alive: Rc<Cell<bool>>,
}

impl<E> Drop for Metered<E> {
    fn drop(&mut self) {
        self.alive.set(false);
    }
}

/// The accepted socket's descriptor, put in the connection's data when it is accepted.
#[derive(Clone, Copy)]
pub struct SocketFd(pub RawFd);

/// How long a client cut off for not reading has to take its close frame.
const CUT_GRACE: Duration = Duration::from_secs(2);

/// Cuts a client that stopped reading: unless its socket is gone by then, after
/// `CUT_GRACE` it is reset (linger 0) and shut down, so the kernel frees what it still
/// holds for the client and the HTTP layer drops the connection at its next I/O, instead of
/// waiting minutes with megabytes unsent on a socket no cap counts any more.
pub fn cut_later(fd: SocketFd, alive: Rc<Cell<bool>>) {
    actix_rt::spawn(async move {
        tokio::time::sleep(CUT_GRACE).await;
        // The body and the socket live and die together on this thread, so while `alive`
        // holds the descriptor is still this connection's: it cannot have been closed and
        // reused by another.
        if !alive.get() {
            return;
        }
        // SAFETY: the descriptor is open (see above) and is only borrowed for two calls.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd.0) };
        let socket = socket2::SockRef::from(&borrowed);
        let _ = socket.set_linger(Some(Duration::ZERO));
        let _ = socket.shutdown(std::net::Shutdown::Both);
    });
}

impl<E> Stream for Metered<E> {
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.frames.poll_recv(cx);
        if let Poll::Ready(Some(Ok(bytes))) = &polled {
            self.queued
                .set(self.queued.get().saturating_sub(bytes.len()));
        }
        polled
    }
}
