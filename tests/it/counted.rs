//! Counted campaigns, attacked: each cheat is refused, counted down to what it really did, or
//! flagged, on the engine under test (`tap-rush`, a tap a point, the default settings). The
//! honest side is `honest_players_are_never_flagged` (1,000 simulated games) and the real
//! games below.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

/// A counted game as a client plays it: its token, and the clock it stamps `t_ms` with
/// (started when `game_started` arrived, as a page does).
struct Game {
    token: String,
    started: Instant,
    seq: u32,
    sent: u64,
}

impl Game {
    async fn start(p: &mut Client) -> (Self, Value) {
        p.send(json!({"type":"start_game","campaign":"tap-rush"}))
            .await;
        let started = p.recv_type("game_started").await;
        let game = Game {
            token: started["session"].as_str().unwrap().to_owned(),
            started: Instant::now(),
            seq: 0,
            sent: 0,
        };
        (game, started)
    }

    fn now_ms(&self) -> i64 {
        self.started.elapsed().as_millis() as i64
    }

    /// Sends `times` as taps in one frame.
    async fn send(&mut self, p: &mut Client, times: &[i64]) {
        let events: Vec<Value> = times.iter().map(|t| json!([t, "tap"])).collect();
        p.send(json!({"type":"input","session": self.token,"seq": self.seq,"events": events}))
            .await;
        self.seq += 1;
        self.sent += times.len() as u64;
    }

    /// Taps `gap()` ms apart from now until `until_ms` of game time, flushed every 250 ms,
    /// each stamped `t_ms` by `stamp` from the true time.
    async fn tap(
        &mut self,
        p: &mut Client,
        mut gap: impl FnMut() -> u64,
        until_ms: i64,
        stamp: impl Fn(i64) -> i64,
    ) {
        let mut next = self.now_ms();
        while self.now_ms() < until_ms {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = self.now_ms().min(until_ms);
            let mut batch = Vec::new();
            while next <= now {
                batch.push(stamp(next));
                next += gap() as i64;
            }
            self.send(p, &batch).await;
        }
    }

    async fn submit(&self, p: &mut Client, claim: u64) -> Value {
        p.submit(&self.token, claim).await
    }
}

/// Gaps between a person's taps at about `rate` a second: log-normal around the mean, never
/// under 45 ms (a finger's fastest).
fn human(rate: f64) -> impl FnMut() -> u64 {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(rate.to_bits());
    move || {
        let normal: f64 = (0..12).map(|_| rng.gen::<f64>()).sum::<f64>() - 6.0;
        ((1_000.0 / rate) * (0.3 * normal).exp()).max(45.0) as u64
    }
}

/// The session's evidence, once the store has it (the redis engine's batcher writes it).
async fn evidence(server: &TestServer, result: &Value) -> Value {
    let path = format!("/admin/sessions/{}", result["session_id"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = server.admin("GET", &path, None).await;
        if status == 200 {
            return body;
        }
        assert!(Instant::now() < deadline, "no evidence: {status} {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The kinds of the session's flags.
fn flags(evidence: &Value) -> Vec<&str> {
    evidence["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect()
}

async fn wait_until(game: &Game, ms: i64) {
    let left = ms - game.now_ms();
    if left > 0 {
        tokio::time::sleep(Duration::from_millis(left as u64)).await;
    }
}

#[tokio::test]
async fn an_honest_counted_game_scores_what_it_tapped() {
    let server = TestServer::start();
    let mut p = server.player("honest").await;
    let (mut game, started) = Game::start(&mut p).await;
    assert_eq!(started["scoring"], "counted");
    assert_eq!(started["input_flush_ms"], 250);
    assert!(started["seed"].is_u64(), "{started}");
    game.tap(&mut p, human(9.0), 2_600, |t| t).await;
    let result = game.submit(&mut p, game.sent).await;
    assert_eq!(result["status"], "accepted", "{result}");
    assert_eq!(result["score"], game.sent, "{result}");
    assert_eq!(result["claimed"], game.sent);
    let seen = evidence(&server, &result).await;
    assert_eq!(
        (seen["scoring"].as_str(), seen["user"].as_str()),
        (Some("counted"), Some("honest"))
    );
    assert!(flags(&seen).is_empty(), "{seen}");
    let events = seen["input"]["events"].as_array().unwrap();
    assert_eq!(events.len() as u64, game.sent);
    assert!(events
        .iter()
        .all(|e| e["counted"] == true && e["kind"] == "tap"));
    assert_eq!(seen["input"]["frames"][0]["seq"], 0);
    // A claimed campaign says so, and carries no counting.
    let mut q = server.player("claimer").await;
    q.send(json!({"type":"start_game","campaign":"quick"}))
        .await;
    let started = q.recv_type("game_started").await;
    assert_eq!(started["scoring"], "claimed");
    assert!(started.get("seed").is_none());
}

#[tokio::test]
async fn a_claimed_score_without_inputs_counts_nothing_and_ranks_below_real_play() {
    let server = TestServer::start();
    let mut cheat = server.player("poster").await;
    let (bogus, _) = Game::start(&mut cheat).await;
    let mut honest = server.player("tapper").await;
    let (mut real, _) = Game::start(&mut honest).await;
    real.tap(&mut honest, human(8.0), 2_300, |t| t).await;
    wait_until(&bogus, 2_300).await;
    let result = bogus.submit(&mut cheat, 1_020).await;
    assert_eq!(result["status"], "accepted", "{result}");
    assert_eq!(
        (result["score"].as_u64(), result["claimed"].as_u64()),
        (Some(0), Some(1_020))
    );
    let seen = evidence(&server, &result).await;
    assert_eq!(flags(&seen), ["score_mismatch"], "{seen}");
    let mismatch = &seen["flags"][0];
    assert_eq!(
        (mismatch["value"].as_f64(), mismatch["limit"].as_f64()),
        (Some(1_020.0), Some(0.0))
    );
    let result = real.submit(&mut honest, real.sent).await;
    assert_eq!(result["rank"], 1, "{result}");
}

#[tokio::test]
async fn a_log_sent_in_one_frame_at_the_end_counts_only_its_last_seconds() {
    let server = TestServer::start();
    let mut p = server.player("late").await;
    let (mut game, _) = Game::start(&mut p).await;
    // A plausible 5 s of taps, with a person's timing, all sent at the end.
    let mut gap = human(8.0);
    let taps: Vec<i64> = std::iter::successors(Some(0), |t| Some(t + gap() as i64))
        .take_while(|t| *t < 5_000)
        .collect();
    wait_until(&game, 5_000).await;
    game.send(&mut p, &taps).await;
    let result = game.submit(&mut p, game.sent).await;
    // Only taps within 3 s of the frame's arrival count (it arrives a few ms after 5 s).
    let score = result["score"].as_u64().unwrap();
    let within = |from: i64| taps.iter().filter(|t| **t >= from).count() as u64;
    assert!((within(2_100)..=within(2_000)).contains(&score), "{result}");
    assert_eq!(result["claimed"], game.sent);
    let seen = evidence(&server, &result).await;
    assert_eq!(flags(&seen), ["late_input", "score_mismatch"], "{seen}");
    assert_eq!(
        seen["dropped"]["late"].as_u64(),
        Some(game.sent - score),
        "{seen}"
    );
}

#[tokio::test]
async fn a_log_sent_at_the_start_with_future_times_counts_only_what_the_clock_allows() {
    let server = TestServer::start();
    let mut p = server.player("early").await;
    let (mut game, _) = Game::start(&mut p).await;
    let taps: Vec<i64> = (0..32).map(|i| i * 125).collect();
    game.send(&mut p, &taps).await;
    wait_until(&game, 4_100).await;
    let result = game.submit(&mut p, 32).await;
    // At arrival the game had run a few ms: only taps up to 1.5 s ahead count.
    let score = result["score"].as_u64().unwrap();
    assert!((12..=14).contains(&score), "{result}");
    let seen = evidence(&server, &result).await;
    assert_eq!(flags(&seen), ["clock_skew", "score_mismatch"], "{seen}");
    assert!(
        seen["flags"][0]["value"].as_f64().unwrap() > 1_500.0,
        "{seen}"
    );
}

#[tokio::test]
async fn a_clock_running_fast_loses_what_it_stamps_ahead() {
    let server = TestServer::start();
    let mut p = server.player("fast").await;
    let (mut game, _) = Game::start(&mut p).await;
    game.tap(&mut p, || 100, 4_500, |t| t * 3 / 2).await;
    let result = game.submit(&mut p, game.sent).await;
    let score = result["score"].as_u64().unwrap();
    // Ahead by more than 1.5 s from 3 s of real time on.
    assert!(score + 10 <= game.sent, "{result} of {}", game.sent);
    assert!(flags(&evidence(&server, &result).await).contains(&"clock_skew"));
}

#[tokio::test]
async fn a_metronome_is_counted_and_flagged_too_regular_and_inhuman() {
    let server = TestServer::start();
    let mut p = server.player("metronome").await;
    let (mut game, _) = Game::start(&mut p).await;
    // 20 a second, exactly 50 ms apart, for 2.5 s: within the rate limit, so all count.
    game.tap(&mut p, || 50, 2_500, |t| t).await;
    let result = game.submit(&mut p, game.sent).await;
    assert_eq!(result["score"], game.sent, "{result}");
    let seen = evidence(&server, &result).await;
    assert_eq!(flags(&seen), ["too_regular", "inhuman_rate"], "{seen}");
}

#[tokio::test]
async fn a_flood_counts_no_more_than_the_rate_and_interval_allow() {
    let server = TestServer::start();
    let mut p = server.player("flood").await;
    let (mut game, _) = Game::start(&mut p).await;
    wait_until(&game, 1_000).await;
    // 128 events a frame, 1 ms apart, 10 frames: 1,280 taps claimed in 1.3 s.
    for f in 0..10 {
        let taps: Vec<i64> = (0..128).map(|i| 100 + f * 128 + i).collect();
        game.send(&mut p, &taps).await;
    }
    wait_until(&game, 2_100).await;
    let result = game.submit(&mut p, game.sent).await;
    assert_eq!(result["status"], "accepted", "{result}");
    // 30 ms apart at least and 25 in any second: 25 from 100 ms, then none until 1,100 ms,
    // then one every 30 ms to 1,379: 35.
    assert_eq!(result["score"], 35, "{result}");
    let seen = evidence(&server, &result).await;
    let dropped = &seen["dropped"];
    assert_eq!(
        dropped["too_close"].as_u64().unwrap() + dropped["over_rate"].as_u64().unwrap(),
        1_280 - 35,
        "{seen}"
    );
}

#[tokio::test]
async fn another_players_session_and_another_sockets_game_count_nothing() {
    let server = TestServer::start();
    let mut owner = server.player("owner").await;
    let (mut game, _) = Game::start(&mut owner).await;
    let mut thief = server.player("thief").await;
    thief
        .send(json!({"type":"input","session": game.token,"seq":0,"events":[[10,"tap"]]}))
        .await;
    assert_eq!(thief.recv_type("error").await["code"], "bad_session");
    let result = thief.submit(&game.token, 5).await;
    assert_eq!(result["reason"], "bad_session", "{result}");
    // The owner on a second socket: the game's inputs are with the first.
    let mut again = server.player("owner").await;
    game.tap(&mut owner, human(7.0), 2_200, |t| t).await;
    let result = again.submit(&game.token, game.sent).await;
    assert_eq!(result["reason"], "wrong_socket", "{result}");
    // On its own socket it is decided, once; a repeated seq counted once, and a frame after
    // the submit is refused.
    let repeat = game.seq - 1;
    owner
        .send(json!({"type":"input","session": game.token,"seq": repeat,"events":[[2_150,"tap"]]}))
        .await;
    let claim = game.sent;
    let result = game.submit(&mut owner, claim).await;
    assert_eq!(result["score"], claim, "{result}");
    game.send(&mut owner, &[2_300]).await;
    assert_eq!(owner.recv_type("error").await["code"], "bad_session");
    let other = game.submit(&mut owner, claim + 5).await;
    assert_eq!(other["reason"], "already_submitted", "{other}");
    assert_eq!(
        game.submit(&mut owner, claim).await["score"],
        claim,
        "a retry"
    );
    // Decided now, the other socket is answered the decision.
    assert_eq!(again.submit(&game.token, claim).await["score"], claim);
}

#[tokio::test]
async fn malformed_input_frames_are_bad_message_and_change_nothing() {
    let server = TestServer::start();
    let mut p = server.player("sloppy").await;
    let (mut game, _) = Game::start(&mut p).await;
    let too_many: Vec<Value> = (0..129).map(|i| json!([i, "tap"])).collect();
    for frame in [
        json!({"type":"input","session": game.token,"seq":0,"events": too_many}),
        json!({"type":"input","session": game.token,"seq":0,"events":[["tap", 5]]}),
        json!({"type":"input","session": game.token,"seq":-1,"events":[]}),
        json!({"type":"input","session": game.token,"events":[[5,"tap"]]}),
    ] {
        p.send(frame).await;
        assert_eq!(p.recv_type("error").await["code"], "bad_message");
    }
    // None of them took seq 0.
    game.send(&mut p, &[game.now_ms()]).await;
    wait_until(&game, 2_100).await;
    assert_eq!(game.submit(&mut p, 1).await["score"], 1);
}

/// 1,000 simulated honest games against the counting the server runs: 20 s each at 6 to 12
/// taps a second (human gaps), flushed every 250 ms, over a network whose delay varies from
/// 20 to 150 ms (TCP keeps the frames in order); the server's clock starts a one-way trip
/// before the page's. None is flagged, and each scores every tap.
#[test]
fn honest_players_are_never_flagged() {
    use podium_actors::domain::campaign::CampaignRules;
    use podium_actors::domain::counting::{CountingDefaults, Tally};
    use rand::{Rng, SeedableRng};
    let counting = CampaignRules::tap_rush().counting.unwrap();
    let th = counting.thresholds(&CountingDefaults::default());
    for game in 0..1_000u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(game);
        let rate = rng.gen_range(6.0..=12.0);
        let mut gap = human(rate + game as f64 * 1e-9);
        let trip = |rng: &mut rand::rngs::StdRng| rng.gen_range(20..=150u64);
        let page_starts = trip(&mut rng);
        let mut tally = Tally::new(&counting, th, 0, 120_000);
        let (mut t, mut taps, mut arrived) = (gap() as i64, 0u64, 0u64);
        for (seq, flush) in (250..=20_000i64).step_by(250).enumerate() {
            let mut events = Vec::new();
            while t <= flush {
                events.push((t, "tap"));
                t += gap() as i64;
            }
            taps += events.len() as u64;
            arrived = arrived.max(page_starts + flush as u64 + trip(&mut rng));
            tally.take(seq as u32, &events, arrived);
        }
        let counted = tally.finish(taps);
        assert!(
            counted.flags.is_empty() && counted.dropped.is_empty(),
            "game {game} at {rate:.1} taps/s: {:?} {:?}",
            counted.flags,
            counted.dropped
        );
        assert_eq!(counted.score, taps);
    }
}
