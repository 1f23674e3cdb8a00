//! Rooms: snapshots on join, one coalesced diff per tick with consecutive seq, the same bytes
//! for every member, and a top list a client can rebuild exactly.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;

/// Applies a diff the way docs/PROTOCOL.md tells clients to.
fn apply(top: &[Value], diff: &Value) -> Vec<Value> {
    let changed: Vec<&Value> = diff["changed"].as_array().unwrap().iter().collect();
    let out: Vec<&str> = diff["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .chain(changed.iter().map(|c| c["user"].as_str().unwrap()))
        .collect();
    let mut kept = top
        .iter()
        .filter(|e| !out.contains(&e["user"].as_str().unwrap()));
    let mut changed = changed.clone();
    changed.sort_by_key(|c| c["rank"].as_u64());
    let mut changed = changed.into_iter().peekable();
    let mut list = Vec::new();
    loop {
        let rank = list.len() as u64 + 1;
        let row = match changed.peek() {
            Some(c) if c["rank"].as_u64() == Some(rank) => changed.next().cloned(),
            _ => kept.next().cloned().or_else(|| changed.next().cloned()),
        };
        match row {
            Some(r) => list.push(json!({"rank": rank, "user": r["user"], "score": r["score"]})),
            None => return list,
        }
    }
}

#[tokio::test]
async fn a_joiner_gets_a_snapshot_with_seq_and_its_own_standing() {
    let server = TestServer::start();
    let mut p = server.player("ann").await;
    assert_eq!(p.play(70).await["status"], "accepted");
    let mut watcher = server.player("ben").await;
    watcher
        .send(json!({"type":"join","room":"quick/global","id":1}))
        .await;
    let snap = watcher.recv_type("snapshot").await;
    assert_eq!(snap["room"], "quick/global");
    assert_eq!(snap["re"], 1);
    assert!(snap["seq"].is_u64());
    assert_eq!(snap["top"], json!([{"rank":1,"user":"ann","score":70}]));
    assert_eq!(snap["me"], Value::Null, "ben has no score");
    assert_eq!(
        p.join("quick/global").await["me"],
        json!({"rank":1,"score":70})
    );
}

#[tokio::test]
async fn unknown_rooms_and_unjoined_rooms_are_refused() {
    let server = TestServer::start();
    let mut p = server.player("cid").await;
    for room in ["nope/global", "quick/weekly", "quick"] {
        p.send(json!({"type":"join","room": room})).await;
        assert_eq!(p.recv().await["code"], "unknown_room", "{room}");
    }
    p.send(json!({"type":"snapshot","room":"quick/global"}))
        .await;
    assert_eq!(p.recv().await["code"], "unknown_room");
    p.join("quick/global").await;
    p.send(json!({"type":"leave","room":"quick/global","id":"l"}))
        .await;
    let left = p.recv().await;
    assert_eq!(
        (left["type"].as_str(), left["re"].as_str()),
        (Some("left"), Some("l"))
    );
}

#[tokio::test]
async fn members_see_the_same_diffs_with_consecutive_seq_and_rebuild_the_exact_top() {
    let server = TestServer::with(|c| {
        c.rooms.tick_ms = 50;
        c.rooms.top_n = 3;
    });
    let mut a = server.player("watcher-a").await;
    let mut b = server.player("watcher-b").await;
    let snap_a = a.join("quick/global").await;
    let snap_b = b.join("quick/global").await;
    let mut top: Vec<Value> = snap_a["top"].as_array().unwrap().clone();
    let mut seq = snap_a["seq"].as_u64().unwrap();
    assert_eq!(snap_b["seq"].as_u64().unwrap(), seq);

    // Scores that insert, move up, tie (the earlier keeps the higher rank) and push a row
    // out of the top 3.
    let plays = [
        ("p1", 10),
        ("p2", 20),
        ("p3", 20),
        ("p1", 30),
        ("p4", 25),
        ("p2", 5),
        ("p5", 40),
    ];
    let mut players = std::collections::HashMap::new();
    for (user, score) in plays {
        if !players.contains_key(user) {
            players.insert(user, server.player(user).await);
        }
        players.get_mut(user).unwrap().play(score).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
    }

    // Drain diffs until the list matches the final board (p5 40, p1 30, p4 25).
    let want = json!([{"rank":1,"user":"p5","score":40},{"rank":2,"user":"p1","score":30},{"rank":3,"user":"p4","score":25}]);
    let mut frames_a = Vec::new();
    while Value::Array(top.clone()) != want {
        let d = a.recv_type("diff").await;
        assert_eq!(
            d["seq"].as_u64().unwrap(),
            seq + 1,
            "seq grows by one per diff"
        );
        seq += 1;
        top = apply(&top, &d);
        frames_a.push(d);
    }
    // b saw the very same frames.
    for expected in &frames_a {
        assert_eq!(&b.recv_type("diff").await, expected);
    }
    // A fresh snapshot agrees with the rebuilt list.
    let fresh = a.join("quick/global").await;
    assert_eq!(fresh["top"], want);
    assert_eq!(fresh["seq"].as_u64().unwrap(), seq);
}

#[tokio::test]
async fn a_quiet_room_sends_no_diffs() {
    let server = TestServer::with(|c| c.rooms.tick_ms = 20);
    let mut a = server.player("quiet").await;
    a.join("quick/global").await;
    let mut p = server.player("once").await;
    p.play(5).await;
    a.recv_type("diff").await;
    // Same board for ten ticks; the ping goes out only then, so any diff sent meanwhile
    // would arrive before its pong.
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.send(json!({"type":"ping","id":"after"})).await;
    assert_eq!(
        a.recv().await["re"],
        "after",
        "the next frame is the pong, not a diff"
    );
}

#[tokio::test]
async fn around_me_and_leaderboard_pages() {
    let server = TestServer::start();
    for (i, name) in ["r1", "r2", "r3", "r4"].iter().enumerate() {
        let mut p = server.player(name).await;
        p.play(100 - i as u64 * 10).await;
    }
    let mut me = server.player("r3").await;
    me.send(json!({"type":"around","room":"quick/global","id":"a"}))
        .await;
    let around = me.recv().await;
    assert_eq!(
        (around["type"].as_str(), around["re"].as_str()),
        (Some("around"), Some("a"))
    );
    let ranks: Vec<u64> = around["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rank"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ranks,
        vec![1, 2, 3, 4],
        "five either side, clamped to the board"
    );
    me.send(json!({"type":"around","room":"nope/global"})).await;
    assert_eq!(me.recv().await["code"], "unknown_room");

    let (status, page) = server
        .http("GET", "/leaderboard/quick/global?from=2&limit=2", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["total"], 4);
    assert_eq!(
        page["rows"],
        json!([{"rank":2,"user":"r2","score":90},{"rank":3,"user":"r3","score":80}])
    );
    for bad in [
        "/leaderboard/quick/global?from=0",
        "/leaderboard/quick/global?limit=5000",
        "/leaderboard/quick/global?from=x",
        "/leaderboard/quick/global?from=9223372036854775808",
        "/leaderboard/quick/global?from=9007199254740992",
        "/leaderboard/quick/global?from=-1",
        "/leaderboard/quick/global?limit=-5",
    ] {
        let (status, body) = server.http("GET", bad, None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("bad_message")),
            "{bad}"
        );
    }
    assert_eq!(
        server.http("GET", "/leaderboard/nope/global", None).await.0,
        404
    );
}

#[tokio::test]
async fn region_boards_hold_only_that_regions_players() {
    let server = TestServer::start();
    let mut eu = server.player_in("eu-player", "eu").await;
    let mut us = server.player_in("us-player", "us").await;
    let mut nowhere = server.player("no-region").await;
    eu.play(10).await;
    us.play(20).await;
    nowhere.play(30).await;
    let (_, page) = server
        .http("GET", "/leaderboard/quick/region:eu", None)
        .await;
    assert_eq!(
        page["rows"],
        json!([{"rank":1,"user":"eu-player","score":10}])
    );
    let (_, page) = server.http("GET", "/leaderboard/quick/global", None).await;
    assert_eq!(page["total"], 3, "everyone is on the global board");
    assert_eq!(
        eu.join("quick/region:eu").await["me"],
        json!({"rank":1,"score":10})
    );
    // A region claim that is not a region code is refused like any bad token.
    let mut bad = server.connect().await;
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    let claims = json!({"sub": "x", "exp": now_secs() + 60, "region": "Europe West!"});
    bad.send(json!({"type":"auth","token": jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()})).await;
    assert_eq!(bad.recv().await["code"], "unauthorized");
    assert_eq!(bad.closed().await.0, 4401);
}

#[tokio::test]
async fn the_number_of_rooms_is_capped() {
    let server = TestServer::with(|c| c.rooms.max_rooms = 2);
    let mut p = server.player("collector").await;
    p.join("quick/global").await;
    p.join("quick/region:a").await;
    p.send(json!({"type":"join","room":"quick/region:b"})).await;
    let refused = p.recv().await;
    assert_eq!(refused["code"], "unknown_room", "{refused}");
    // Existing rooms still take members.
    let mut q = server.player("latecomer").await;
    assert_eq!(q.join("quick/region:a").await["type"], "snapshot");
}

#[tokio::test]
async fn a_member_that_asks_for_a_snapshot_gets_the_current_list_and_seq() {
    let server = TestServer::with(|c| c.rooms.tick_ms = 20);
    let mut watcher = server.player("resyncer").await;
    let first = watcher.join("quick/global").await;
    let mut p = server.player("scorer").await;
    p.play(33).await;
    let diff = watcher.recv_type("diff").await;
    watcher
        .send(json!({"type":"snapshot","room":"quick/global","id":"again"}))
        .await;
    let snap = watcher.recv_type("snapshot").await;
    assert_eq!(snap["re"], "again");
    assert_eq!(
        snap["seq"], diff["seq"],
        "the snapshot is as of the last diff"
    );
    assert_ne!(snap["seq"], first["seq"]);
    assert_eq!(snap["top"], json!([{"rank":1,"user":"scorer","score":33}]));
    assert_eq!(snap["me"], Value::Null);
}
