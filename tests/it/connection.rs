//! Socket limits: caps before and after auth, rate limit, frame size, bad frames, heartbeat,
//! inactivity, slow readers.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::common::*;

/// The HTTP status and JSON code of a refused upgrade.
async fn refused_upgrade(server: &TestServer) -> (u16, String) {
    match tokio_tungstenite::connect_async(server.url()).await {
        Err(tungstenite::Error::Http(resp)) => {
            let body: serde_json::Value =
                serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).unwrap();
            (
                resp.status().as_u16(),
                body["error"]["code"].as_str().unwrap().to_owned(),
            )
        }
        other => panic!("expected a refused upgrade, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn the_global_cap_refuses_with_503_before_the_upgrade() {
    let server = TestServer::with(|c| c.ws.max_connections = 2);
    let _a = server.connect().await;
    let _b = server.connect().await;
    assert_eq!(
        refused_upgrade(&server).await,
        (503, "server_at_capacity".into())
    );
}

#[tokio::test]
async fn the_per_ip_cap_refuses_with_429_and_frees_the_place_on_close() {
    let server = TestServer::with(|c| c.ws.max_connections_per_ip = 1);
    let mut a = server.connect().await;
    assert_eq!(
        refused_upgrade(&server).await,
        (429, "too_many_connections_for_ip".into())
    );
    a.ws.close(None).await.unwrap();
    // The place comes back once the server has seen the close.
    for _ in 0..50 {
        if tokio_tungstenite::connect_async(server.url()).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the per-IP place was never released");
}

#[tokio::test]
async fn the_per_user_cap_closes_the_extra_socket_with_4429() {
    let server = TestServer::with(|c| c.ws.max_connections_per_user = 2);
    let _a = server.player("bob").await;
    let _b = server.player("bob").await;
    let mut c = server.connect().await;
    c.send(json!({"type":"auth","token": server.token("bob")}))
        .await;
    assert_eq!(c.recv().await["code"], "too_many_connections_for_user");
    assert_eq!(c.closed().await.0, 4429);
    // Another player is unaffected.
    let _d = server.player("carol").await;
}

#[tokio::test]
async fn the_rate_limit_refuses_then_closes_an_abuser() {
    let server = TestServer::with(|c| {
        c.ws.rate_limit_max_messages = 5;
        c.ws.rate_limit_max_strikes = 3;
        c.ws.rate_limit_window_ms = 60_000;
    });
    let mut c = server.player("dave").await;
    for i in 0..5 {
        c.send(json!({"type":"ping","id": i})).await;
        assert_eq!(c.recv().await["type"], "pong");
    }
    c.send(json!({"type":"ping","id": 5})).await;
    let refused = c.recv().await;
    assert_eq!(
        (refused["code"].as_str(), refused["re"].as_i64()),
        (Some("rate_limited"), Some(5))
    );
    c.send(json!({"type":"ping"})).await;
    c.send(json!({"type":"ping"})).await;
    assert_eq!(c.closed().await, (4429, "rate_limit_abuse".into()));
}

#[tokio::test]
async fn an_oversized_frame_closes_with_1009() {
    let server = TestServer::with(|c| c.ws.max_payload_bytes = 1024);
    let mut c = server.player("erin").await;
    c.send(json!({"type":"ping","pad": "x".repeat(900)})).await;
    assert_eq!(c.recv().await["type"], "pong", "under the limit is fine");
    c.send(json!({"type":"ping","pad": "x".repeat(2000)})).await;
    assert_eq!(c.closed().await.0, 1009);
}

#[tokio::test]
async fn bad_json_unknown_types_and_binary_frames_get_bad_message_and_the_socket_stays() {
    let server = TestServer::start();
    let mut c = server.player("frank").await;
    c.send_raw(Message::Text("{not json".into())).await;
    assert_eq!(c.recv().await["code"], "bad_message");
    c.send(json!({"type":"teleport","id":9})).await;
    let err = c.recv().await;
    assert_eq!(
        (err["code"].as_str(), err["re"].as_i64()),
        (Some("bad_message"), Some(9))
    );
    c.send_raw(Message::Binary(vec![1, 2, 3].into())).await;
    assert_eq!(c.recv().await["code"], "bad_message");
    c.send(json!({"type":"submit","session":"x","score":-5}))
        .await;
    assert_eq!(c.recv().await["code"], "bad_message");
    c.send(json!({"type":"ping","id":"still-here"})).await;
    assert_eq!(c.recv().await["re"], "still-here");
}

#[tokio::test]
async fn a_silent_client_is_closed_after_two_heartbeats() {
    let server = TestServer::with(|c| c.ws.heartbeat_interval_ms = 100);
    let mut c = server.player("gina").await;
    // Not reading means not answering the server's pings.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(c.closed().await, (4408, "heartbeat_timeout".into()));
}

#[tokio::test]
async fn a_client_that_only_pings_is_closed_as_inactive() {
    let server = TestServer::with(|c| {
        c.ws.heartbeat_interval_ms = 50;
        c.ws.inactive_timeout_ms = 300;
        c.ws.rate_limit_max_messages = 1000;
    });
    let mut c = server.player("hank").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        // Reading answers the server's pings, so only inactivity can close this socket.
        c.send(json!({"type":"ping"})).await;
        let tick = tokio::time::Instant::now() + Duration::from_millis(40);
        while let Ok(next) =
            tokio::time::timeout_at(tick, futures_util::StreamExt::next(&mut c.ws)).await
        {
            match next {
                Some(Ok(Message::Close(Some(frame)))) => {
                    assert_eq!(
                        (u16::from(frame.code), frame.reason.as_str()),
                        (4408, "inactive")
                    );
                    return;
                }
                Some(Ok(_)) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never closed for inactivity"
        );
    }
}

#[tokio::test]
async fn a_slow_reader_is_closed_with_4008_while_the_room_keeps_sending_to_others() {
    let server = TestServer::with(|c| {
        c.ws.outbound_queue_max_bytes = 32 * 1024;
        c.ws.socket_send_buffer_bytes = 4096;
        c.ws.rate_limit_max_messages = 1_000_000;
        c.game.max_submits_per_minute = 1_000_000;
        c.rooms.tick_ms = 10;
        c.rooms.top_n = 200;
    });
    let mut fast = server.player("fast").await;
    let mut seq = fast.join("quick/global").await["seq"].as_u64().unwrap();
    // The slow member's socket takes 4 KiB at most and it never reads: the room's diffs pile
    // up in its outbound queue.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let stream = sock.connect(server.addr).await.unwrap();
    let slow_port = stream.local_addr().unwrap().port();
    let (ws, _) = tokio_tungstenite::client_async(
        server.url(),
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
    )
    .await
    .unwrap();
    let mut slow = Client { ws };
    slow.send(json!({"type":"auth","token": server.token("slow")}))
        .await;
    slow.recv().await;
    slow.join("quick/global").await;

    // Forty players improving their scores as fast as they can make every diff large.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..40 {
        let mut p = server.player(&format!("player-{i}")).await;
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut score = 1;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && score < 5_000 {
                p.play(score).await;
                score += 1;
            }
        }));
    }
    // The fast member keeps receiving every diff, in order, the whole time, until the server
    // has cut the slow member off (42 sockets: fast, slow and the 40 players).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut diffs = 0;
    loop {
        let diff = fast.recv_type("diff").await;
        assert_eq!(diff["seq"].as_u64().unwrap(), seq + 1);
        seq += 1;
        diffs += 1;
        if diffs % 10 == 0
            && server.http("GET", "/health", None).await.1["metrics"]["totalConnections"] == 41
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow member was never cut off"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    // Within seconds the server lets go of the socket, with whatever was still unsent.
    eventually("the server's end of the slow socket is gone", || async {
        server_sockets_to(server.addr.port(), slow_port) == 0
    })
    .await;
    // Reading now, the slow member finds what had been queued, then the close or a reset.
    loop {
        match tokio::time::timeout(WAIT, slow.ws.next())
            .await
            .expect("an end")
        {
            Some(Ok(tungstenite::Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 4008);
                break;
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => break,
        }
    }
}

/// Established sockets from the server's `port` to a client's `peer` port, as `ss` sees them.
fn server_sockets_to(port: u16, peer: u16) -> usize {
    let out = std::process::Command::new("ss")
        .args(["-Htn", "state", "established"])
        .arg(format!("( sport = :{port} and dport = :{peer} )"))
        .output()
        .expect("ss (iproute2)");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[tokio::test]
async fn a_socket_joins_at_most_its_cap_of_rooms() {
    let server = TestServer::with(|c| c.rooms.max_rooms_per_connection = 2);
    let mut p = server.player("roamer").await;
    p.join("quick/global").await;
    p.join("quick/daily").await;
    p.send(json!({"type":"join","room":"quick/region:eu","id":3}))
        .await;
    let refused = p.recv().await;
    assert_eq!(
        (refused["code"].as_str(), refused["re"].as_u64()),
        (Some("too_many_rooms"), Some(3))
    );
    // Joining a room again is a resync, not another room; leaving makes room for another.
    assert_eq!(p.join("quick/global").await["type"], "snapshot");
    p.send(json!({"type":"leave","room":"quick/daily"})).await;
    assert_eq!(p.recv().await["type"], "left");
    assert_eq!(p.join("quick/region:eu").await["type"], "snapshot");
}

/// Upgrades with `X-Forwarded-For: ip`; answers the HTTP status (101 when upgraded).
async fn upgrade_from(server: &TestServer, ip: &str) -> (u16, Option<Client>) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = server.url().into_client_request().unwrap();
    request.headers_mut().insert(
        "x-forwarded-for",
        format!("{ip}, 10.0.0.1").parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, response)) => (response.status().as_u16(), Some(Client { ws })),
        Err(tungstenite::Error::Http(response)) => (response.status().as_u16(), None),
        Err(other) => panic!("upgrade failed: {other}"),
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_per_ip_cap_counts_the_forwarded_address() {
    let server = TestServer::with(|c| {
        c.trust_proxy = true;
        c.ws.max_connections_per_ip = 1;
    });
    let (first, _a) = upgrade_from(&server, "198.51.100.7").await;
    let (other, _b) = upgrade_from(&server, "198.51.100.8").await;
    let (again, _) = upgrade_from(&server, "198.51.100.7").await;
    assert_eq!((first, other, again), (101, 101, 429));

    // Not trusted: the header is the client's word and is ignored; the peer (127.0.0.1) counts.
    let direct = TestServer::with(|c| c.ws.max_connections_per_ip = 1);
    let (first, _c) = upgrade_from(&direct, "198.51.100.7").await;
    let (other, _) = upgrade_from(&direct, "198.51.100.8").await;
    assert_eq!((first, other), (101, 429));
}

/// The real binary under a descriptor limit of 256: its socket cap is what the limit leaves
/// (192), a socket past it is refused with 503 before an accept could fail for want of a
/// descriptor, and a member connected all along still gets its room's diffs.
#[tokio::test]
async fn the_socket_cap_follows_the_descriptor_limit_and_the_connected_keep_their_diffs() {
    use std::os::unix::process::CommandExt;
    let port = free_port();
    let mut command = podium_command(port);
    command
        .env_remove("REDIS_URL")
        .env_remove("DATABASE_URL")
        .env_remove("WS_MAX_CONNECTIONS");
    // SAFETY: only setrlimit runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 256,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Killed(command.spawn().expect("start podium"));
    let url = format!("ws://127.0.0.1:{port}/ws");
    let connect = || async {
        tokio_tungstenite::connect_async(&url)
            .await
            .map(|(ws, _)| Client { ws })
    };
    let deadline = tokio::time::Instant::now() + WAIT * 6;
    let mut member = loop {
        if let Ok(c) = connect().await {
            break c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "podium did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let token = |user: &str| {
        token_with(
            user,
            now_secs() + 600,
            jsonwebtoken::Algorithm::HS256,
            SECRET.as_bytes(),
        )
    };
    member
        .send(json!({"type":"auth","token": token("watcher")}))
        .await;
    assert_eq!(member.recv().await["type"], "welcome");
    member.join("quick/global").await;
    let mut held = Vec::new();
    let refused = loop {
        match tokio_tungstenite::connect_async(&url).await {
            Ok((ws, _)) => held.push(ws),
            Err(err) => break err,
        }
        assert!(held.len() < 256, "no cap below the descriptor limit");
    };
    assert_eq!(
        held.len() + 1,
        256 - 64,
        "the cap is the limit less its headroom"
    );
    match refused {
        tungstenite::Error::Http(resp) => {
            assert_eq!(resp.status().as_u16(), 503);
            let body: serde_json::Value =
                serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(body["error"]["code"], "server_at_capacity");
        }
        other => panic!("expected 503 server_at_capacity, got {other:?}"),
    }
    held.pop();
    let mut player = loop {
        if let Ok(c) = connect().await {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    player
        .send(json!({"type":"auth","token": token("climber")}))
        .await;
    assert_eq!(player.recv().await["type"], "welcome");
    assert_eq!(player.play(42).await["status"], "accepted");
    let diff = member.recv_type("diff").await;
    assert_eq!(diff["changed"][0]["user"], "climber", "{diff}");
}
