//! Hostile input changes nothing: what strangers and cheats send is refused with a stable
//! code, counted against them, and leaves the service's health and state as they were.

use std::time::Duration;

use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

fn token_claims(claims: serde_json::Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
}

#[tokio::test]
async fn any_first_frame_but_a_valid_auth_closes_4401_at_once() {
    let server = TestServer::with(|c| c.ws.auth_timeout_ms = 60_000);
    let frames = [
        Message::Text("not json".into()),
        Message::Binary(vec![1, 2, 3].into()),
        Message::Text(r#"{"type":"ping"}"#.into()),
        Message::Text(r#"{"type":"auth"}"#.into()),
    ];
    for frame in frames {
        let mut c = server.connect().await;
        c.send_raw(frame.clone()).await;
        assert_eq!(c.recv().await["code"], "unauthorized", "{frame:?}");
        // At once, not at the minute-long deadline.
        assert_eq!(c.closed().await, (4401, "unauthorized".into()), "{frame:?}");
    }
}

#[tokio::test]
async fn strangers_junk_leaves_health_alone() {
    let server = TestServer::with(|c| c.health.error_rate_warning = 0.01);
    for _ in 0..20 {
        let mut c = server.connect().await;
        c.send_raw(Message::Text("garbage".into())).await;
        c.closed().await;
    }
    let mut p = server.player("clumsy").await;
    for _ in 0..10 {
        p.send_raw(Message::Text("{}".into())).await;
        assert_eq!(p.recv().await["code"], "bad_message");
    }
    let (status, health) = server.http("GET", "/health", None).await;
    assert_eq!(
        (status, health["status"].as_str()),
        (200, Some("healthy")),
        "{health}"
    );
}

#[tokio::test]
async fn tokens_not_valid_yet_and_names_that_hide_text_are_refused() {
    let server = TestServer::start();
    let refused = [
        json!({"sub": "early", "exp": now_secs() + 7200, "nbf": now_secs() + 3600}),
        json!({"sub": "abc\u{202E}def", "exp": now_secs() + 600}),
        json!({"sub": "ad\u{200B}min", "exp": now_secs() + 600}),
        json!({"sub": "e\u{301}ve", "exp": now_secs() + 600}),
    ];
    for claims in refused {
        let mut c = server.connect().await;
        c.send(json!({"type":"auth","token": token_claims(claims.clone())}))
            .await;
        assert_eq!(c.recv().await["code"], "unauthorized", "{claims}");
        assert_eq!(c.closed().await.0, 4401, "{claims}");
    }
    let mut ok = server.connect().await;
    let claims = json!({"sub": "Zoë", "exp": now_secs() + 600, "nbf": now_secs() - 5});
    ok.send(json!({"type":"auth","token": token_claims(claims)}))
        .await;
    assert_eq!(ok.recv().await["user"], "Zoë");
}

#[tokio::test]
async fn every_frame_counts_against_the_message_limit() {
    let server = TestServer::with(|c| {
        c.ws.rate_limit_max_messages = 5;
        c.ws.rate_limit_max_strikes = 3;
        c.ws.rate_limit_window_ms = 60_000;
    });
    let mut p = server.player("spammer").await;
    let junk = [
        Message::Text("nope".into()),
        Message::Binary(vec![0; 8].into()),
    ];
    for i in 0..5 {
        p.send_raw(junk[i % 2].clone()).await;
        assert_eq!(p.recv().await["code"], "bad_message");
    }
    for _ in 0..3 {
        p.send_raw(junk[0].clone()).await;
        assert_eq!(p.recv().await["code"], "rate_limited");
    }
    assert_eq!(p.closed().await, (4429, "rate_limit_abuse".into()));
}

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_closes_1007() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start();
    let mut c = server.player("bytes").await;
    // A masked text frame holding 0xff 0xfe, written straight to the socket.
    let mask = [1u8, 2, 3, 4];
    let payload: Vec<u8> = [0xffu8, 0xfe]
        .iter()
        .zip(mask.iter().cycle())
        .map(|(b, m)| b ^ m)
        .collect();
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend_from_slice(&payload);
    let stream = match c.ws.get_mut() {
        tokio_tungstenite::MaybeTlsStream::Plain(s) => s,
        _ => unreachable!("plain test sockets"),
    };
    stream.write_all(&frame).await.unwrap();
    assert_eq!(c.closed().await, (1007, "invalid_payload".into()));
}

#[tokio::test]
async fn joins_sent_back_to_back_cannot_pass_the_room_cap() {
    let server = TestServer::with(|c| c.rooms.max_rooms_per_connection = 8);
    let mut p = server.player("greedy").await;
    for i in 0..12 {
        p.send(json!({"type":"join","room": format!("quick/region:r{i}")}))
            .await;
    }
    let (mut snapshots, mut refused) = (0, 0);
    while snapshots + refused < 12 {
        let v = p.recv().await;
        match v["type"].as_str() {
            Some("snapshot") => snapshots += 1,
            Some("error") if v["code"] == "too_many_rooms" => refused += 1,
            _ => panic!("unexpected {v}"),
        }
    }
    assert_eq!((snapshots, refused), (8, 4));
}

/// `podium_room_members{room}` as /metrics shows it.
async fn members_gauge(server: &TestServer, room: &str) -> Option<f64> {
    let (_, text) = server.http_text("GET", "/metrics", None).await;
    let prefix = format!("podium_room_members{{room=\"{room}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn sockets_that_close_while_joining_leave_no_member_behind() {
    let server = TestServer::with(|c| {
        // A campaign of its own: the gauge's label is this test's alone.
        c.campaigns
            .insert("churn".into(), c.campaigns["quick"].clone());
    });
    let mut cycles = Vec::new();
    for i in 0..200 {
        let mut p = server.player(&format!("churner{i}")).await;
        p.send(json!({"type":"join","room":"churn/global"})).await;
        // Half close before their snapshot, half after.
        if i % 2 == 0 {
            p.recv_type("snapshot").await;
        }
        cycles.push(p);
        if cycles.len() == 4 {
            cycles.clear();
        }
    }
    drop(cycles);
    eventually("the member gauge back at 0", || async {
        members_gauge(&server, "churn/global").await == Some(0.0)
    })
    .await;
}

#[tokio::test]
async fn a_socket_is_closed_when_its_token_expires() {
    let server = TestServer::with(|c| c.jwt.leeway_secs = 0);
    let mut c = server.connect().await;
    let token = token_claims(json!({"sub": "brief", "exp": now_secs() + 2}));
    c.send(json!({"type":"auth","token": token})).await;
    assert_eq!(c.recv().await["type"], "welcome");
    let started = std::time::Instant::now();
    assert_eq!(c.recv().await["code"], "unauthorized");
    assert_eq!(c.closed().await, (4401, "token_expired".into()));
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn scores_past_the_ceiling_are_bad_messages_and_the_session_stays_decidable() {
    let server = TestServer::start();
    let mut p = server.player("huge").await;
    let session = p.start_game("quick").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    for score in [
        "9007199254740992",
        "9223372036854775808",
        "18446744073709551616",
    ] {
        let frame =
            format!(r#"{{"type":"submit","session":"{session}","score":{score},"id":"x"}}"#);
        p.send_raw(Message::Text(frame.into())).await;
        let v = p.recv().await;
        assert_eq!(
            (v["code"].as_str(), v["re"].as_str()),
            (Some("bad_message"), Some("x")),
            "{score}"
        );
    }
    assert_eq!(p.submit(&session, 12).await["status"], "accepted");
    assert_eq!(
        p.submit(&session, 12).await["status"],
        "accepted",
        "a retry"
    );
}

#[tokio::test]
async fn the_frameworks_own_errors_use_the_json_error_shape() {
    let server = TestServer::start();
    let (status, body) = server.http("POST", "/health", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    let (status, body) = server.http("GET", "/dev/token", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    let (_, head, _) = server.request("PUT", "/admin/users/x/ban", &[], None).await;
    assert!(
        head.to_ascii_lowercase().contains("allow: post, delete"),
        "a 405 names the methods the path takes: {head}"
    );
    let big = format!(r#"{{"user":"{}"}}"#, "a".repeat(8 << 10));
    let (status, body) = server.http("POST", "/dev/token", Some(&big)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    let (status, body) = server.http("POST", "/dev/token", Some("{")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_message"))
    );
}

#[tokio::test]
async fn rooms_left_empty_are_freed_after_the_grace_period() {
    let server = TestServer::with(|c| {
        c.rooms.max_rooms = 3;
        c.rooms.idle_grace_ms = 100;
        c.rooms.tick_ms = 20;
    });
    let mut p = server.player("wanderer").await;
    for region in ["a", "b", "c"] {
        p.join(&format!("quick/region:{region}")).await;
    }
    p.send(json!({"type":"join","room":"quick/region:d"})).await;
    assert_eq!(
        p.recv().await["code"],
        "unknown_room",
        "the instance is full"
    );
    for region in ["a", "b", "c"] {
        p.send(json!({"type":"leave","room": format!("quick/region:{region}")}))
            .await;
        assert_eq!(p.recv().await["type"], "left");
    }
    // Empty rooms stop once their grace has passed, and new boards find a place.
    let mut joined = 0;
    for region in ["d", "e", "f"] {
        let room = format!("quick/region:{region}");
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            p.send(json!({"type":"join","room": room})).await;
            let v = p.recv().await;
            if v["type"] == "snapshot" {
                joined += 1;
                break;
            }
            assert_eq!(v["code"], "unknown_room", "{v}");
            assert!(std::time::Instant::now() < deadline, "no room was freed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(joined, 3);
    // A room someone is in is not freed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.send(json!({"type":"snapshot","room":"quick/region:d","id":"still"}))
        .await;
    assert_eq!(p.recv().await["re"], "still");
}

#[tokio::test]
async fn one_address_holds_at_most_its_cap_of_connections() {
    let server = TestServer::with(|c| c.max_connections_per_ip = 2);
    let idle_a = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let idle_b = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    eventually("a third connection is refused", || async {
        let (status, body) = server.http("GET", "/ready", None).await;
        status == 429 && body["error"]["code"] == "too_many_connections_for_ip"
    })
    .await;
    drop((idle_a, idle_b));
    eventually("the places come back when they close", || async {
        server.http("GET", "/ready", None).await.0 == 200
    })
    .await;
}

#[tokio::test]
async fn a_body_trickled_in_is_cut_off_with_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start();
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"POST /dev/token HTTP/1.1\r\nHost: t\r\nContent-Length: 40\r\n\r\n{")
        .await
        .unwrap();
    // One byte, then nothing: the server answers without waiting for the rest.
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT * 2, s.read_to_end(&mut raw))
        .await
        .expect("an answer within the body timeout")
        .unwrap();
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.starts_with("HTTP/1.1 408"), "{raw}");
    assert!(raw.contains(r#""code":"request_timeout""#), "{raw}");
}

#[tokio::test]
async fn a_region_the_campaign_has_no_board_for_makes_no_board() {
    let server = TestServer::start();
    let mut p = server.player_in("martian", "mars").await;
    assert_eq!(p.play(10).await["status"], "accepted");
    p.send(json!({"type":"join","room":"quick/region:mars"}))
        .await;
    assert_eq!(p.recv().await["code"], "unknown_room");
    let (status, _) = server
        .http("GET", "/leaderboard/quick/region:mars", None)
        .await;
    assert_eq!(status, 404);
    let (_, page) = server.http("GET", "/leaderboard/quick/global", None).await;
    assert_eq!(
        page["rows"][0]["user"], "martian",
        "the result counts on the global board"
    );
}
