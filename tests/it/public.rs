//! The public read API, its one-second cache, CORS and the security headers every answer
//! carries. Runs on both engines.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn a_campaign_and_its_boards_can_be_read_by_anyone() {
    let s = TestServer::start();
    let (status, c) = s.http("GET", "/api/campaigns/quick", None).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["title"], "quick");
    assert!(c["boards"]
        .as_array()
        .unwrap()
        .contains(&json!("region:eu")));
    assert_eq!(c["open"], true);
    for (user, score) in [("a1", 10), ("a2", 20), ("a3", 30)] {
        s.player(user).await.play(score).await;
    }
    let (status, page) = s
        .http(
            "GET",
            "/api/campaigns/quick/boards/global?limit=2&offset=1",
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["total"], 3);
    assert_eq!(page["rows"][0]["user"], "a2");
    assert_eq!(page["rows"][0]["rank"], 2);
    assert_eq!(page["rows"].as_array().unwrap().len(), 2);
    let (status, near) = s
        .http("GET", "/api/campaigns/quick/boards/global/around/a1", None)
        .await;
    assert_eq!(status, 200, "{near}");
    assert_eq!(near["rows"].as_array().unwrap().len(), 3);
    for (path, code) in [
        ("/api/campaigns/nope", 404),
        ("/api/campaigns/quick/boards/weekly", 404),
        ("/api/campaigns/quick/boards/global?limit=0", 400),
        ("/api/campaigns/quick/boards/global?limit=1001", 400),
        ("/api/campaigns/quick/boards/global?colour=red", 400),
        ("/api/campaigns/quick/boards/global/around/nobody", 404),
    ] {
        let (status, body) = s.http("GET", path, None).await;
        assert_eq!(status, code, "{path}: {body}");
        assert!(body["error"]["code"].is_string(), "{path}: {body}");
    }
}

#[tokio::test]
async fn board_reads_are_cached_for_a_second() {
    let s = TestServer::start();
    s.player("b1").await.play(10).await;
    let path = "/api/campaigns/quick/boards/global";
    let (status, head, _) = s.request("GET", path, &[], None).await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("cache-control: public, max-age=1"),
        "{head}"
    );
    let read_at = std::time::Instant::now();
    s.player("b2").await.play(20).await;
    let again = s.http("GET", path, None).await.1;
    if read_at.elapsed() < std::time::Duration::from_millis(900) {
        assert_eq!(
            again["total"], 1,
            "served from the cache within the second: {again}"
        );
    }
    eventually("the cache refreshes", || async {
        s.http("GET", path, None).await.1["total"] == 2
    })
    .await;
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let s = TestServer::start();
    for path in ["/", "/health", "/api/campaigns/nope", "/admin/bans"] {
        let (_, head, _) = s.request("GET", path, &[], None).await;
        let head = head.to_ascii_lowercase();
        assert!(
            head.contains("x-content-type-options: nosniff"),
            "{path}: {head}"
        );
        assert!(
            head.contains("content-security-policy: default-src 'self'"),
            "{path}: {head}"
        );
    }
}

#[tokio::test]
async fn cors_answers_the_listed_origins_only() {
    let s = TestServer::with(|c| c.cors_allowed_origins = vec!["https://game.example".into()]);
    let path = "/api/campaigns/quick";
    let (_, head, _) = s
        .request("GET", path, &[("Origin", "https://game.example")], None)
        .await;
    assert!(
        head.to_ascii_lowercase()
            .contains("access-control-allow-origin: https://game.example"),
        "{head}"
    );
    let (_, head, _) = s
        .request("GET", path, &[("Origin", "https://evil.example")], None)
        .await;
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("access-control-allow-origin"),
        "{head}"
    );
    let (status, head, _) = s
        .request(
            "OPTIONS",
            "/admin/bans",
            &[
                ("Origin", "https://game.example"),
                ("Access-Control-Request-Method", "GET"),
            ],
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert!(head
        .to_ascii_lowercase()
        .contains("access-control-allow-headers: authorization"));
    let upgrade = |origin: String| {
        let url = s.url();
        async move {
            use tokio_tungstenite::tungstenite::client::IntoClientRequest;
            let mut req = url.into_client_request().unwrap();
            req.headers_mut().insert("Origin", origin.parse().unwrap());
            match tokio_tungstenite::connect_async(req).await {
                Ok(_) => 101,
                Err(tokio_tungstenite::tungstenite::Error::Http(res)) => res.status().as_u16(),
                Err(e) => panic!("upgrade: {e}"),
            }
        }
    };
    assert_eq!(upgrade("https://evil.example".into()).await, 403);
    assert_eq!(upgrade("https://game.example".into()).await, 101);
    let own = format!("http://{}", s.addr);
    assert_eq!(upgrade(own).await, 101, "the server's own pages");
}

/// Readers that find a board stale together wait for one store read.
#[tokio::test]
async fn concurrent_readers_of_a_stale_board_share_one_store_read() {
    let s = TestServer::with(|c| {
        // A campaign of its own: the counter's label is this test's alone.
        c.campaigns
            .insert("flight".into(), c.campaigns["quick"].clone());
    });
    s.player("una").await.play(10).await;
    let readers = (0..40).map(|_| s.http("GET", "/api/campaigns/flight/boards/global", None));
    for (status, _) in futures_util::future::join_all(readers).await {
        assert_eq!(status, 200);
    }
    let (_, text) = s.http_text("GET", "/metrics", None).await;
    let reads: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("podium_public_board_store_reads_total{campaign=\"flight\"} "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the counter is exported");
    // Forty requests are served well within the second a read stays fresh.
    assert_eq!(reads, 1.0, "store reads for 40 concurrent readers");
}
