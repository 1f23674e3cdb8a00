//! What an SRE reads: HTTP answers by route and status, the process's own figures, and log
//! lines a collector can parse that never carry a token. Each test runs the real binary, so
//! its metrics and log are its own (in-process servers share one recorder and subscriber).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;

/// The binary with the memory engine on a free port, its stdout (the log) in a file.
struct Proc {
    child: std::process::Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Proc {
    async fn start(env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("podium-log-{}.jsonl", unique_tag()));
        let mut command = podium_command(port);
        command
            .env_remove("REDIS_URL")
            .env_remove("DATABASE_URL")
            .env("LOG_FORMAT", "json")
            .stdout(std::fs::File::create(&log).unwrap());
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("start podium");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        eventually("podium accepts connections", || async {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await;
        Self { child, addr, log }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let (status, _, body) = request(self.addr, "GET", path, &[], None).await;
        (status, body)
    }

    /// The log's JSON lines so far.
    fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
            .collect()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

#[tokio::test]
async fn http_answers_are_counted_by_route_pattern_and_status_and_the_process_is_measured() {
    let p = Proc::start(&[]).await;
    for board in ["global", "nowhere"] {
        p.get(&format!("/leaderboard/demo/{board}")).await;
    }
    assert_eq!(p.get("/no/such/path").await.0, 404);
    let (status, _, _) = request(p.addr, "DELETE", "/ready", &[], None).await;
    assert_eq!(status, 405);
    assert_eq!(p.get("/health").await.0, 200);
    p.get("/metrics").await;
    let (_, text) = p.get("/metrics").await;

    // Two boards, one series: the route's pattern, not the path.
    let leaderboard = r#"route="/leaderboard/{campaign}/{board}""#;
    let answered: f64 = text
        .lines()
        .filter(|l| l.starts_with("podium_http_requests_total{") && l.contains(leaderboard))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(answered, 2.0, "{text}");
    assert!(
        !text.contains("/leaderboard/demo/"),
        "a raw path became a label"
    );
    for (series, value) in [
        (
            r#"podium_http_requests_total{route="unmatched",status="404"}"#,
            1.0,
        ),
        (
            r#"podium_http_requests_total{route="/ready",status="405"}"#,
            1.0,
        ),
        (
            r#"podium_http_requests_total{route="/health",status="200"}"#,
            1.0,
        ),
        // The scrape before this one.
        (
            r#"podium_http_requests_total{route="/metrics",status="200"}"#,
            1.0,
        ),
        (
            &format!("podium_http_request_duration_seconds_count{{{leaderboard}}}"),
            2.0,
        ),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series} in {text}");
    }
    let bucket =
        format!(r#"podium_http_request_duration_seconds_bucket{{{leaderboard},le="+Inf"}}"#);
    assert_eq!(
        sample(&text, &bucket),
        Some(2.0),
        "a histogram, for p95/p99"
    );

    let fds = sample(&text, "process_open_fds").expect("process_open_fds");
    let max = sample(&text, "process_max_fds").expect("process_max_fds");
    assert!(fds >= 3.0 && fds < max, "{fds} of {max}");
    let rss = sample(&text, "process_resident_memory_bytes").expect("resident memory");
    assert!(rss > 1e6, "{rss}");
    assert!(
        sample(&text, "process_cpu_seconds_total").is_some(),
        "{text}"
    );
    let start = sample(&text, "process_start_time_seconds").expect("start time");
    assert!((start - now_secs() as f64).abs() < 120.0, "{start}");
}

/// A whole game, with a page load that carries its token in the query as the demo's links do,
/// at the debug level: every request and the socket's close have their line, and neither the
/// token, nor its signature, nor the game's session token appears anywhere in the log.
#[tokio::test]
async fn the_log_has_a_line_per_request_and_per_closed_socket_and_no_token() {
    let p = Proc::start(&[("RUST_LOG", "debug")]).await;
    let (status, body) = {
        let (status, _, body) = request(
            p.addr,
            "POST",
            "/dev/token",
            &[],
            Some(r#"{"user":"logged1"}"#),
        )
        .await;
        (status, serde_json::from_str::<Value>(&body).unwrap())
    };
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let signature = token.rsplit('.').next().unwrap().to_owned();
    assert_eq!(p.get(&format!("/?token={token}")).await.0, 200);

    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws?token={token}", p.addr))
        .await
        .expect("upgrade");
    let mut c = Client { ws };
    c.send(json!({"type":"auth","token": token})).await;
    assert_eq!(c.recv().await["type"], "welcome");
    let session = c.start_game("quick").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(c.submit(&session, 42).await["status"], "accepted");
    c.send_raw(tokio_tungstenite::tungstenite::Message::Close(None))
        .await;
    c.closed().await;

    eventually("the socket's close is logged", || async {
        p.lines().iter().any(|l| l["event"] == "socket_closed")
    })
    .await;
    let lines = p.lines();
    let page = lines
        .iter()
        .find(|l| l["event"] == "http_request" && l["route"] == "/")
        .expect("the page load's line");
    for key in [
        "timestamp",
        "level",
        "method",
        "path",
        "status_code",
        "duration_ms",
        "client",
    ] {
        assert!(!page[key].is_null(), "{key} missing in {page}");
    }
    assert_eq!(
        (page["path"].as_str(), page["status_code"].as_u64()),
        (Some("/"), Some(200))
    );
    let upgrade = lines
        .iter()
        .find(|l| l["event"] == "http_request" && l["route"] == "/ws")
        .expect("the upgrade's line");
    assert_eq!(upgrade["status_code"], 101, "{upgrade}");
    let socket = lines
        .iter()
        .find(|l| l["event"] == "socket_closed")
        .unwrap();
    assert_eq!(socket["user"], "logged1", "{socket}");
    assert_eq!(socket["close_code"], 1000, "{socket}");
    // auth, start_game, submit and the close; welcome, game_started, result at least.
    assert!(socket["frames_in"].as_u64() >= Some(4), "{socket}");
    assert!(socket["frames_out"].as_u64() >= Some(3), "{socket}");
    assert!(socket["duration_ms"].is_u64(), "{socket}");

    let log = std::fs::read_to_string(&p.log).unwrap();
    for secret in [token.as_str(), &signature, &session, SECRET.as_str()] {
        assert!(!log.contains(secret), "the log holds {secret}");
    }
}
