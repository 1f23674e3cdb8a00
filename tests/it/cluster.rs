//! Several engine instances sharing Redis: per-user caps and message windows hold across them.

use serde_json::json;

use crate::common::*;

/// Two servers on the redis engine sharing one key prefix and schema.
fn pair(adjust: impl Fn(&mut podium::Config)) -> (TestServer, TestServer) {
    let one = TestServer::redis(&adjust);
    let two = TestServer::with(|c| *c = one.config.clone());
    (one, two)
}

#[tokio::test]
async fn the_per_user_cap_counts_sockets_on_every_instance() {
    let (one, two) = pair(|c| c.ws.max_connections_per_user = 2);
    let _a = one.player("roamer").await;
    let _b = two.player("roamer").await;
    let mut third = one.connect().await;
    third
        .send(json!({"type":"auth","token": one.token("roamer")}))
        .await;
    assert_eq!(third.recv().await["code"], "too_many_connections_for_user");
    assert_eq!(third.closed().await.0, 4429);
    // A place freed on one instance can be taken on the other.
    drop(_b);
    eventually("the freed place is taken on the other instance", || async {
        let mut c = one.connect().await;
        c.send(json!({"type":"auth","token": one.token("roamer")}))
            .await;
        c.recv().await["type"] == "welcome"
    })
    .await;
}

#[tokio::test]
async fn the_message_window_is_shared_across_instances() {
    let (one, two) = pair(|c| {
        c.ws.rate_limit_max_messages = 6;
        // Windows are fixed (now / window): an hour makes a rollover during the test, which
        // would reset the counts, all but impossible (a minute made it about 2 %).
        c.ws.rate_limit_window_ms = 3_600_000;
        c.ws.rate_limit_max_strikes = 100;
    });
    let mut a = one.player("chatty").await;
    let mut b = two.player("chatty").await;
    for _ in 0..3 {
        a.send(json!({"type":"ping"})).await;
        assert_eq!(a.recv().await["type"], "pong");
        b.send(json!({"type":"ping"})).await;
        assert_eq!(b.recv().await["type"], "pong");
    }
    // Six messages across both instances: once the instances have synced their counts (every
    // quarter window, at most 250 ms), the seventh is refused wherever it arrives. Nothing
    // outside shows a sync without spending a message, so the test waits out four of them.
    tokio::time::sleep(std::time::Duration::from_millis(1_000)).await;
    b.send(json!({"type":"ping"})).await;
    assert_eq!(b.recv().await["code"], "rate_limited");
    a.send(json!({"type":"ping"})).await;
    assert_eq!(a.recv().await["code"], "rate_limited");
}

/// Two instances with the admin API: operator actions on one reach the players of the other.
#[tokio::test]
async fn a_ban_kick_and_announcement_on_one_instance_reach_the_other() {
    let (one, two) = pair(|_| {});
    let mut listener = two.player("kim").await;
    listener.join("quick/global").await;
    let (status, _) = one
        .admin(
            "POST",
            "/admin/announce",
            Some(json!({"text": "hello both"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(listener.recv_type("announce").await["text"], "hello both");
    let started = std::time::Instant::now();
    let (status, _) = one
        .admin(
            "POST",
            "/admin/users/kim/ban",
            Some(json!({"reason": "cheat"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(listener.closed().await, (4403, "banned".into()));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "closed within a second on the other instance: {:?}",
        started.elapsed()
    );
    let mut again = two.connect().await;
    again
        .send(json!({"type":"auth","token": two.token("kim")}))
        .await;
    assert_eq!(again.recv().await["code"], "banned");
    let mut roamer = two.player("lou").await;
    one.admin(
        "POST",
        "/admin/users/lou/kick",
        Some(json!({"reason": "r"})),
    )
    .await;
    assert_eq!(roamer.closed().await.0, 4000);
}

#[tokio::test]
async fn a_rule_change_on_one_instance_judges_games_started_on_the_other() {
    let (one, two) = pair(|_| {});
    let body = json!({"name": "relay", "rules": {"min_duration_ms": 1, "max_duration_ms": 60000, "max_score": 1000, "max_score_per_second": 1000000}});
    let (status, _) = one.admin("POST", "/admin/campaigns", Some(body)).await;
    assert_eq!(status, 201);
    let mut p = two.player("max").await;
    let (status, _) = one
        .admin(
            "PATCH",
            "/admin/campaigns/relay",
            Some(json!({"rules": {"max_score": 10}})),
        )
        .await;
    assert_eq!(status, 200);
    // Within a second the other instance starts games under the new rules.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let session = p.start_game("relay").await;
        let result = p.submit(&session, 50).await;
        if result["reason"] == "score_too_high" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a game started on the other instance a second after the change was judged by the old rules: {result}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (_, listed) = two.admin("GET", "/admin/instances", None).await;
    let addresses: Vec<&str> = listed["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["address"].as_str().unwrap())
        .collect();
    assert!(
        addresses.contains(&one.addr.to_string().as_str()),
        "{listed}"
    );
    assert!(
        addresses.contains(&two.addr.to_string().as_str()),
        "{listed}"
    );
}

/// A player's page on one instance lists their sockets on both.
#[tokio::test]
async fn a_players_page_lists_their_sockets_on_every_instance() {
    let (one, two) = pair(|_| {});
    let _here = one.player("wanderer").await;
    let there = two.player("wanderer").await;
    let (_, listed) = one.admin("GET", "/admin/instances", None).await;
    let id_of = |addr: String| {
        listed["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["address"] == addr.as_str())
            .map(|i| i["id"].clone())
            .unwrap()
    };
    let (a, b) = (id_of(one.addr.to_string()), id_of(two.addr.to_string()));
    let instances = |page: &serde_json::Value| -> Vec<serde_json::Value> {
        page["sockets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["instance"].clone())
            .collect()
    };
    let (status, page) = one.admin("GET", "/admin/users/wanderer", None).await;
    assert_eq!(status, 200, "{page}");
    let mut seen = instances(&page);
    seen.sort_by_key(|v| v.to_string());
    let mut want = vec![a.clone(), b];
    want.sort_by_key(|v| v.to_string());
    assert_eq!(seen, want, "{page}");
    drop(there);
    eventually(
        "the closed socket leaves the other instance's list",
        || async {
            let (_, page) = one.admin("GET", "/admin/users/wanderer", None).await;
            instances(&page) == vec![a.clone()]
        },
    )
    .await;
}

/// How many connections listen to `campaign`'s bus channel in `config`'s Redis.
async fn listeners(config: &podium::Config, campaign: &str) -> i64 {
    let store = podium_actors::store::durable::Durable::connect(config).expect("store clients");
    let channel = store.redis.campaign_channel(campaign);
    store
        .redis
        .listeners(&channel)
        .await
        .expect("PUBSUB NUMSUB")
}

/// A campaign's board resets and announcements reach the instance that has its room, and
/// only an instance with a room of the campaign listens to its channel.
#[tokio::test]
async fn a_campaigns_room_events_reach_only_the_instances_that_serve_it() {
    let (one, two) = pair(|c| c.rooms.idle_grace_ms = 100);
    assert_eq!(listeners(&one.config, "quick").await, 0);
    let mut member = two.player("nell").await;
    member.join("quick/global").await;
    eventually("the serving instance listens to the campaign", || async {
        listeners(&one.config, "quick").await == 1
    })
    .await;
    let (status, _) = one
        .admin(
            "POST",
            "/admin/announce",
            Some(json!({"text": "quick players only", "campaign": "quick"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        member.recv_type("announce").await["text"],
        "quick players only"
    );
    let (status, _) = one
        .admin("POST", "/admin/campaigns/quick/boards/global/reset", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(member.recv_type("snapshot").await["top"], json!([]));
    drop(member);
    eventually("an instance with no room of it stops listening", || async {
        listeners(&one.config, "quick").await == 0
    })
    .await;
}
