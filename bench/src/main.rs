//! `podium-bench`: load generator for podium. Every scenario targets a server you started
//! (see README's Performance section) on 127.0.0.1, is bounded in count and time, and prints
//! one summary line of figures at the end. The client ([`client`]) is shared; each scenario
//! is a file of its own:
//!
//! - `connect`: open N authenticated sockets at a ramp rate and hold them; handshake+auth
//!   latency p50/p99, errors, server RSS per connection.
//! - `fanout`: N members in one room while M players submit; tick-to-delivery latency of the
//!   diffs at every member p50/p99 (and the spread of each tick's own p99; `BENCH_TICKS=1`
//!   lists them in order), submit-to-diff latency, frames/s, seq gaps.
//! - `soak`: players churning for a long while; RSS, descriptors, sockets and room members
//!   before and after.
//! - `ingest` (redis engine): M players submitting as fast as the rules allow; accepted/s,
//!   ack latency p50/p99, PostgreSQL lag, and a check that the rows in PostgreSQL equal the
//!   acks. Then the naive path in the same run: one INSERT and one ZADD per result, no
//!   batching, as the older service did; and the ratio.
//! - `storm` and `wave`: N players arriving within S seconds (a storm) or over a 90 s ramp (a
//!   wave), each connecting, joining, playing and submitting; errors by step, connect, join
//!   and submit-ack latency p50/p99, and (redis engine) rows in PostgreSQL against acks.

mod client;
mod connect;
mod fanout;
mod ingest;
mod soak;
mod storm;

use clap::{Parser, Subcommand};

use client::Common;

#[derive(Parser)]
#[command(name = "podium-bench", about = "Load generator for podium")]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Open N authenticated sockets at a ramp rate and hold them.
    Connect {
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// New sockets per second.
        #[arg(long, default_value_t = 2_000)]
        rate: u64,
        /// Seconds to hold them once all are open.
        #[arg(long, default_value_t = 10)]
        hold: u64,
    },
    /// N members in one room, M players submitting.
    Fanout {
        #[arg(long, default_value_t = 10_000)]
        members: usize,
        #[arg(long, default_value_t = 20)]
        players: usize,
        /// Seconds of submitting once all members joined.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        #[arg(long, default_value = "bench/global")]
        room: String,
        /// New member sockets per second while joining.
        #[arg(long, default_value_t = 2_000)]
        rate: u64,
    },
    /// Players churning (connect, join, play, leave, close) for a long while; the server's
    /// memory, descriptors, sockets and room members before and after.
    Soak {
        #[arg(long, default_value_t = 200)]
        players: usize,
        #[arg(long, default_value_t = 1_800)]
        seconds: u64,
    },
    /// M players submitting as fast as the rules allow (redis engine), then the naive path.
    Ingest {
        #[arg(long, default_value_t = 50)]
        players: usize,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Games each player keeps in flight.
        #[arg(long, default_value_t = 8)]
        pipeline: usize,
        #[arg(long, default_value = "bench")]
        campaign: String,
        /// Seconds of the naive path (0 skips it).
        #[arg(long, default_value_t = 10)]
        naive_seconds: u64,
        /// Counted games instead: each player plays `game_ms` games of `taps_per_s` taps a
        /// second, streamed every 250 ms, one at a time (in a counted campaign, e.g.
        /// `bench-counted`); CPU per event and per result. `--taps-per-s 0 --campaign bench`
        /// plays the same games claimed, without input: the baseline.
        #[arg(long)]
        counted: bool,
        #[arg(long, default_value_t = 20_000)]
        game_ms: u64,
        #[arg(long, default_value_t = 8)]
        taps_per_s: u64,
        /// The server's PostgreSQL, to count rows (and for the naive path).
        #[arg(
            long,
            env = "DATABASE_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/test"
        )]
        database_url: String,
        #[arg(long, env = "DATABASE_SCHEMA", default_value = "public")]
        database_schema: String,
        /// Redis, for the naive path.
        #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
        redis_url: String,
    },
    /// N players arriving within S seconds, each connecting, joining, playing one game.
    Storm {
        #[command(flatten)]
        arrival: Arrival,
        /// Seconds over which they arrive.
        #[arg(long, default_value_t = 8)]
        seconds: u64,
    },
    /// A ramp to N players over S seconds; each keeps playing until the last has arrived.
    Wave {
        #[command(flatten)]
        arrival: Arrival,
        #[arg(long, default_value_t = 90)]
        seconds: u64,
    },
}

#[derive(clap::Args)]
struct Arrival {
    #[arg(long, default_value_t = 10_000)]
    players: usize,
    /// How long a game lasts before its submit, ms.
    #[arg(long, default_value_t = 2_000)]
    play_ms: u64,
    /// Seconds everyone stays in the room once the last player has arrived and played.
    #[arg(long, default_value_t = 5)]
    hold: u64,
    #[arg(long, default_value = "bench/global")]
    room: String,
    /// The server's PostgreSQL (redis engine): every ack must have its row. Unset: not checked.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    #[arg(long, env = "DATABASE_SCHEMA", default_value = "public")]
    database_schema: String,
}

impl Arrival {
    fn shape(
        self,
        name: &'static str,
        over: u64,
        replay: bool,
    ) -> (storm::Shape, Option<ingest::Db>) {
        let db = self.database_url.map(|url| ingest::Db {
            url,
            schema: self.database_schema,
        });
        let shape = storm::Shape {
            name,
            players: self.players,
            over,
            play_ms: self.play_ms,
            replay,
            hold: self.hold,
            room: self.room,
        };
        (shape, db)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.scenario {
        Scenario::Connect {
            connections,
            rate,
            hold,
        } => connect::run(cli.common, connections, rate, hold).await,
        Scenario::Fanout {
            members,
            players,
            seconds,
            room,
            rate,
        } => fanout::run(cli.common, members, players, seconds, room, rate).await,
        Scenario::Soak { players, seconds } => soak::run(cli.common, players, seconds).await,
        Scenario::Ingest {
            players,
            seconds,
            pipeline,
            campaign,
            naive_seconds,
            database_url,
            database_schema,
            redis_url,
            counted,
            game_ms,
            taps_per_s,
        } => {
            let db = ingest::Db {
                url: database_url,
                schema: database_schema,
            };
            if counted {
                let game = ingest::CountedGame {
                    campaign,
                    game_ms,
                    taps_per_s,
                };
                return ingest::run_counted(cli.common, players, seconds, game, db).await;
            }
            ingest::run(
                cli.common,
                players,
                seconds,
                pipeline,
                campaign,
                naive_seconds,
                db,
                redis_url,
            )
            .await
        }
        Scenario::Storm { arrival, seconds } => {
            let (shape, db) = arrival.shape("storm", seconds, false);
            storm::run(cli.common, shape, db).await
        }
        Scenario::Wave { arrival, seconds } => {
            let (shape, db) = arrival.shape("wave", seconds, true);
            storm::run(cli.common, shape, db).await
        }
    }
}
