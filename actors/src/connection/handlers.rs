//! The Connection's answer to each client message once it is authenticated and admitted:
//! one method per message, in an `impl Connection` of its own so the actor's file keeps its
//! life (upgrade, auth, limits, heartbeat, handlers) and this one what it does for the player.

use std::time::Instant;

use actix::prelude::*;

use super::Connection;
use crate::domain::clock::now_ms;
use crate::domain::error::ClientError;
use crate::domain::ids::{BoardKey, RoomId, UserId};
use crate::domain::protocol::{ClientMsg, MsgId, ResultStatus, ServerMsg};
use crate::results::Submit;
use crate::room::{Join, Leave, Resync};
use crate::telemetry;

/// Ranks shown above and below a player by `around`.
const AROUND_RADIUS: u64 = 5;

impl Connection {
    pub(super) fn dispatch(
        &mut self,
        ctx: &mut Context<Self>,
        user: UserId,
        msg: ClientMsg,
        id: Option<MsgId>,
    ) -> Result<(), ClientError> {
        match msg {
            ClientMsg::Auth { .. } => Err(ClientError::BadMessage("already authenticated".into())),
            ClientMsg::Ping => {
                let pong = ServerMsg::Pong {
                    server_time: now_ms(),
                };
                self.reply(ctx, &pong, id.as_ref());
                Ok(())
            }
            ClientMsg::Join { room } => self.join(ctx, user, RoomId::parse(&room)?, id),
            ClientMsg::Leave { room } => self.leave(ctx, RoomId::parse(&room)?, id),
            ClientMsg::Snapshot { room } => self.resync(RoomId::parse(&room)?, id),
            ClientMsg::Around { room } => self.around(ctx, user, RoomId::parse(&room)?, id),
            ClientMsg::StartGame { campaign } => {
                self.start_game(ctx, user, campaign, id);
                Ok(())
            }
            ClientMsg::Submit { session, score } => {
                self.submit(ctx, user, session, score, id);
                Ok(())
            }
        }
    }

    /// Starts a game (a store round trip when the campaign limits games per hour) and
    /// answers with its signed session.
    fn start_game(
        &mut self,
        ctx: &mut Context<Self>,
        user: UserId,
        campaign: String,
        id: Option<MsgId>,
    ) {
        let (gateway, region) = (self.gateway.clone(), self.region.clone());
        let now = now_ms();
        let start = async move {
            let started = gateway.start_game(user, region, &campaign, now).await;
            (started, campaign)
        };
        ctx.spawn(
            start
                .into_actor(self)
                .map(move |(started, campaign), act, ctx| match started {
                    Ok((token, limits)) => {
                        telemetry::game_started();
                        let started = ServerMsg::GameStarted {
                            session: &token,
                            campaign: &campaign,
                            server_time: now,
                            min_duration_ms: limits.min_duration_ms,
                            max_duration_ms: limits.max_duration_ms,
                        };
                        act.reply(ctx, &started, id.as_ref());
                    }
                    Err(err) => act.reply_error(ctx, &err, id.as_ref()),
                }),
        );
    }

    /// Joins through the RoomRegistry, which answers whether the room exists; the room sends
    /// the snapshot.
    fn join(
        &mut self,
        ctx: &mut Context<Self>,
        user: UserId,
        room: RoomId,
        id: Option<MsgId>,
    ) -> Result<(), ClientError> {
        if !self.rooms.contains(&room) && self.rooms.len() >= self.gateway.max_rooms_per_connection
        {
            return Err(ClientError::TooManyRooms);
        }
        // Counted now, not when the room answers, so joins sent back to back cannot pass
        // the cap; taken back if the room refuses.
        let new = self.rooms.insert(room.clone());
        let join = Join {
            room: room.clone(),
            conn: self.id(),
            user,
            out: self.hub.clone(),
            re: id.clone(),
        };
        let ask = self.gateway.rooms.send(join);
        ctx.spawn(ask.into_actor(self).map(move |answer, act, ctx| {
            let refused = match answer {
                Ok(Ok(())) => return,
                Ok(Err(err)) => err,
                Err(_) => ClientError::Internal,
            };
            if new {
                act.rooms.remove(&room);
            }
            act.reply_error(ctx, &refused, id.as_ref());
        }));
        Ok(())
    }

    fn leave(
        &mut self,
        ctx: &mut Context<Self>,
        room: RoomId,
        id: Option<MsgId>,
    ) -> Result<(), ClientError> {
        if !self.rooms.remove(&room) {
            return Err(ClientError::UnknownRoom("not joined"));
        }
        self.gateway.rooms.do_send(Leave {
            room: room.clone(),
            conn: self.id(),
        });
        let left = ServerMsg::Left {
            room: &room.to_string(),
        };
        self.reply(ctx, &left, id.as_ref());
        Ok(())
    }

    /// A member that saw a gap in `seq` asks its room for a fresh snapshot.
    fn resync(&mut self, room: RoomId, id: Option<MsgId>) -> Result<(), ClientError> {
        if !self.rooms.contains(&room) {
            return Err(ClientError::UnknownRoom("join the room first"));
        }
        self.gateway.rooms.do_send(Resync {
            room,
            conn: self.id(),
            re: id,
        });
        Ok(())
    }

    /// The rows around the player, read straight from the store (no room needed).
    fn around(
        &mut self,
        ctx: &mut Context<Self>,
        user: UserId,
        room: RoomId,
        id: Option<MsgId>,
    ) -> Result<(), ClientError> {
        match self.gateway.campaigns.get(room.campaign.as_str()) {
            Some(c) if c.rules.has_board(&room.board) => {}
            _ => return Err(ClientError::UnknownRoom("no such campaign or board")),
        }
        let (store, board) = (
            self.gateway.store.clone(),
            BoardKey::for_room(&room, now_ms()),
        );
        let read = async move { store.around(&board, &user, AROUND_RADIUS).await };
        ctx.spawn(read.into_actor(self).map(move |rows, act, ctx| match rows {
            Ok(rows) => {
                let label = room.to_string();
                let around = ServerMsg::Around {
                    room: &label,
                    rows: &rows,
                };
                act.reply(ctx, &around, id.as_ref());
            }
            Err(err) => {
                tracing::warn!(%err, "around-me read failed");
                act.reply_error(ctx, &ClientError::Internal, id.as_ref());
            }
        }));
        Ok(())
    }

    /// Hands the submit to this socket's pipeline and answers when it has decided. A refusal
    /// that is not about this session's numbers comes back as `Err` and is answered the same
    /// way: a rejected `result` naming the reason.
    fn submit(
        &mut self,
        ctx: &mut Context<Self>,
        user: UserId,
        session: String,
        score: u64,
        id: Option<MsgId>,
    ) {
        let asked = Instant::now();
        self.in_flight += 1;
        let who = user.clone();
        let ask = self.results.send(Submit {
            user,
            session,
            score,
        });
        ctx.spawn(ask.into_actor(self).map(move |answer, act, ctx| {
            act.in_flight -= 1;
            match answer {
                Ok(answer) => {
                    let (refused, best, rank) = match answer {
                        Ok(outcome) => (
                            outcome.refused.map(|r| r.code()),
                            outcome.best,
                            outcome.rank,
                        ),
                        Err(err) => {
                            if err.is_server_fault() {
                                act.gateway.stats.fault();
                            }
                            (Some(err.code()), None, None)
                        }
                    };
                    let status = if refused.is_some() {
                        ResultStatus::Rejected
                    } else {
                        ResultStatus::Accepted
                    };
                    act.gateway
                        .stats
                        .decided(refused.is_none(), crate::domain::clock::now_ms());
                    let result = ServerMsg::Result {
                        status,
                        reason: refused,
                        score,
                        best,
                        rank,
                    };
                    act.reply(ctx, &result, id.as_ref());
                }
                Err(_) => {
                    // The pipeline is gone (stopping): it could not count this one itself.
                    telemetry::submit(
                        "failed",
                        Some(ClientError::Internal.code()),
                        who.as_str(),
                        score,
                    );
                    act.gateway.stats.fault();
                    act.reply_error(ctx, &ClientError::Internal, id.as_ref())
                }
            }
            act.gateway.stats.response(asked.elapsed());
            telemetry::submit_answered(asked.elapsed());
            if act.in_flight == 0 {
                if let Some(reason) = act.close_after.take() {
                    act.close(ctx, reason);
                }
            }
        }));
    }
}
