//! The Connection's answer to each client message once it is authenticated and admitted:
//! one method per message, in an `impl Connection` of its own so the actor's file keeps its
//! life (upgrade, auth, limits, heartbeat, handlers) and this one what it does for the player.

use std::time::Instant;

use actix::prelude::*;

use super::Connection;
use crate::domain::clock::now_ms;
use crate::domain::counting::FrameFate;
use crate::domain::error::ClientError;
use crate::domain::ids::{BoardKey, RoomId, UserId};
use crate::domain::protocol::{ClientMsg, MsgId, ResultStatus, ServerMsg};
use crate::results::{Answered, Submit};
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
            ClientMsg::Input {
                session,
                seq,
                events,
            } => self.input(&session, seq, &events),
        }
    }

    /// Counts a frame of a counted game this socket started; a valid frame gets no answer.
    fn input(
        &mut self,
        session: &str,
        seq: u32,
        events: &[(i64, String)],
    ) -> Result<(), ClientError> {
        match self.counted.input(session, seq, events, now_ms()) {
            Ok(FrameFate::Taken) => {
                telemetry::input_frame("taken");
                Ok(())
            }
            Ok(FrameFate::Repeated) => {
                telemetry::input_frame("repeated");
                Ok(())
            }
            Err(err) => {
                telemetry::input_frame("refused");
                Err(err)
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
                    Ok(started) => {
                        telemetry::game_started();
                        let (seed, flush) = match &started.counted {
                            Some(c) => (Some(c.seed), Some(c.input_flush_ms)),
                            None => (None, None),
                        };
                        let answer = ServerMsg::GameStarted {
                            session: &started.token,
                            campaign: &campaign,
                            server_time: now,
                            min_duration_ms: started.limits.min_duration_ms,
                            max_duration_ms: started.limits.max_duration_ms,
                            scoring: if seed.is_some() { "counted" } else { "claimed" },
                            seed,
                            input_flush_ms: flush,
                        };
                        act.reply(ctx, &answer, id.as_ref());
                        if let Some(counted) = started.counted {
                            act.counted.start(started.token, counted.tally);
                        }
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
    /// way: a rejected `result` naming the reason. A counted game of this socket is submitted
    /// with its count.
    fn submit(
        &mut self,
        ctx: &mut Context<Self>,
        user: UserId,
        session: String,
        score: u64,
        id: Option<MsgId>,
    ) {
        let asked = Instant::now();
        let counted = match self.counted.submit(&session, score) {
            None => None,
            Some(Ok(counted)) => Some(counted),
            Some(Err(err)) => {
                let answered = Answered {
                    session_id: None,
                    result: Err(err),
                };
                return self.answer_submit(ctx, answered, score, true, id.as_ref());
            }
        };
        let is_counted = counted.is_some();
        self.in_flight += 1;
        let who = user.clone();
        let ask = self.results.send(Submit {
            user,
            session,
            score,
            counted,
        });
        ctx.spawn(ask.into_actor(self).map(move |answer, act, ctx| {
            act.in_flight -= 1;
            match answer {
                Ok(answered) => act.answer_submit(ctx, answered, score, is_counted, id.as_ref()),
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

    /// The `result` frame for a submit's answer; `claimed` is what the submit said, shown
    /// beside the count of a game this socket counted.
    fn answer_submit(
        &mut self,
        ctx: &mut Context<Self>,
        answered: Answered,
        claimed: u64,
        counted: bool,
        id: Option<&MsgId>,
    ) {
        let (refused, score, best, rank) = match answered.result {
            Ok(outcome) => (
                outcome.refused.map(|r| r.code()),
                outcome.score,
                outcome.best,
                outcome.rank,
            ),
            Err(err) => {
                if err.is_server_fault() {
                    self.gateway.stats.fault();
                }
                (
                    Some(err.code()),
                    if counted { 0 } else { claimed },
                    None,
                    None,
                )
            }
        };
        let status = if refused.is_some() {
            ResultStatus::Rejected
        } else {
            ResultStatus::Accepted
        };
        self.gateway.stats.decided(refused.is_none(), now_ms());
        let result = ServerMsg::Result {
            status,
            reason: refused,
            session_id: answered.session_id.as_deref(),
            score,
            claimed: counted.then_some(claimed),
            best,
            rank,
        };
        self.reply(ctx, &result, id);
    }
}
