//! The admin API on one instance: authentication, campaigns changed live, bans, kicks,
//! announcements, the audit log and the instance list. Runs on both engines.

use serde_json::{json, Value};

use crate::common::*;

/// A player token carrying `role` (for the admin claim).
fn token_with_role(user: &str, role: &str) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    let claims = json!({"sub": user, "exp": now_secs() + 600, "role": role});
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
}

#[tokio::test]
async fn admin_routes_want_an_admin_key_or_an_admin_token() {
    let s = TestServer::start();
    let (status, body) = s.http("GET", "/admin/campaigns", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let message = body["error"]["message"].clone();
    let (status, body) = s
        .as_admin(
            "Bearer not-the-key-0123456789abcdef",
            "GET",
            "/admin/campaigns",
            None,
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        body["error"]["message"], message,
        "no hint which part was wrong"
    );
    let player = format!("Bearer {}", token_with_role("mallory", "player"));
    let (status, body) = s.as_admin(&player, "GET", "/admin/campaigns", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let admin = format!("Bearer {}", token_with_role("olga", "admin"));
    let (status, body) = s.as_admin(&admin, "GET", "/admin/campaigns", None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "quick"));
    let (status, _) = s.admin("GET", "/admin/campaigns", None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn failed_admin_logins_are_limited_per_address() {
    let s = TestServer::start();
    for _ in 0..10 {
        let (status, _) = s.as_admin("Bearer wrong", "GET", "/admin/bans", None).await;
        assert_eq!(status, 401);
    }
    let (status, head, body) = s
        .request(
            "GET",
            "/admin/bans",
            &[("Authorization", &format!("Bearer {}", *ADMIN_KEY))],
            None,
        )
        .await;
    assert_eq!(
        status, 429,
        "even the right key waits out the window: {body}"
    );
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 60"),
        "{head}"
    );
}

#[tokio::test]
async fn without_a_key_outside_dev_mode_there_is_no_admin_surface() {
    let s = TestServer::with(|c| {
        c.admin.api_keys.clear();
        c.dev_mode = Some(false);
    });
    let (status, body) = s.admin("GET", "/admin/campaigns", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}

fn new_campaign(name: &str) -> Value {
    json!({
        "name": name,
        "title": "Winter Rush",
        "starts_at": null,
        "ends_at": "2099-01-01T00:00:00Z",
        "rules": {"min_duration_ms": 0, "max_duration_ms": 60000, "max_score": 500, "max_score_per_second": 1000000},
        "regions": ["eu", "us"]
    })
}

#[tokio::test]
async fn a_campaign_created_over_http_is_playable_at_once() {
    let s = TestServer::start();
    let (status, body) = s
        .admin("POST", "/admin/campaigns", Some(new_campaign("winter")))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["title"], "Winter Rush");
    assert_eq!(body["ends_at"], "2099-01-01T00:00:00Z");
    assert_eq!(body["rules"]["max_games_per_hour"], 0);
    let (status, body) = s
        .admin("POST", "/admin/campaigns", Some(new_campaign("winter")))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
    let (status, body) = s.admin("GET", "/admin/campaigns/winter", None).await;
    assert_eq!((status, body["open"].as_bool()), (200, Some(true)));
    let mut p = s.player("ada").await;
    p.join("winter/global").await;
    let session = p.start_game("winter").await;
    let result = p.submit(&session, 400).await;
    assert_eq!(result["status"], "accepted", "{result}");
    let over = p.start_game("winter").await;
    let result = p.submit(&over, 501).await;
    assert_eq!(
        result["reason"], "score_too_high",
        "the campaign's own rules hold"
    );
}

#[tokio::test]
async fn bad_campaign_bodies_name_the_field() {
    let s = TestServer::start();
    let cases = [
        (json!({"title": "x"}), "name: required"),
        (json!({"name": "bad name"}), "name: expected"),
        (
            json!({"name": "a", "rules": {"max_score": "lots"}}),
            "rules.max_score: expected a whole number",
        ),
        (
            json!({"name": "a", "rules": {"min_duration_ms": 5000, "max_duration_ms": 10}}),
            "rules.min_duration_ms: expected less than max_duration_ms",
        ),
        (
            json!({"name": "a", "starts_at": "tomorrow"}),
            "starts_at: expected an RFC 3339 time",
        ),
        (
            json!({"name": "a", "regions": ["EU!"]}),
            "regions: expected",
        ),
        (
            json!({"name": "a", "colour": "red"}),
            "colour: unknown field",
        ),
        (
            json!({"name": "a", "rules": {"speed": 1}}),
            "rules.speed: unknown field",
        ),
        (json!([1, 2]), "the body must be a JSON object"),
    ];
    for (body, says) in cases {
        let (status, answer) = s
            .admin("POST", "/admin/campaigns", Some(body.clone()))
            .await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert_eq!(answer["error"]["code"], "bad_message");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(says),
            "{body}: {message:?} should say {says:?}"
        );
    }
    let (status, _) = s.admin("GET", "/admin/campaigns/a", None).await;
    assert_eq!(status, 404, "nothing was created by a refused body");
    let (status, body) = s
        .admin(
            "PATCH",
            "/admin/campaigns/nowhere",
            Some(json!({"title": "x"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_campaign"))
    );
}

#[tokio::test]
async fn a_rule_change_judges_only_games_started_after_it() {
    let s = TestServer::start();
    s.admin("POST", "/admin/campaigns", Some(new_campaign("spring")))
        .await;
    let mut p = s.player("bea").await;
    let before = p.start_game("spring").await;
    let (status, body) = s
        .admin(
            "PATCH",
            "/admin/campaigns/spring",
            Some(json!({"rules": {"max_score": 100}})),
        )
        .await;
    assert_eq!(
        (status, body["rules"]["max_score"].as_u64()),
        (200, Some(100)),
        "{body}"
    );
    assert_eq!(body["version"], 2);
    let after = p.start_game("spring").await;
    assert_eq!(p.submit(&after, 300).await["reason"], "score_too_high");
    let result = p.submit(&before, 300).await;
    assert_eq!(
        result["status"], "accepted",
        "judged by the rules it started under: {result}"
    );
}

#[tokio::test]
async fn a_closed_campaign_starts_no_game_but_takes_the_ones_under_way() {
    let s = TestServer::start();
    s.admin("POST", "/admin/campaigns", Some(new_campaign("autumn")))
        .await;
    let mut p = s.player("cy").await;
    let under_way = p.start_game("autumn").await;
    let (status, body) = s.admin("POST", "/admin/campaigns/autumn/close", None).await;
    assert_eq!(
        (status, body["open"].as_bool()),
        (200, Some(false)),
        "{body}"
    );
    assert!(body["closed_at"].is_string());
    p.send(json!({"type":"start_game","campaign":"autumn"}))
        .await;
    assert_eq!(p.recv().await["code"], "campaign_closed");
    assert_eq!(p.submit(&under_way, 10).await["status"], "accepted");
}

#[tokio::test]
async fn a_ban_closes_the_players_sockets_and_refuses_them_until_lifted() {
    let s = TestServer::start();
    let mut p = s.player("eve").await;
    let session = p.start_game("quick").await;
    let (status, body) = s
        .admin(
            "POST",
            "/admin/users/eve/ban",
            Some(json!({"reason": "bot", "until": null})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["by"], "key:test");
    assert_eq!(p.closed().await, (4403, "banned".into()));
    let mut again = s.connect().await;
    again
        .send(json!({"type":"auth","token": s.token("eve")}))
        .await;
    assert_eq!(again.recv().await["code"], "banned");
    assert_eq!(again.closed().await.0, 4403);
    let (_, bans) = s.admin("GET", "/admin/bans", None).await;
    assert_eq!(bans["bans"][0]["user"], "eve");
    let (status, _) = s.admin("DELETE", "/admin/users/eve/ban", None).await;
    assert_eq!(status, 200);
    let (status, _) = s.admin("DELETE", "/admin/users/eve/ban", None).await;
    assert_eq!(status, 404, "nothing left to lift");
    let mut back = s.player("eve").await;
    assert_eq!(
        back.submit(&session, 5).await["status"],
        "accepted",
        "a ban decides nothing"
    );
    let (status, body) = s
        .admin("POST", "/admin/users/eve/ban", Some(json!({"reason": ""})))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_message"))
    );
    let (status, _) = s
        .admin(
            "POST",
            "/admin/users/eve/ban",
            Some(json!({"reason": "x", "until": "2001-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, 400, "a ban that ended already");
}

/// A ban with an end lifts itself: the player's best goes back on the board within about a
/// second of it, and they may play again.
#[tokio::test]
async fn a_ban_that_runs_out_puts_the_player_back_on_the_boards() {
    let s = TestServer::start();
    s.player("tia").await.play(500).await;
    let on_board = || async {
        let shown = s
            .http("GET", "/api/campaigns/quick/boards/global", None)
            .await
            .1;
        shown["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["user"] == "tia")
    };
    eventually("the score is on the board", on_board).await;
    let until = podium::views::rfc3339(Some(podium_actors::domain::clock::now_ms() + 1_500));
    let (status, body) = s
        .admin(
            "POST",
            "/admin/users/tia/ban",
            Some(json!({"reason": "cool off", "until": until})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    eventually("the banned player leaves the board", || async {
        !on_board().await
    })
    .await;
    eventually("the ban runs out and the best comes back", on_board).await;
    let (_, bans) = s.admin("GET", "/admin/bans", None).await;
    assert_eq!(bans["bans"], json!([]), "{bans}");
    let mut back = s.player("tia").await;
    let session = back.start_game("quick").await;
    assert_eq!(back.submit(&session, 5).await["status"], "accepted");
}

#[tokio::test]
async fn a_kick_closes_with_4000_and_the_player_may_return() {
    let s = TestServer::start();
    let mut p = s.player("fay").await;
    let (status, _) = s
        .admin(
            "POST",
            "/admin/users/fay/kick",
            Some(json!({"reason": "reconnect please"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(p.closed().await, (4000, "kicked".into()));
    s.player("fay").await;
}

#[tokio::test]
async fn an_announcement_reaches_the_campaigns_players_only() {
    let s = TestServer::start();
    let mut inside = s.player("gus").await;
    inside.join("quick/global").await;
    let mut elsewhere = s.player("hal").await;
    elsewhere.join("demo/global").await;
    let (status, body) = s
        .admin(
            "POST",
            "/admin/announce",
            Some(json!({"text": "Finals at 8", "campaign": "quick"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let frame = inside.recv_type("announce").await;
    assert_eq!(frame["text"], "Finals at 8");
    assert!(frame["server_time"].as_u64().unwrap() > 0);
    s.admin("POST", "/admin/announce", Some(json!({"text": "Everyone"})))
        .await;
    assert_eq!(
        elsewhere.recv_type("announce").await["text"],
        "Everyone",
        "not the quick one first"
    );
    let (status, _) = s
        .admin(
            "POST",
            "/admin/announce",
            Some(json!({"text": "x", "campaign": "nope"})),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_audit_log_pages_every_action_newest_first() {
    let s = TestServer::start();
    for user in ["u1", "u2", "u3"] {
        s.admin(
            "POST",
            &format!("/admin/users/{user}/kick"),
            Some(json!({"reason": "r"})),
        )
        .await;
    }
    let (status, page) = s.admin("GET", "/admin/audit?limit=2", None).await;
    assert_eq!(status, 200, "{page}");
    let targets: Vec<&str> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["u3", "u2"]);
    assert_eq!(page["entries"][0]["actor"], "key:test");
    assert_eq!(page["entries"][0]["action"], "kick");
    let cursor = page["next_cursor"].as_u64().expect("a next page");
    let (_, rest) = s
        .admin(
            "GET",
            &format!("/admin/audit?limit=2&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(rest["entries"][0]["target"], "u1");
    assert_eq!(rest["next_cursor"], Value::Null);
    let (status, _) = s.admin("GET", "/admin/audit?limit=501", None).await;
    assert_eq!(status, 400);
    let (status, _) = s
        .admin("GET", "/admin/audit?cursor=9223372036854775808", None)
        .await;
    assert_eq!(
        status, 400,
        "a cursor past every id (found by schemathesis)"
    );
}

async fn instances_id(s: &TestServer) -> Value {
    let (_, body) = s.admin("GET", "/admin/instances", None).await;
    body["instances"][0]["id"].clone()
}

#[tokio::test]
async fn the_instance_list_and_a_players_page() {
    let s = TestServer::start();
    let mut p = s.player("ivy").await;
    p.play(10).await;
    assert_eq!(p.submit("forged", 5).await["status"], "rejected");
    let (status, body) = s.admin("GET", "/admin/instances", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["instances"].as_array().unwrap().len(), 1);
    assert_eq!(body["instances"][0]["address"], s.addr.to_string());
    let minutes = body["instances"][0]["submits"].as_array().unwrap();
    assert_eq!(minutes.len(), 30);
    let sum = |field: &str| -> u64 { minutes.iter().map(|m| m[field].as_u64().unwrap()).sum() };
    assert_eq!((sum("accepted"), sum("refused")), (1, 1), "{body}");
    let (status, body) = s.admin("GET", "/admin/users/ivy", None).await;
    assert_eq!(status, 200, "{body}");
    let sockets = body["sockets"].as_array().unwrap();
    assert_eq!(sockets.len(), 1, "{body}");
    assert_eq!(sockets[0]["instance"], instances_id(&s).await);
    assert_eq!(sockets[0]["ip"], "127.0.0.1");
    let (status, _) = s.admin("GET", "/admin/users/nobody-at-all", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_campaign_may_limit_the_games_a_player_starts_per_hour() {
    let s = TestServer::start();
    let mut body = new_campaign("sprint");
    body["rules"]["max_games_per_hour"] = json!(2);
    let (status, _) = s.admin("POST", "/admin/campaigns", Some(body)).await;
    assert_eq!(status, 201);
    let mut p = s.player("jo").await;
    p.start_game("sprint").await;
    p.start_game("sprint").await;
    p.send(json!({"type":"start_game","campaign":"sprint"}))
        .await;
    assert_eq!(p.recv().await["code"], "too_many_games");
    let mut other = s.player("kay").await;
    other.start_game("sprint").await;
    p.start_game("quick").await;
}

#[tokio::test]
async fn a_banned_player_leaves_every_board_until_the_ban_is_lifted() {
    let s = TestServer::start();
    let mut cheat = s.player("zed").await;
    assert_eq!(cheat.play(900).await["status"], "accepted");
    let mut honest = s.player("amy").await;
    honest.play(100).await;
    assert_eq!(
        s.http("GET", "/leaderboard/quick/global", None).await.1["rows"][0]["user"],
        "zed"
    );
    s.admin(
        "POST",
        "/admin/users/zed/ban",
        Some(json!({"reason": "bot"})),
    )
    .await;
    let shown = s.http("GET", "/leaderboard/quick/global", None).await.1;
    assert_eq!(shown["total"], 1, "{shown}");
    assert_eq!(shown["rows"][0]["user"], "amy");
    let daily = s.http("GET", "/leaderboard/quick/daily", None).await.1;
    assert_eq!(
        daily["rows"][0]["user"], "amy",
        "the daily board too: {daily}"
    );
    s.admin("DELETE", "/admin/users/zed/ban", None).await;
    let shown = s.http("GET", "/leaderboard/quick/global", None).await.1;
    assert_eq!(shown["rows"][0]["user"], "zed", "{shown}");
    assert_eq!(shown["rows"][0]["score"], 900, "the best it had");
    assert_eq!(shown["total"], 2);
}

#[tokio::test]
async fn flagged_attempts_come_with_their_numbers_and_the_rule_they_broke() {
    let s = TestServer::start();
    let mut p = s.player("nia").await;
    let quick = p.start_game("demo").await;
    assert_eq!(p.submit(&quick, 10).await["reason"], "too_fast");
    let mut body = new_campaign("review");
    body["rules"]["max_score"] = json!(50);
    s.admin("POST", "/admin/campaigns", Some(body)).await;
    for _ in 0..3 {
        let session = p.start_game("review").await;
        assert_eq!(p.submit(&session, 60).await["reason"], "score_too_high");
    }
    eventually("the refusals reach review", || async {
        let rows = s.admin("GET", "/admin/flagged?user=nia", None).await.1;
        rows["flagged"]
            .as_array()
            .is_some_and(|rows| rows.len() == 4)
    })
    .await;
    let listed = s.admin("GET", "/admin/flagged?user=nia", None).await.1;
    let newest = &listed["flagged"][0];
    assert_eq!(newest["reason"], "score_too_high", "{listed}");
    assert_eq!(newest["rule"], "max_score");
    assert_eq!(newest["limit"], 50);
    assert_eq!(newest["score"], 60);
    let oldest = &listed["flagged"][3];
    assert_eq!(
        (oldest["reason"].as_str(), oldest["limit"].as_u64()),
        (Some("too_fast"), Some(2000))
    );
    assert!(oldest["duration_ms"].as_i64().unwrap() < 2000);
    let (_, page) = s
        .admin("GET", "/admin/flagged?campaign=review&limit=2", None)
        .await;
    assert_eq!(page["flagged"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"]
        .as_str()
        .expect("another page")
        .to_owned();
    let (_, rest) = s
        .admin(
            "GET",
            &format!("/admin/flagged?campaign=review&limit=2&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(rest["flagged"].as_array().unwrap().len(), 1, "{rest}");
    assert_ne!(rest["flagged"][0]["session"], page["flagged"][1]["session"]);
    let (_, too_fast) = s
        .admin("GET", "/admin/flagged?reason=too_fast&user=nia", None)
        .await;
    assert_eq!(too_fast["flagged"].as_array().unwrap().len(), 1);
    let (status, body) = s.admin("GET", "/admin/flagged?reason=cheating", None).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = s.admin("GET", "/admin/flagged?since=yesterday", None).await;
    assert_eq!(status, 400);
}

/// A dismissed refusal leaves the review queue, stays on the player's page marked, and is in
/// the audit log; dismissing what is not a refusal is 404.
#[tokio::test]
async fn a_dismissed_refusal_leaves_the_queue_but_not_the_record() {
    let s = TestServer::start();
    let mut p = s.player("ola").await;
    let game = p.start_game("demo").await;
    assert_eq!(p.submit(&game, 10).await["reason"], "too_fast");
    eventually("the refusal reaches review", || async {
        let rows = s.admin("GET", "/admin/flagged?user=ola", None).await.1;
        rows["flagged"]
            .as_array()
            .is_some_and(|rows| rows.len() == 1)
    })
    .await;
    // Review names a refusal by the session id inside the game's token.
    let listed = s.admin("GET", "/admin/flagged?user=ola", None).await.1;
    let session = listed["flagged"][0]["session"].as_str().unwrap().to_owned();
    let (status, body) = s
        .admin("POST", &format!("/admin/flagged/{session}/dismiss"), None)
        .await;
    assert_eq!((status, &body["dismissed"]), (200, &json!(true)), "{body}");
    let open = s.admin("GET", "/admin/flagged?user=ola", None).await.1;
    assert_eq!(open["flagged"], json!([]), "the queue: {open}");
    let done = s
        .admin("GET", "/admin/flagged?user=ola&state=dismissed", None)
        .await
        .1;
    assert_eq!(done["flagged"][0]["dismissed_by"], "key:test", "{done}");
    let all = s
        .admin("GET", "/admin/flagged?user=ola&state=all", None)
        .await
        .1;
    assert_eq!(all["flagged"].as_array().unwrap().len(), 1);
    let page = s.admin("GET", "/admin/users/ola", None).await.1;
    assert!(page["flags"][0]["dismissed_at"].is_string(), "{page}");
    let (status, _) = s
        .admin("POST", &format!("/admin/flagged/{session}/dismiss"), None)
        .await;
    assert_eq!(status, 200, "dismissing twice keeps the first");
    let (status, _) = s
        .admin("POST", "/admin/flagged/no-such-session/dismiss", None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = s.admin("GET", "/admin/flagged?state=closed", None).await;
    assert_eq!(status, 400);
    let audit = s.admin("GET", "/admin/audit?limit=5", None).await.1;
    assert_eq!(audit["entries"][0]["action"], "flag_dismiss", "{audit}");
}

#[tokio::test]
async fn removing_a_players_scores_takes_them_off_the_campaigns_boards_for_good() {
    let s = TestServer::start();
    let mut p = s.player("oz").await;
    p.play(700).await;
    s.player("pia").await.play(300).await;
    let (status, body) = s
        .admin("DELETE", "/admin/campaigns/quick/boards/scores/oz", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["boards"], 2, "global and today's");
    let shown = s.http("GET", "/leaderboard/quick/global", None).await.1;
    assert_eq!(
        (shown["total"].as_u64(), shown["rows"][0]["user"].as_str()),
        (Some(1), Some("pia"))
    );
    // The removed result may still have been on its way to PostgreSQL: once it is there, a
    // rebuild must not count it.
    if s.config.postgres.url.is_some() {
        eventually("the results reach PostgreSQL", || async {
            stream_backlog(&s.config).await == 0
        })
        .await;
    }
    let (status, body) = s
        .admin("POST", "/admin/campaigns/quick/rebuild", None)
        .await;
    assert_eq!(status, 200, "{body}");
    let shown = s.http("GET", "/leaderboard/quick/global", None).await.1;
    assert_eq!(
        shown["total"], 1,
        "a rebuild does not bring a removed score back: {shown}"
    );
    let (status, _) = s
        .admin("DELETE", "/admin/campaigns/quick/boards/scores/oz", None)
        .await;
    assert_eq!(status, 404, "nothing left to remove");
    let (status, _) = s
        .admin("DELETE", "/admin/campaigns/nope/boards/scores/oz", None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        p.play(650).await["status"],
        "accepted",
        "the player may play on"
    );
}

#[tokio::test]
async fn a_reset_board_starts_empty_and_keeps_its_standings_as_an_archive() {
    let s = TestServer::start();
    let mut watcher = s.player("quinn").await;
    watcher.join("quick/global").await;
    s.player("ray").await.play(40).await;
    s.player("sue").await.play(60).await;
    watcher.recv_type("diff").await;
    let (status, body) = s
        .admin(
            "POST",
            "/admin/campaigns/quick/boards/global/reset",
            Some(json!({"archive": "week 1"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["archived_players"], 2);
    let fresh = watcher.recv_type("snapshot").await;
    assert_eq!(fresh["top"], json!([]), "{fresh}");
    let shown = s.http("GET", "/leaderboard/quick/global", None).await.1;
    assert_eq!(shown["total"], 0);
    let (status, archives) = s
        .http("GET", "/api/campaigns/quick/boards/global/archives", None)
        .await;
    assert_eq!(status, 200, "{archives}");
    let week = &archives["archives"][0];
    assert_eq!(
        (week["name"].as_str(), week["players"].as_u64()),
        (Some("week 1"), Some(2))
    );
    assert_eq!(week["rows"][0]["user"], "sue");
    let (status, _) = s
        .admin(
            "POST",
            "/admin/campaigns/quick/boards/global/reset",
            Some(json!({"archive": "week 1"})),
        )
        .await;
    assert_eq!(status, 409, "an archive name is used once per board");
    if s.config.postgres.url.is_some() {
        eventually("the results reach PostgreSQL", || async {
            stream_backlog(&s.config).await == 0
        })
        .await;
    }
    s.admin("POST", "/admin/campaigns/quick/rebuild", None)
        .await;
    let shown = s.http("GET", "/leaderboard/quick/global", None).await.1;
    assert_eq!(
        shown["total"], 0,
        "a rebuild counts only what came after the reset: {shown}"
    );
    s.player("tom").await.play(5).await;
    // Board reads are cached for up to a second.
    eventually("a score after the reset is on the board", || async {
        let shown = s.http("GET", "/leaderboard/quick/global", None).await.1;
        shown["rows"][0]["user"] == "tom"
    })
    .await;
    let daily = s.http("GET", "/leaderboard/quick/daily", None).await.1;
    assert_eq!(daily["total"], 3, "only the global board was reset");
    let (status, _) = s
        .admin(
            "POST",
            "/admin/campaigns/quick/boards/region:zz/reset",
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = s
        .admin("POST", "/admin/campaigns/quick/boards/daily/reset", None)
        .await;
    assert_eq!(status, 200, "no body: the archive is named by the time");
    let auth = format!("Bearer {}", *ADMIN_KEY);
    let (status, _, _) = s
        .request(
            "POST",
            "/admin/campaigns/quick/boards/daily/reset",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            Some("\t"),
        )
        .await;
    assert_eq!(
        status, 400,
        "a body of whitespace is not JSON (found by schemathesis)"
    );
}

#[tokio::test]
async fn enough_cheat_refusals_ban_a_player_automatically() {
    let s = TestServer::with(|c| c.admin.auto_ban_flags = 3);
    let mut p = s.player("vic").await;
    let mut late = s.player("wes").await;
    for _ in 0..2 {
        let session = p.start_game("demo").await;
        assert_eq!(p.submit(&session, 1).await["reason"], "too_fast");
    }
    p.send(json!({"type":"submit","session":"forged.token","score":1}))
        .await;
    assert_eq!(p.recv_type("result").await["reason"], "bad_session");
    assert_eq!(p.closed().await, (4403, "banned".into()));
    let (_, bans) = s.admin("GET", "/admin/bans", None).await;
    assert_eq!(bans["bans"][0]["user"], "vic", "{bans}");
    assert_eq!(bans["bans"][0]["by"], "auto");
    let (_, audit) = s.admin("GET", "/admin/audit", None).await;
    assert_eq!(audit["entries"][0]["actor"], "auto", "{audit}");
    // Refusals that are not cheating (a late submit) never ban.
    let _ = late.start_game("quick").await;
    for _ in 0..3 {
        late.send(json!({"type":"start_game","campaign":"nope"}))
            .await;
        assert_eq!(late.recv().await["code"], "unknown_campaign");
    }
    let (_, bans) = s.admin("GET", "/admin/bans", None).await;
    assert_eq!(bans["bans"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn results_export_as_csv_and_a_players_page_shows_their_results_and_flags() {
    let s = TestServer::start();
    let mut p = s.player("xia").await;
    p.play(30).await;
    p.play(45).await;
    let early = p.start_game("demo").await;
    assert_eq!(p.submit(&early, 1).await["reason"], "too_fast");
    s.player("yan,the \"great\"").await.play(12).await;
    if s.config.postgres.url.is_some() {
        eventually("the results reach PostgreSQL", || async {
            stream_backlog(&s.config).await == 0
        })
        .await;
    }
    s.admin("DELETE", "/admin/campaigns/quick/boards/scores/xia", None)
        .await;
    let (status, head, csv) = s
        .request(
            "GET",
            "/admin/campaigns/quick/results.csv",
            &[("Authorization", &format!("Bearer {}", *ADMIN_KEY))],
            None,
        )
        .await;
    assert_eq!(status, 200, "{csv}");
    assert!(
        head.to_ascii_lowercase().contains("content-type: text/csv"),
        "{head}"
    );
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(&csv)
    } else {
        csv
    };
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(
        lines[0],
        "session_id,user_id,region,score,started_at,accepted_at,removed"
    );
    assert_eq!(lines.len(), 4, "three accepted results: {body}");
    assert!(
        lines[1].contains(",xia,,30,") && lines[1].ends_with(",t"),
        "{}",
        lines[1]
    );
    assert!(
        lines[3].contains("\"yan,the \"\"great\"\"\"") && lines[3].ends_with(",f"),
        "{}",
        lines[3]
    );
    let (status, page) = s.admin("GET", "/admin/users/xia", None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["results"].as_array().unwrap().len(), 2);
    assert_eq!(page["results"][0]["score"], 45, "newest first");
    eventually("the refusal reaches review", || async {
        let page = s.admin("GET", "/admin/users/xia", None).await.1;
        page["flags"][0]["reason"] == "too_fast"
    })
    .await;
    let (status, _) = s
        .admin("GET", "/admin/campaigns/nope/results.csv", None)
        .await;
    assert_eq!(status, 404);
}

/// The body of a chunked HTTP/1.1 answer.
fn dechunk(raw: &str) -> String {
    let mut out = String::new();
    let mut rest = raw;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    out
}

#[tokio::test]
async fn a_counted_campaign_is_set_over_http_and_its_bad_rules_are_named() {
    let s = TestServer::start();
    let mut body = new_campaign("stars");
    body["rules"] = json!({
        "min_duration_ms": 0, "max_duration_ms": 60000, "max_score": 500, "max_score_per_second": 1000,
        "scoring": "counted",
        "events": {"tap": {"points": 1}, "bonus": {"points": 25, "max_per_game": 3}},
        "max_events_per_second": 20, "min_event_interval_ms": 0, "human_max_rate": 12.5
    });
    let (status, shown) = s.admin("POST", "/admin/campaigns", Some(body)).await;
    assert_eq!(status, 201, "{shown}");
    let rules = &shown["rules"];
    assert_eq!(rules["scoring"], "counted");
    assert_eq!(
        rules["events"]["bonus"],
        json!({"points": 25, "max_per_game": 3})
    );
    assert_eq!(
        (
            rules["human_max_rate"].as_f64(),
            rules["clock_tolerance_ms"].is_null()
        ),
        (Some(12.5), true)
    );
    // As the store holds it, and as players read it (without the thresholds).
    let (_, held) = s.admin("GET", "/admin/campaigns/stars", None).await;
    assert_eq!(held["rules"], *rules);
    let (_, public) = s.http("GET", "/api/campaigns/stars", None).await;
    assert_eq!(public["rules"]["events"]["tap"]["points"], 1, "{public}");
    assert!(public["rules"].get("human_max_rate").is_none(), "{public}");
    // A game of it is counted: a bonus is 25.
    let mut p = s.player("star").await;
    p.send(json!({"type":"start_game","campaign":"stars"}))
        .await;
    let started = p.recv_type("game_started").await;
    assert_eq!(started["scoring"], "counted");
    let token = started["session"].as_str().unwrap();
    p.send(json!({"type":"input","session": token,"seq":0,"events":[[0,"tap"],[0,"bonus"]]}))
        .await;
    assert_eq!(p.submit(token, 26).await["score"], 26);

    for (rules, field) in [
        (json!({"scoring": "honest"}), "rules.scoring"),
        (json!({"events": {"tap": {"points": 1}}}), "rules.events"),
        (json!({"scoring": "counted", "events": {}}), "rules.events"),
        (
            json!({"scoring": "counted", "events": {"tap": {"pts": 1}}}),
            "rules.events",
        ),
        (
            json!({"scoring": "counted", "min_interval_cv": 2}),
            "rules.min_interval_cv",
        ),
        (
            json!({"scoring": "counted", "max_events_per_second": 0}),
            "rules.max_events_per_second",
        ),
        (
            json!({"scoring": "counted", "input_flush_ms": "soon"}),
            "rules.input_flush_ms",
        ),
    ] {
        let mut create = new_campaign("bad");
        create["rules"]
            .as_object_mut()
            .unwrap()
            .extend(rules.as_object().unwrap().clone());
        let (status, body) = s.admin("POST", "/admin/campaigns", Some(create)).await;
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(status, 400, "{rules}: {body}");
        assert!(message.contains(field), "{rules}: {message}");
    }
    // Back to claimed: the counting is dropped.
    let (status, shown) = s
        .admin(
            "PATCH",
            "/admin/campaigns/stars",
            Some(json!({"rules": {"scoring": "claimed"}})),
        )
        .await;
    assert_eq!(
        (status, shown["rules"]["scoring"].as_str()),
        (200, Some("claimed")),
        "{shown}"
    );
    assert!(shown["rules"].get("events").is_none());
}

#[tokio::test]
async fn a_campaign_names_its_prize_places_per_board() {
    let s = TestServer::start();
    let mut body = new_campaign("prized");
    body["prizes"] = json!({"global": 10, "daily": 3, "region:eu": 1});
    let (status, shown) = s.admin("POST", "/admin/campaigns", Some(body)).await;
    assert_eq!(status, 201, "{shown}");
    let expected = json!({"daily": 3, "global": 10, "region:eu": 1});
    assert_eq!(shown["prizes"], expected);
    let (_, held) = s.admin("GET", "/admin/campaigns/prized", None).await;
    assert_eq!(held["prizes"], expected, "as the store holds it");
    let (_, public) = s.http("GET", "/api/campaigns/prized", None).await;
    assert_eq!(public["prizes"], expected);
    for prizes in [
        json!({"weekly": 1}),
        json!({"region:asia": 1}),
        json!({"global": 0}),
        json!({"global": "ten"}),
        json!(["global"]),
    ] {
        let (status, body) = s
            .admin(
                "PATCH",
                "/admin/campaigns/prized",
                Some(json!({ "prizes": prizes })),
            )
            .await;
        assert_eq!(status, 400, "{prizes}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("malformed message: prizes:"),
            "{body}"
        );
    }
    let (_, after) = s.admin("GET", "/admin/campaigns/prized", None).await;
    assert_eq!(
        after["prizes"], expected,
        "a refused change changes nothing"
    );
    let (_, none) = s
        .admin(
            "PATCH",
            "/admin/campaigns/prized",
            Some(json!({"prizes": {}})),
        )
        .await;
    assert_eq!(none["prizes"], json!({}));
}
