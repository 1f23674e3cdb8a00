//! `TestServer` starts podium on port 0 in its own actix system; `Client` speaks the protocol.

use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
pub use podium::Config;
use podium_actors::domain::campaign::CampaignRules;
use podium_actors::domain::session::random_secret;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The JWT secret of every test server, drawn per run: a secret written in the repository is
/// refused outside dev mode (`src/secrets.rs`), and the redis engine is not dev mode.
pub static SECRET: LazyLock<String> = LazyLock::new(random_secret);
/// The admin key every test server takes (named `test` in the audit log).
pub static ADMIN_KEY: LazyLock<String> = LazyLock::new(random_secret);
/// The session secret of every test server (instances of one test share it).
pub static SESSION_SECRET: LazyLock<String> = LazyLock::new(random_secret);
/// How long a test waits for a frame before failing.
pub const WAIT: Duration = Duration::from_secs(5);

pub struct TestServer {
    pub addr: SocketAddr,
    /// The config it runs with (its key prefix and schema, with the redis engine).
    pub config: Config,
    handle: actix_web::dev::ServerHandle,
    /// Sends the shutdown signal `podium::serve` waits for (see [`TestServer::shut_down`]).
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn start() -> Self {
        Self::with(|_| {})
    }

    /// A server with the test defaults, adjusted by `adjust`. The test defaults add a campaign
    /// `quick` whose games may end after 1 ms, so tests need not sleep through `demo`'s 2 s.
    pub fn with(adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config {
            listen: "127.0.0.1:0".into(),
            workers: 1,
            ..Config::default()
        };
        config.jwt.secret = Some(SECRET.clone());
        config.game.session_secret = Some(SESSION_SECRET.clone());
        config.campaigns.insert(
            "quick".into(),
            CampaignRules {
                min_duration_ms: 1,
                max_duration_ms: 60_000,
                max_score: 1_000_000,
                max_score_per_second: 1_000_000_000,
                starts_at_ms: None,
                ends_at_ms: None,
                // The region boards the tests use.
                regions: ["eu", "us", "a", "b", "c", "d", "e", "f"]
                    .map(String::from)
                    .into_iter()
                    .chain((0..12).map(|i| format!("r{i}")))
                    .collect(),
                ..Default::default()
            },
        );
        // Warnings go to the test's captured output: shown when a test fails.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(std::env::var("RUST_LOG").unwrap_or("warn".into()))
            .try_init();
        config.dev_mode = Some(true);
        config.admin.api_keys = vec![format!("test:{}", *ADMIN_KEY)];
        use_test_engine(&mut config);
        adjust(&mut config);
        let (tx, rx) = std::sync::mpsc::channel();
        let (shutdown, signal) = tokio::sync::oneshot::channel::<()>();
        let kept = config.clone();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let running = podium::start(config).await.expect("server starts");
                tx.send((running.addr, running.server.handle())).unwrap();
                // A dropped sender is no signal: such servers stop through their handle.
                let signal = async move {
                    if signal.await.is_err() {
                        std::future::pending::<()>().await
                    }
                };
                let _ = podium::serve(running, signal).await;
            })
        });
        let (addr, handle) = rx.recv_timeout(WAIT).expect("server reports its address");
        Self {
            addr,
            config: kept,
            handle,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// The shutdown a SIGTERM starts (close sockets with 1001 after answering submits in
    /// flight, stop, drain the batcher); answers once the server has stopped.
    pub async fn shut_down(mut self) {
        if let Some(signal) = self.shutdown.take() {
            let _ = signal.send(());
        }
        let thread = self.thread.take().expect("a server thread");
        tokio::task::spawn_blocking(move || thread.join().expect("the server thread ends"))
            .await
            .unwrap();
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// A player token signed with the test secret, valid for ten minutes.
    pub fn token(&self, user: &str) -> String {
        token_with(
            user,
            now_secs() + 600,
            jsonwebtoken::Algorithm::HS256,
            SECRET.as_bytes(),
        )
    }

    /// A socket authenticated as `user` with a `region` claim, welcome consumed.
    pub async fn player_in(&self, user: &str, region: &str) -> Client {
        let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
        let claims = json!({"sub": user, "exp": now_secs() + 600, "region": region});
        let token = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap();
        let mut c = self.connect().await;
        c.send(json!({"type":"auth","token": token})).await;
        let welcome = c.recv().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        c
    }

    /// A socket that has not authenticated.
    pub async fn connect(&self) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(self.url())
            .await
            .expect("upgrade");
        Client { ws }
    }

    /// A socket authenticated as `user`, welcome consumed.
    pub async fn player(&self, user: &str) -> Client {
        let mut c = self.connect().await;
        c.send(json!({"type":"auth","token": self.token(user)}))
            .await;
        let welcome = c.recv().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        c
    }

    /// One HTTP/1.1 request; answers the status and the JSON body (Null when not JSON).
    pub async fn http(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let (status, text) = self.http_text(method, path, body).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn http_text(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let (status, _, body) = self.request(method, path, &[], body).await;
        (status, body)
    }

    /// An admin request with the test admin key; answers the status and the JSON body.
    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let auth = format!("Bearer {}", *ADMIN_KEY);
        self.as_admin(&auth, method, path, body).await
    }

    /// An admin request with `authorization` as the header's value.
    pub async fn as_admin(
        &self,
        authorization: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        let (status, _, text) = self
            .request(
                method,
                path,
                &[("Authorization", authorization)],
                body.as_deref(),
            )
            .await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// One HTTP/1.1 request with extra headers; answers the status, the head and the body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (u16, String, String) {
        request(self.addr, method, path, headers, body).await
    }
}

/// One HTTP/1.1 request to `addr` with extra headers; answers the status, the head and the body.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let body = body.unwrap_or("");
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let raw = String::from_utf8_lossy(&raw);
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_owned(), b.to_owned()))
        .unwrap_or_default();
    (status, head, body)
}

/// The engine under test: `PODIUM_TEST_ENGINE=redis` runs the suite against the real Redis
/// and PostgreSQL of this machine (127.0.0.1:6379 and :5432, database `test`), each server in
/// its own key prefix and schema so tests run in parallel; `PODIUM_TEST_ENGINE=cluster` the
/// same against the Redis Cluster of `scripts/redis-cluster` (seed nodes in
/// `TEST_REDIS_CLUSTER_NODES`, default 127.0.0.1:7001..7003); otherwise the memory engine.
pub fn use_test_engine(config: &mut Config) {
    if matches!(
        std::env::var("PODIUM_TEST_ENGINE").as_deref(),
        Ok("redis" | "cluster")
    ) {
        use_redis_engine(config);
    }
}

/// The redis engine on this machine's Redis (or its cluster, when the suite runs against it)
/// and PostgreSQL, in a fresh key prefix and schema.
pub fn use_redis_engine(config: &mut Config) {
    let tag = unique_tag();
    config.engine = Some(podium_actors::config::EngineKind::Redis);
    if std::env::var("PODIUM_TEST_ENGINE").as_deref() == Ok("cluster") {
        let nodes = std::env::var("TEST_REDIS_CLUSTER_NODES").unwrap_or(
            "redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003".into(),
        );
        config.redis.url = None;
        config.redis.cluster_nodes = nodes.split(',').map(str::to_owned).collect();
    } else {
        config.redis.url =
            Some(std::env::var("TEST_REDIS_URL").unwrap_or("redis://127.0.0.1:6379".into()));
    }
    config.redis.prefix = format!("test:{tag}:");
    config.postgres.url = Some(
        std::env::var("TEST_DATABASE_URL")
            .unwrap_or("postgres://postgres@127.0.0.1:5432/test".into()),
    );
    config.postgres.schema = format!("t_{tag}");
}

/// The value of one sample line of the exposition (`name{labels} value`), if present.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// How a process reaches the Redis of `config`: the variable and its value.
pub fn redis_env(config: &Config) -> (&'static str, String) {
    match &config.redis.url {
        Some(url) => ("REDIS_URL", url.clone()),
        None => ("REDIS_CLUSTER_NODES", config.redis.cluster_nodes.join(",")),
    }
}

/// Points `config` at one Redis node (a fault test's own), whatever the suite runs against.
pub fn use_redis_at(config: &mut Config, url: String) {
    config.redis.url = Some(url);
    config.redis.cluster_nodes.clear();
}

/// Unique per process and call: a time in µs plus a counter.
pub fn unique_tag() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros();
    format!("{micros:x}_{n}")
}

impl TestServer {
    /// A server on the redis engine whatever `PODIUM_TEST_ENGINE` says: for tests of the
    /// production engine itself. Batches are flushed every 20 ms to keep tests short.
    pub fn redis(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::with(|c| {
            use_redis_engine(c);
            c.persist.flush_interval_ms = 20;
            adjust(c);
        })
    }

    /// Rows of `table` in this server's schema.
    pub async fn pg_count(&self, table: &str) -> i64 {
        pg_count(&self.config, table).await
    }
}

pub async fn pg_count(config: &Config, table: &str) -> i64 {
    // The engine's own pool: same URL, same schema on the search path.
    let pool = podium_actors::store::postgres::pool(&config.postgres).expect("a DATABASE_URL");
    let client = pool.get().await.expect("connect to PostgreSQL");
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .expect("count")
        .get(0)
}

/// The (text, int8) rows `sql` selects in this config's schema.
pub async fn pg_pairs(config: &Config, sql: &str) -> Vec<(String, i64)> {
    let pool = podium_actors::store::postgres::pool(&config.postgres).expect("a DATABASE_URL");
    let client = pool.get().await.expect("connect to PostgreSQL");
    client
        .query(sql, &[])
        .await
        .expect("query")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Results-stream entries not yet written to PostgreSQL and acknowledged.
pub async fn stream_backlog(config: &Config) -> u64 {
    let store = podium_actors::store::durable::Durable::connect(config).expect("store clients");
    store.redis.backlog(0).await.expect("read the stream").0
}

/// Polls `check` every 20 ms until it holds or `WAIT` passes.
pub async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Sends the stop command now; the server's thread ends when it completes.
        drop(self.handle.stop(false));
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn token_with(user: &str, exp: u64, alg: jsonwebtoken::Algorithm, key: &[u8]) -> String {
    let key = match alg {
        jsonwebtoken::Algorithm::ES256 => jsonwebtoken::EncodingKey::from_ec_pem(key).unwrap(),
        jsonwebtoken::Algorithm::RS256 => jsonwebtoken::EncodingKey::from_rsa_pem(key).unwrap(),
        _ => jsonwebtoken::EncodingKey::from_secret(key),
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        &json!({"sub": user, "exp": exp}),
        &key,
    )
    .unwrap()
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .expect("send");
    }

    pub async fn send_raw(&mut self, m: Message) {
        self.ws.send(m).await.expect("send");
    }

    /// The next text frame as JSON; fails on close or after [`WAIT`].
    pub async fn recv(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame within the wait")
                .expect("socket open")
                .expect("frame");
            match frame {
                Message::Text(t) => return serde_json::from_str(&t).expect("JSON"),
                Message::Close(c) => panic!("closed unexpectedly: {c:?}"),
                _ => continue,
            }
        }
    }

    /// The next frame of type `ty`, skipping others (diffs, pongs).
    pub async fn recv_type(&mut self, ty: &str) -> Value {
        loop {
            let v = self.recv().await;
            if v["type"] == ty {
                return v;
            }
        }
    }

    /// Reads until the server closes; answers the close code and reason.
    pub async fn closed(&mut self) -> (u16, String) {
        loop {
            let next = tokio::time::timeout(WAIT * 2, self.ws.next())
                .await
                .expect("close within the wait");
            match next {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (u16::from(frame.code), frame.reason.to_string())
                }
                Some(Ok(Message::Close(None))) => {
                    return (u16::from(CloseCode::Status), String::new())
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("socket error before a close frame: {e}"),
                None => panic!("socket ended without a close frame"),
            }
        }
    }

    pub async fn join(&mut self, room: &str) -> Value {
        self.send(json!({"type":"join","room": room})).await;
        self.recv_type("snapshot").await
    }

    /// Starts a game in `campaign` and answers its session token.
    pub async fn start_game(&mut self, campaign: &str) -> String {
        self.send(json!({"type":"start_game","campaign": campaign}))
            .await;
        let started = self.recv_type("game_started").await;
        // A game is at least a couple of milliseconds long: a submit in the same millisecond
        // as the start would be a zero-length game (`too_fast` or `score_rate_too_high`).
        tokio::time::sleep(Duration::from_millis(2)).await;
        started["session"]
            .as_str()
            .expect("session token")
            .to_owned()
    }

    pub async fn submit(&mut self, session: &str, score: u64) -> Value {
        self.send(json!({"type":"submit","session": session,"score": score}))
            .await;
        self.recv_type("result").await
    }

    /// A whole game in the `quick` campaign: start, wait past its 1 ms minimum, submit.
    pub async fn play(&mut self, score: u64) -> Value {
        let session = self.start_game("quick").await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.submit(&session, score).await
    }
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real `podium` binary on 127.0.0.1:`port` with the `quick` campaign (games may end after
/// 1 ms), its counted twin `quick-counted` (a tap a point), and the test JWT secret, its
/// output discarded.
pub fn podium_command(port: u16) -> std::process::Command {
    let file = std::env::temp_dir().join(format!("podium-proc-{}.toml", unique_tag()));
    let rules = "min_duration_ms = 1\nmax_duration_ms = 60000\nmax_score = 1000000\nmax_score_per_second = 1000000000\n";
    let counting = "[campaigns.quick-counted.counting]\nmax_events_per_second = 25\n[campaigns.quick-counted.counting.events.tap]\npoints = 1\n";
    std::fs::write(
        &file,
        format!("[campaigns.quick]\n{rules}[campaigns.quick-counted]\n{rules}{counting}"),
    )
    .unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_podium"));
    command
        .arg("--config")
        .arg(&file)
        .env("PODIUM_LISTEN", format!("127.0.0.1:{port}"))
        .env("JWT_SECRET", &*SECRET)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    command
}

/// The real `podium` binary on `config`'s Redis, PostgreSQL, prefix and schema, so it can be
/// killed with SIGKILL and started again on the same port.
pub struct ProcessServer {
    pub child: std::process::Child,
    pub addr: SocketAddr,
}

impl ProcessServer {
    /// Starts it on `port` (a free one when `None`) with the `quick` campaign, the test
    /// secrets, one worker and `env` on top; answers once it accepts connections.
    pub async fn spawn(config: &Config, port: Option<u16>, env: &[(&str, &str)]) -> Self {
        let port = port.unwrap_or_else(free_port);
        let mut command = podium_command(port);
        let (redis_key, redis_at) = redis_env(config);
        command
            .env(redis_key, redis_at)
            .env("REDIS_PREFIX", &config.redis.prefix)
            .env("DATABASE_URL", config.postgres.url.as_deref().unwrap())
            .env("DATABASE_SCHEMA", &config.postgres.schema)
            .env("SESSION_SECRET", &*SESSION_SECRET)
            .env("PERSIST_CONSUMER", "process-test")
            .env("PODIUM_WORKERS", "1");
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("start podium");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = tokio::time::Instant::now() + WAIT * 6;
        while TcpStream::connect(addr).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "podium did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { child, addr }
    }

    /// SIGKILL: a crash, not a shutdown.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ProcessServer {
    fn drop(&mut self) {
        self.kill();
    }
}
