//! The bytes queued for a client. A Connection raises the count when it writes a frame; the
//! response body ([`Metered`]) lowers it as the socket takes bytes. So the count is what the
//! client has not read yet, and a Connection can close a client that stopped reading.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

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
