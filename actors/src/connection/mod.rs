//! Connection: one per WebSocket, on the HTTP worker's thread, owning its TCP socket once the
//! upgrade is answered ([`server`] hands it over, [`socket`] reads and writes it).
//!
//! Owns: the socket ([`Outbox`] to write, [`Inbound`] to read), the socket's identity (user
//! once authenticated), the rooms it joined, and its heartbeat and activity clocks.
//! Receives the client's frames (the [`Inbound`] stream), [`Notice`] and [`Kick`] (from the
//! ConnectionRegistry: announcements, shutdown, kicks), both in [`inbox`]. Sends
//! [`Authenticate`]/[`Attach`] to the ConnectionRegistry, [`Join`](crate::room::Join)/
//! [`Leave`]/[`Resync`](crate::room::Resync) to the RoomRegistry and
//! [`Submit`](crate::results::Submit) to its thread's ResultsPipeline (taken from the
//! [`Gateway`] when it is built), all reached through its [`Gateway`]. Room frames do not pass through it: Rooms send them to its thread's [`hub`],
//! which writes them to its socket directly; the Connection attaches its socket there when it
//! starts and detaches it when it stops. Its whole life is here: the caps are checked in
//! [`upgrade`] before the handshake is answered, `started` arms the auth deadline and
//! heartbeat, `stopping` leaves every room, `stopped` hands the socket to
//! [`linger`](socket::linger) to close, and the [`ConnSlot`] it holds releases its place in
//! the registry on drop. Nobody restarts a Connection: when it stops, the client reconnects.
//! What it does for each message once the player is admitted is in `handlers.rs`, an `impl
//! Connection` of its own.

mod games;
pub mod gateway;
mod handlers;
pub mod hub;
pub mod inbox;
pub mod server;
pub mod socket;
#[cfg(test)]
mod tests;

use std::any::Any;
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use bytes::BytesMut;
use bytestring::ByteString;
use tokio::net::TcpStream;

use crate::connection_registry::{Attach, Authenticate, ConnSlot, Reserve};
use crate::domain::clock::now_ms;
use crate::domain::error::{ClientError, CloseReason};
use crate::domain::ids::{ConnId, Region, RoomId, UserId};
use crate::domain::protocol::{self, encode, ClientMsg, MsgId, ServerMsg};
use crate::domain::window::Verdict;
use crate::results::ResultsPipeline;
use crate::room::Leave;
use crate::telemetry;
use games::CountedGames;
pub use gateway::{client_ip, Gateway};
use hub::Deliver;
pub use inbox::{Kick, Notice};
use socket::{Event, Frame, Inbound, Outbox, Sent};

/// Longest a shutdown waits for this socket's submits in flight to be answered.
const SUBMIT_GRACE: Duration = Duration::from_secs(2);

/// Set by [`server`] on a request that came with `Upgrade: websocket`: only such a request can
/// be taken over, so `/ws` answers any other 400.
pub(crate) struct Upgrading;

/// Connection data kept for as long as the socket lives (the HTTP layer drops its own copy
/// when it hands the socket over): put one in an on-connect callback, for instance a guard
/// that counts connections per address.
#[derive(Clone)]
pub struct Hold(pub Rc<dyn Any>);

/// The `/ws` route's yes, in its 101 answer: what the Connection is started with once
/// [`server`] has written the answer.
pub(crate) struct Accepted {
    slot: ConnSlot,
    gateway: Arc<Gateway>,
    hold: Option<Hold>,
}

impl Accepted {
    /// Starts the Connection on this thread, owning `stream`; `leftover` is what the client
    /// sent after its request head.
    fn start(self, stream: TcpStream, leftover: BytesMut) {
        let outbox = Rc::new(Outbox::new(
            stream,
            self.gateway.ws.outbound_queue_max_bytes,
        ));
        let inbound = Inbound::new(outbox.clone(), leftover, self.gateway.ws.max_payload_bytes);
        Connection::create(move |ctx| {
            ctx.add_stream(inbound);
            Connection::new(self, outbox)
        });
    }
}

/// `GET /ws`: checks the handshake and the caps; the 101 it answers carries the Connection to
/// start (see [`server`]).
pub async fn upgrade(req: HttpRequest, gateway: web::Data<Arc<Gateway>>) -> HttpResponse {
    let handshake = if req.extensions().contains::<Upgrading>() {
        actix_http::ws::handshake(req.head())
    } else {
        Err(actix_http::ws::HandshakeError::NoWebsocketUpgrade)
    };
    let mut response = match handshake {
        Ok(response) => response,
        Err(err) => {
            return ClientError::BadMessage(format!("not a WebSocket upgrade: {err}"))
                .error_response()
        }
    };
    let ip = client_ip(&req, gateway.trust_proxy);
    let slot = match gateway.connections.send(Reserve { ip }).await {
        Ok(Ok(slot)) => slot,
        Ok(Err(err)) => {
            telemetry::connection_refused(err.code());
            return err.error_response();
        }
        Err(_) => return ClientError::Internal.error_response(),
    };
    let mut response = HttpResponse::from(response.finish()).map_into_boxed_body();
    response.extensions_mut().insert(Accepted {
        slot,
        gateway: gateway.get_ref().clone(),
        hold: req.conn_data::<Hold>().cloned(),
    });
    response
}

pub struct Connection {
    /// Our place in the ConnectionRegistry; released when this actor is dropped.
    slot: ConnSlot,
    gateway: Arc<Gateway>,
    /// Set once `auth` succeeded; every other message waits for it.
    user: Option<UserId>,
    /// The player's region, from their token, carried into their game sessions.
    region: Option<Region>,
    /// Rooms joined, so `stopping` can leave them all.
    rooms: HashSet<RoomId>,
    /// Any frame from the client (the heartbeat clock).
    last_heard: Instant,
    /// Any message other than a ping (the inactivity clock).
    last_active: Instant,
    /// The socket's write side.
    outbox: Rc<Outbox>,
    /// This thread's Hub, where Rooms send this socket's frames.
    hub: Recipient<Deliver>,
    /// This thread's results pipeline, which decides this socket's submits in order.
    results: Addr<ResultsPipeline>,
    /// Why we are closing, once we are.
    closing: Option<CloseReason>,
    /// Submits sent to the pipeline and not yet answered.
    in_flight: u32,
    /// A shutdown close waiting for `in_flight` to reach zero.
    close_after: Option<CloseReason>,
    /// Connection data kept while the socket lives (see [`Hold`]).
    _hold: Option<Hold>,
    /// When the socket was upgraded, and the client's frames since: for its close's log line.
    opened: Instant,
    frames_in: u64,
    /// The counted games started on this socket, each counted from its `input` frames.
    counted: CountedGames,
}

impl Connection {
    fn new(accepted: Accepted, outbox: Rc<Outbox>) -> Self {
        let now = Instant::now();
        // Built on the socket's thread (see `Accepted::start`), so this is that thread's Hub.
        let hub = hub::attach(accepted.slot.id, outbox.clone());
        let results = accepted.gateway.results.here();
        Self {
            slot: accepted.slot,
            gateway: accepted.gateway,
            user: None,
            region: None,
            rooms: HashSet::new(),
            last_heard: now,
            last_active: now,
            outbox,
            hub,
            results,
            closing: None,
            in_flight: 0,
            close_after: None,
            _hold: accepted.hold,
            opened: now,
            frames_in: 0,
            counted: CountedGames::default(),
        }
    }

    fn id(&self) -> ConnId {
        self.slot.id
    }

    /// Writes one text frame.
    fn send(&mut self, ctx: &mut Context<Self>, text: ByteString) {
        self.write(ctx, &Frame::text(&text));
    }

    /// Writes one frame, or closes the socket when the client has stopped reading.
    fn write(&mut self, ctx: &mut Context<Self>, frame: &Frame) {
        if self.closing.is_some() {
            return;
        }
        if self.outbox.send_soon(frame) == Sent::Overflow {
            self.close(ctx, CloseReason::SlowConsumer);
        }
    }

    fn reply(&mut self, ctx: &mut Context<Self>, msg: &ServerMsg<'_>, re: Option<&MsgId>) {
        telemetry::message_out(msg.kind(), 1);
        self.send(ctx, encode(msg, re));
    }

    fn reply_error(&mut self, ctx: &mut Context<Self>, err: &ClientError, re: Option<&MsgId>) {
        self.reply(ctx, &ServerMsg::error(err), re);
    }

    fn close(&mut self, ctx: &mut Context<Self>, reason: CloseReason) {
        if self.closing.is_some() {
            return;
        }
        self.closing = Some(reason);
        if reason == CloseReason::SlowConsumer {
            telemetry::outbound_queue(self.outbox.queued());
        }
        self.outbox.send_last(&Frame::close(reason));
        ctx.stop();
    }

    /// One frame from the client that is not a control frame: `Some(text)` for a text
    /// frame, `None` for binary or a fragment. Every such frame counts against the player's
    /// message window, junk included, but for `input` frames within the socket's own input
    /// budget; before `auth` any frame but a valid `auth` closes 4401.
    fn on_frame(&mut self, ctx: &mut Context<Self>, text: Option<&str>) {
        let started = Instant::now();
        let parsed = match text {
            Some(text) => protocol::parse(text, self.gateway.ws.max_message_length),
            None => Err((
                None,
                ClientError::BadMessage("send JSON in single text frames".into()),
            )),
        };
        let Some(user) = self.user.clone() else {
            self.gateway.stats.message(false, Some(started.elapsed()));
            return self.before_auth(ctx, parsed);
        };
        let budgeted = matches!(parsed, Ok((_, ClientMsg::Input { .. })))
            && self.counted.within_budget(started);
        let verdict = if budgeted {
            Verdict::Allowed
        } else {
            self.gateway.messages.check(&user)
        };
        if let Verdict::Refused { strikes } = verdict {
            if let Ok((
                _,
                ClientMsg::Input {
                    session, events, ..
                },
            )) = &parsed
            {
                self.counted.refused(session, events.len());
                telemetry::input_frame("refused");
            }
            let id = parsed
                .as_ref()
                .map_or_else(|(id, _)| id.as_ref(), |(id, _)| id.as_ref());
            self.reply_error(ctx, &ClientError::RateLimited, id);
            self.gateway.stats.message(false, Some(started.elapsed()));
            if strikes >= self.gateway.ws.rate_limit_max_strikes {
                self.close(ctx, CloseReason::RateLimitAbuse);
            }
            return;
        }
        match parsed {
            Ok((id, msg)) => {
                telemetry::message_in(msg.kind());
                self.admitted(ctx, user, msg, id, started);
            }
            Err((id, err)) => {
                telemetry::message_in("invalid");
                self.reply_error(ctx, &err, id.as_ref());
                self.gateway.stats.message(false, Some(started.elapsed()));
            }
        }
    }

    /// The first frame must be a valid `auth`: anything else is refused and closes 4401.
    fn before_auth(
        &mut self,
        ctx: &mut Context<Self>,
        parsed: Result<(Option<MsgId>, ClientMsg), (Option<MsgId>, ClientError)>,
    ) {
        let (id, refusal) = match parsed {
            Ok((id, ClientMsg::Auth { token })) => {
                telemetry::message_in("auth");
                return self.authenticate(ctx, &token, id);
            }
            Ok((id, msg)) => {
                telemetry::message_in(msg.kind());
                telemetry::auth("not_first");
                (
                    id,
                    ClientError::Unauthorized("the first message must be auth"),
                )
            }
            Err((id, _)) => {
                telemetry::message_in("invalid");
                telemetry::auth("not_first");
                (
                    id,
                    ClientError::Unauthorized("the first message must be a valid auth"),
                )
            }
        };
        self.reply_error(ctx, &refusal, id.as_ref());
        self.close(ctx, CloseReason::Unauthorized);
    }

    /// Handles an authenticated, admitted message. `/health`'s error rate counts only the
    /// answers that are the server's fault, not what clients get wrong.
    fn admitted(
        &mut self,
        ctx: &mut Context<Self>,
        user: UserId,
        msg: ClientMsg,
        id: Option<MsgId>,
        started: Instant,
    ) {
        if msg != ClientMsg::Ping {
            self.last_active = Instant::now();
        }
        let deferred = matches!(msg, ClientMsg::Submit { .. });
        let result = self.dispatch(ctx, user, msg, id.clone());
        if let Err(err) = &result {
            self.reply_error(ctx, err, id.as_ref());
        }
        let answered_in = (!deferred || result.is_err()).then(|| started.elapsed());
        let fault = result.as_ref().is_err_and(ClientError::is_server_fault);
        self.gateway.stats.message(fault, answered_in);
    }

    fn authenticate(&mut self, ctx: &mut Context<Self>, token: &str, id: Option<MsgId>) {
        let (user, region, valid_until_secs) = match self.gateway.verifier.verify(token) {
            Ok(identity) => (identity.user, identity.region, identity.valid_until_secs),
            Err(err) => {
                telemetry::auth("invalid");
                self.reply_error(ctx, &err, id.as_ref());
                return self.close(ctx, CloseReason::Unauthorized);
            }
        };
        if self.gateway.bans.is_banned(&user, now_ms()) {
            telemetry::auth("banned");
            self.reply_error(ctx, &ClientError::Banned, id.as_ref());
            return self.close(ctx, CloseReason::Banned);
        }
        let ask = self.gateway.connections.send(Authenticate {
            id: self.id(),
            user: user.clone(),
        });
        // `wait` holds every later frame until the registry answers, so a `join` sent right
        // after `auth` is never seen as unauthenticated.
        ctx.wait(
            ask.into_actor(self)
                .map(move |answer, act, ctx| match answer {
                    Ok(Ok(())) => {
                        telemetry::auth("ok");
                        let welcome = ServerMsg::Welcome {
                            user: user.as_str(),
                            server_time: now_ms(),
                            heartbeat_ms: act.gateway.ws.heartbeat_interval_ms,
                        };
                        act.reply(ctx, &welcome, id.as_ref());
                        act.user = Some(user);
                        act.region = region;
                        // A token is good until its `exp` (plus leeway), and so is the socket
                        // it opened: the client reconnects with a fresh one.
                        let left = (valid_until_secs * 1000).saturating_sub(now_ms());
                        ctx.run_later(Duration::from_millis(left), |act, ctx| {
                            telemetry::auth("expired");
                            let expired = ClientError::Unauthorized("token expired");
                            act.reply_error(ctx, &expired, None);
                            act.close(ctx, CloseReason::TokenExpired);
                        });
                    }
                    Ok(Err(err)) => {
                        telemetry::auth("too_many_connections");
                        act.reply_error(ctx, &err, id.as_ref());
                        act.close(ctx, CloseReason::TooManyConnectionsForUser);
                    }
                    Err(_) => {
                        act.reply_error(ctx, &ClientError::Internal, id.as_ref());
                        act.close(ctx, CloseReason::ProtocolError);
                    }
                }),
        );
    }
}

impl Actor for Connection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        telemetry::connection_opened();
        self.gateway.connections.do_send(Attach {
            id: self.id(),
            conn: ctx.address().recipient(),
            notices: ctx.address().recipient(),
        });
        let ws = &self.gateway.ws;
        ctx.run_later(Duration::from_millis(ws.auth_timeout_ms), |act, ctx| {
            if act.user.is_none() {
                telemetry::auth("timeout");
                act.reply_error(
                    ctx,
                    &ClientError::Unauthorized("no auth before the deadline"),
                    None,
                );
                act.close(ctx, CloseReason::AuthTimeout);
            }
        });
        let heartbeat = Duration::from_millis(ws.heartbeat_interval_ms);
        let inactive = Duration::from_millis(ws.inactive_timeout_ms);
        ctx.run_interval(heartbeat, move |act, ctx| {
            if act.last_heard.elapsed() > heartbeat * 2 {
                act.close(ctx, CloseReason::HeartbeatTimeout);
            } else if act.last_active.elapsed() > inactive {
                act.close(ctx, CloseReason::Inactive);
            } else {
                // A sample per socket per heartbeat shows backlog building before any 4008.
                telemetry::outbound_queue(act.outbox.queued());
                act.write(ctx, &Frame::ping());
            }
        });
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        for room in self.rooms.drain() {
            self.gateway.rooms.do_send(Leave {
                room,
                conn: self.slot.id,
            });
        }
        let reason = self.closing.unwrap_or(CloseReason::ClientClosed);
        telemetry::connection_closed(&telemetry::SocketClosed {
            reason,
            user: self.user.as_ref().map(UserId::as_str),
            open_for: self.opened.elapsed(),
            frames_in: self.frames_in,
            frames_out: self.outbox.frames(),
        });
        Running::Stop
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        hub::detach(self.id());
        actix_rt::spawn(socket::linger(self.outbox.clone()));
    }
}

impl StreamHandler<Event> for Connection {
    fn handle(&mut self, event: Event, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        self.frames_in += 1;
        match event {
            Event::Text(text) => self.on_frame(ctx, Some(&text)),
            Event::Other => self.on_frame(ctx, None),
            Event::Ping(payload) => self.write(ctx, &Frame::pong(&payload)),
            Event::Pong => {}
            Event::Close => self.close(ctx, CloseReason::ClientClosed),
            Event::Shut(reason) => self.close(ctx, reason),
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<Notice> for Connection {
    type Result = ();

    fn handle(&mut self, msg: Notice, ctx: &mut Self::Context) {
        let ours = match &msg.campaign {
            None => true,
            Some(c) => self.rooms.iter().any(|r| &r.campaign == c),
        };
        if ours && self.user.is_some() {
            telemetry::message_out("announce", 1);
            self.send(ctx, msg.frame);
        }
    }
}

impl Handler<Kick> for Connection {
    type Result = ();

    /// Submits in flight are answered first (for at most `SUBMIT_GRACE`), whatever the
    /// reason: shutdown, a kick, or a ban that one of those submits set off.
    fn handle(&mut self, msg: Kick, ctx: &mut Self::Context) {
        if self.in_flight > 0 {
            self.close_after = Some(msg.0);
            ctx.run_later(SUBMIT_GRACE, move |act, ctx| act.close(ctx, msg.0));
            return;
        }
        self.close(ctx, msg.0);
    }
}

impl actix_web::ResponseError for ClientError {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::from_u16(self.http_status())
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(self.http_body())
    }
}
