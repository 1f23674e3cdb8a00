//! The counted games a socket is playing: a counted session is bound to the socket that
//! started it, so its count is kept here, on the socket's thread, fed by its `input` frames
//! and stamped by this server's clock. Bounded per socket; a game ends here when its submit
//! is decided (a retry after `unavailable` or `busy` finds the same count again).

use std::time::{Duration, Instant};

use crate::domain::counting::{Counted, FrameFate, Tally};
use crate::domain::error::ClientError;
use crate::telemetry;

/// Counted games one socket keeps, under way or ended; starting another forgets the oldest.
/// Two: a player may start the next game while the last one's submit is answered.
const MAX_GAMES: usize = 2;
/// `input` frames per socket per second that skip the player's message window; past it they
/// count against it like any other message. An honest game flushing every 50 ms sends 20.
pub const INPUT_FRAMES_PER_SECOND: u32 = 25;

struct Game {
    /// The session token the client sends with each frame and its submit.
    token: String,
    state: State,
}

enum State {
    Playing(Box<Tally>),
    /// Set by the first submit: the count it ended with, the same for every retry.
    Ended(Counted),
}

#[derive(Default)]
pub struct CountedGames {
    games: Vec<Game>,
    /// The input budget's current second and the frames spent in it.
    budget: Option<(Instant, u32)>,
}

impl CountedGames {
    pub fn start(&mut self, token: String, tally: Tally) {
        if self.games.len() >= MAX_GAMES {
            self.games.remove(0);
        }
        self.games.push(Game {
            token,
            state: State::Playing(Box::new(tally)),
        });
    }

    /// Spends one frame of the input budget; false when this second's is spent.
    pub fn within_budget(&mut self, now: Instant) -> bool {
        match &mut self.budget {
            Some((since, spent)) if now.duration_since(*since) < Duration::from_secs(1) => {
                *spent += 1;
                *spent <= INPUT_FRAMES_PER_SECOND
            }
            _ => {
                self.budget = Some((now, 1));
                true
            }
        }
    }

    /// Feeds one frame to its game.
    pub fn input(
        &mut self,
        token: &str,
        seq: u32,
        events: &[(i64, String)],
        arrival_ms: u64,
    ) -> Result<FrameFate, ClientError> {
        match &mut self.game(token)?.state {
            State::Playing(tally) => Ok(tally.take(seq, events, arrival_ms)),
            State::Ended(_) => Err(ClientError::BadSession("this game was submitted")),
        }
    }

    /// Drops a frame's events for coming past the budget and the message window.
    pub fn refused(&mut self, token: &str, events: usize) {
        if let Ok(Game {
            state: State::Playing(tally),
            ..
        }) = self.game(token)
        {
            tally.over_budget(events);
        }
    }

    /// Ends the game at its submit, which claimed `claimed`: the count to decide it by.
    /// `None` when this socket has no such game; `Err` when a retry claims another score.
    pub fn submit(&mut self, token: &str, claimed: u64) -> Option<Result<Counted, ClientError>> {
        let game = self.game(token).ok()?;
        if let State::Playing(tally) = &game.state {
            let counted = tally.finish(claimed);
            telemetry::counted_game(&counted, tally.events_counted());
            game.state = State::Ended(counted);
        }
        let State::Ended(counted) = &game.state else {
            unreachable!("ended just above")
        };
        Some(if counted.claimed == claimed {
            Ok(counted.clone())
        } else {
            Err(ClientError::AlreadySubmitted)
        })
    }

    fn game(&mut self, token: &str) -> Result<&mut Game, ClientError> {
        self.games
            .iter_mut()
            .find(|g| g.token == token)
            .ok_or(ClientError::BadSession(
                "no counted game of this socket has this session",
            ))
    }
}
