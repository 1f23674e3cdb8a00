//! Hub: one per HTTP worker thread, the fan-out of Room frames to that thread's sockets.
//!
//! Owns: nothing but its address; the sockets it writes to are the thread's [`Outbox`]es,
//! which each Connection attaches here when it starts and detaches when it stops.
//! Receives [`Deliver`] from Rooms: one message per worker thread and broadcast, carrying
//! the frame encoded once and the members on this thread; the Hub hands the same bytes to
//! each member's socket ([`Outbox::send`], a direct write), so a broadcast costs no message,
//! wake-up, actor poll, allocation or copy per member. Sends nothing. A member whose socket
//! overflows is told by its outbox, and its Connection closes it.
//!
//! A Room keeps, per member, the Hub's [`Recipient`] it came with, so the Hub never learns
//! rooms: what it gets is already addressed.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;

use super::socket::{Frame, Outbox};
use crate::domain::ids::ConnId;

/// A frame for some of one thread's sockets.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Deliver {
    pub frame: Frame,
    pub to: Arc<[ConnId]>,
}

impl Deliver {
    pub fn one(conn: ConnId, frame: Frame) -> Self {
        Self {
            frame,
            to: Arc::new([conn]),
        }
    }
}

pub struct Hub;

impl Actor for Hub {
    type Context = Context<Self>;
}

thread_local! {
    static HUB: OnceCell<Addr<Hub>> = const { OnceCell::new() };
    static SOCKETS: RefCell<HashMap<ConnId, Rc<Outbox>>> = RefCell::new(HashMap::new());
}

/// Attaches a socket of this thread; answers the thread's Hub, where Rooms send its frames.
pub fn attach(conn: ConnId, outbox: Rc<Outbox>) -> Recipient<Deliver> {
    SOCKETS.with(|s| s.borrow_mut().insert(conn, outbox));
    HUB.with(|hub| hub.get_or_init(|| Hub.start()).clone().recipient())
}

/// Detaches a socket (its Connection stopped): frames still on their way to it are dropped.
pub fn detach(conn: ConnId) {
    SOCKETS.with(|s| s.borrow_mut().remove(&conn));
}

impl Handler<Deliver> for Hub {
    type Result = ();

    fn handle(&mut self, msg: Deliver, _: &mut Self::Context) {
        SOCKETS.with(|sockets| {
            let sockets = sockets.borrow();
            for conn in msg.to.iter() {
                if let Some(outbox) = sockets.get(conn) {
                    // An overflow raises the socket's alarm; its Connection closes it.
                    let _ = outbox.send(&msg.frame);
                }
            }
        });
    }
}
