//! Connection: one per WebSocket, on the HTTP worker's arbiter. This directory is the only
//! place that uses actix-web-actors, so a move to actix-ws touches it alone.
//!
//! Owns: the socket's identity (user once authenticated), the rooms it joined, its heartbeat
//! and activity clocks, and the count of bytes queued for the client ([`outbound`]).
//! Receives WebSocket frames (the stream), [`Push`] (frames from Rooms) and [`Kick`] (from the
//! ConnectionRegistry: shutdown), both in [`inbox`]. Sends [`Authenticate`]/[`Attach`] to the
//! ConnectionRegistry, [`Join`](crate::room::Join)/[`Leave`]/[`Resync`](crate::room::Resync)
//! to the RoomRegistry and [`Submit`](crate::results::Submit) to the ResultsPipeline, all
//! reached through its [`Gateway`]. Its whole life is here: the caps are
//! checked in [`upgrade`] before the handshake completes, `started` arms the auth deadline and
//! heartbeat, `stopping` leaves every room, and the [`ConnSlot`] it holds releases its place in
//! the registry on drop. Nobody restarts a Connection: when it stops, the client reconnects.
//! What it does for each message once the player is admitted is in `handlers.rs`, an `impl
//! Connection` of its own.

pub mod gateway;
mod handlers;
pub mod inbox;
pub mod outbound;
#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use actix_web_actors::ws;
use bytestring::ByteString;
use futures_util::StreamExt;

use crate::connection_registry::{Attach, Authenticate, ConnSlot, Reserve};
use crate::domain::clock::now_ms;
use crate::domain::error::{ClientError, CloseReason};
use crate::domain::ids::{ConnId, Region, RoomId, UserId};
use crate::domain::protocol::{self, encode, ClientMsg, MsgId, ServerMsg};
use crate::domain::window::Verdict;
use crate::room::Leave;
use crate::telemetry;
pub use gateway::{client_ip, Gateway};
pub use inbox::{Kick, Notice, Push};
pub use outbound::SocketFd;
use outbound::{cut_later, wire_len, Metered};

/// Longest a shutdown waits for this socket's submits in flight to be answered.
const SUBMIT_GRACE: Duration = Duration::from_secs(2);

/// `GET /ws`: checks the caps before upgrading, then starts a Connection.
pub async fn upgrade(
    req: HttpRequest,
    payload: web::Payload,
    gateway: web::Data<Arc<Gateway>>,
) -> HttpResponse {
    let mut response = match ws::handshake(&req) {
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
    let queued = Rc::new(Cell::new(0));
    let alive = Rc::new(Cell::new(true));
    let codec = actix_http::ws::Codec::new().max_size(gateway.ws.max_payload_bytes);
    let socket = req.conn_data::<SocketFd>().map(|fd| (*fd, alive.clone()));
    let actor = Connection::new(slot, gateway.get_ref().clone(), queued.clone(), socket);
    let context = ws::WebsocketContext::with_codec(actor, payload, codec);
    // The actor runs inside its context's stream. Left as the response body, it would run
    // only while the socket takes bytes: a client that stops reading would freeze its actor,
    // with room pushes piling up unseen in the mailbox. So a local task drives the context
    // and hands frames to the body through a channel; the actor always runs, sees `queued`
    // grow, and closes the socket at the limit. The pump drains to the end even when the body
    // is gone, so `stopping` always runs and every room is left.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    actix_rt::spawn(async move {
        let mut context = std::pin::pin!(context);
        while let Some(chunk) = context.next().await {
            let _ = tx.send(chunk);
        }
    });
    response.streaming(Metered {
        frames: rx,
        queued,
        alive,
    })
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
    /// Bytes written to the context and not yet taken by the socket; see [`Metered`].
    queued: Rc<Cell<usize>>,
    /// Why we are closing, once we are.
    closing: Option<CloseReason>,
    /// Submits sent to the pipeline and not yet answered.
    in_flight: u32,
    /// A shutdown close waiting for `in_flight` to reach zero.
    close_after: Option<CloseReason>,
    /// The TCP socket, to cut when the client stops reading; `None` when the server was not
    /// told its descriptor.
    socket: Option<(SocketFd, Rc<Cell<bool>>)>,
}

impl Connection {
    fn new(
        slot: ConnSlot,
        gateway: Arc<Gateway>,
        queued: Rc<Cell<usize>>,
        socket: Option<(SocketFd, Rc<Cell<bool>>)>,
    ) -> Self {
        let now = Instant::now();
        Self {
            slot,
            gateway,
            user: None,
            region: None,
            rooms: HashSet::new(),
            last_heard: now,
            last_active: now,
            queued,
            closing: None,
            in_flight: 0,
            close_after: None,
            socket,
        }
    }

    fn id(&self) -> ConnId {
        self.slot.id
    }

    /// Counts a frame of `payload` bytes as queued for the client (see [`Metered`]).
    fn queue(&self, payload: usize) {
        self.queued.set(self.queued.get() + wire_len(payload));
    }

    /// Writes one frame, or closes the socket when the client has stopped reading.
    fn send(&mut self, ctx: &mut ws::WebsocketContext<Self>, frame: ByteString) {
        if self.closing.is_some() {
            return;
        }
        let queued = self.queued.get() + wire_len(frame.len());
        if queued > self.gateway.ws.outbound_queue_max_bytes {
            telemetry::outbound_queue(self.queued.get());
            return self.close(ctx, CloseReason::SlowConsumer);
        }
        self.queued.set(queued);
        ctx.text(frame);
    }

    fn reply(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        msg: &ServerMsg<'_>,
        re: Option<&MsgId>,
    ) {
        telemetry::message_out(msg.kind(), 1);
        self.send(ctx, encode(msg, re));
    }

    fn reply_error(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        err: &ClientError,
        re: Option<&MsgId>,
    ) {
        self.reply(ctx, &ServerMsg::error(err), re);
    }

    fn close(&mut self, ctx: &mut ws::WebsocketContext<Self>, reason: CloseReason) {
        if self.closing.is_some() {
            return;
        }
        self.closing = Some(reason);
        if reason == CloseReason::SlowConsumer {
            if let Some((fd, alive)) = self.socket.take() {
                cut_later(fd, alive);
            }
        }
        ctx.close(Some(ws::CloseReason {
            code: reason.code().into(),
            description: Some(reason.as_str().to_owned()),
        }));
        ctx.stop();
    }

    /// One frame from the client that is not a control frame: `Some(text)` for a text
    /// frame, `None` for binary or a fragment. Every such frame counts against the player's
    /// message window, junk included; before `auth` any frame but a valid `auth` closes 4401.
    fn on_frame(&mut self, ctx: &mut ws::WebsocketContext<Self>, text: Option<&str>) {
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
        let verdict = self.gateway.messages.check(&user);
        if let Verdict::Refused { strikes } = verdict {
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
        ctx: &mut ws::WebsocketContext<Self>,
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
        ctx: &mut ws::WebsocketContext<Self>,
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

    fn authenticate(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        token: &str,
        id: Option<MsgId>,
    ) {
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
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
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
                telemetry::outbound_queue(act.queued.get());
                act.queue(0);
                ctx.ping(b"");
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
        telemetry::connection_closed(reason, self.user.as_ref().map(UserId::as_str));
        Running::Stop
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Connection {
    fn handle(&mut self, frame: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match frame {
            Ok(ws::Message::Text(text)) => self.on_frame(ctx, Some(&text)),
            Ok(ws::Message::Ping(payload)) => {
                self.queue(payload.len());
                ctx.pong(&payload);
            }
            Ok(ws::Message::Pong(_)) | Ok(ws::Message::Nop) => {}
            Ok(ws::Message::Binary(_)) | Ok(ws::Message::Continuation(_)) => {
                self.on_frame(ctx, None)
            }
            Ok(ws::Message::Close(_)) => self.close(ctx, CloseReason::ClientClosed),
            Err(ws::ProtocolError::Overflow) => self.close(ctx, CloseReason::TooBig),
            // actix-web-actors reports a text frame that is not UTF-8 as an I/O error of kind
            // `Other`; a peer that vanished (tab closed, network gone) is any other kind.
            Err(ws::ProtocolError::Io(e)) if e.kind() == std::io::ErrorKind::Other => {
                self.close(ctx, CloseReason::InvalidPayload)
            }
            Err(ws::ProtocolError::Io(_)) => self.close(ctx, CloseReason::ClientClosed),
            Err(_) => self.close(ctx, CloseReason::ProtocolError),
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<Push> for Connection {
    type Result = ();

    fn handle(&mut self, msg: Push, ctx: &mut Self::Context) {
        self.send(ctx, msg.frame);
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
