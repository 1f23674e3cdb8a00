//! HTTP routes: health, readiness, metrics, dev tokens, errors as JSON.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn health_reports_status_metrics_and_issues() {
    let server = TestServer::start();
    let _a = server.player("h1").await;
    let (status, body) = server.http("GET", "/health", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "healthy");
    assert!(body["timestamp"].as_str().unwrap().contains('T'));
    let m = &body["metrics"];
    assert_eq!(m["totalConnections"], 1);
    assert_eq!(m["totalUsers"], 1);
    for key in [
        "messagesPerMinute",
        "averageResponseTime",
        "errorRate",
        "uptime",
    ] {
        assert!(m[key].is_number(), "{key}");
    }
    assert_eq!(body["issues"], json!([]));
}

#[tokio::test]
async fn health_warns_near_capacity_and_on_errors() {
    let server = TestServer::with(|c| {
        c.ws.max_connections = 2;
        c.health.connections_warning_ratio = 0.5;
        c.health.connections_critical_ratio = 1.0;
    });
    let mut a = server.player("h2").await;
    let (status, body) = server.http("GET", "/health", None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("warning")),
        "{body}"
    );
    assert_eq!(body["issues"][0]["check"], "connections");
    // What a client gets wrong is not the service's health: no error_rate below.
    a.send(json!({"type":"nope"})).await;
    a.recv().await;
    let _b = server.player("h3").await;
    let (status, body) = server.http("GET", "/health", None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (503, Some("critical")),
        "{body}"
    );
    let checks: Vec<_> = body["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["check"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(checks, vec!["connections".to_owned()], "{body}");
}

#[tokio::test]
async fn ready_and_metrics_answer() {
    let server = TestServer::start();
    assert_eq!(
        server.http("GET", "/ready", None).await,
        (200, json!({"ready": true}))
    );
    let mut p = server.player("m1").await;
    p.send(json!({"type":"ping"})).await;
    p.recv().await;
    let (status, text) = server.http_text("GET", "/metrics", None).await;
    assert_eq!(status, 200);
    for name in [
        "podium_ws_connections",
        "podium_ws_connections_opened_total",
        "podium_auth_total",
        "podium_ws_messages_in_total",
        "podium_ws_messages_out_total",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
}

#[tokio::test]
async fn dev_tokens_work_in_dev_mode_only_and_refuse_bad_bodies() {
    let server = TestServer::start();
    let (status, body) = server
        .http("POST", "/dev/token", Some(r#"{"user":"dev1"}"#))
        .await;
    assert_eq!(status, 200);
    let mut c = server.connect().await;
    c.send(json!({"type":"auth","token": body["token"]})).await;
    assert_eq!(c.recv().await["user"], "dev1");
    assert_eq!(
        server.http("POST", "/dev/token", Some("{")).await.1["error"]["code"],
        "bad_message"
    );
    assert_eq!(
        server
            .http("POST", "/dev/token", Some(r#"{"user":""}"#))
            .await
            .0,
        400
    );

    let prod = TestServer::with(|c| c.dev_mode = Some(false));
    let (status, body) = prod
        .http("POST", "/dev/token", Some(r#"{"user":"dev1"}"#))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}

#[tokio::test]
async fn dev_tokens_are_rate_limited_per_address() {
    let server = TestServer::start();
    let mut last = 0;
    for _ in 0..40 {
        last = server
            .http("POST", "/dev/token", Some(r#"{"user":"x"}"#))
            .await
            .0;
    }
    assert_eq!(last, 429);
}

#[tokio::test]
async fn unknown_routes_and_plain_requests_to_ws_get_json_errors() {
    let server = TestServer::start();
    assert_eq!(
        server.http("GET", "/nope", None).await,
        (
            404,
            json!({"error":{"code":"not_found","message":"not found"}})
        )
    );
    let (status, body) = server.http("GET", "/ws", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_message"))
    );
}

#[tokio::test]
async fn shutdown_refuses_new_players_and_closes_sockets_with_1001() {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let mut config = podium::Config {
        listen: "127.0.0.1:0".into(),
        workers: 1,
        jwt: podium_actors::config::JwtConfig {
            secret: Some(SECRET.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    config.game.session_secret = Some(SESSION_SECRET.clone());
    use_test_engine(&mut config);
    let thread = std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let running = podium::start(config).await.unwrap();
            addr_tx.send(running.addr).unwrap();
            podium::serve(running, async move {
                let _ = stop_rx.await;
            })
            .await
        })
    });
    let addr = addr_rx.recv_timeout(WAIT).unwrap();
    let url = format!("ws://{addr}/ws");
    let (ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let mut c = Client { ws };
    let token = token_with(
        "sid",
        now_secs() + 60,
        jsonwebtoken::Algorithm::HS256,
        SECRET.as_bytes(),
    );
    c.send(json!({"type":"auth","token": token})).await;
    c.recv().await;
    stop_tx.send(()).unwrap();
    assert_eq!(c.closed().await, (1001, "shutdown".into()));
    thread.join().unwrap().unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is gone"
    );
}
