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
        c.ws.rate_limit_window_ms = 60_000;
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
    // quarter window, at most 250 ms), the seventh is refused wherever it arrives.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    b.send(json!({"type":"ping"})).await;
    assert_eq!(b.recv().await["code"], "rate_limited");
    a.send(json!({"type":"ping"})).await;
    assert_eq!(a.recv().await["code"], "rate_limited");
}
