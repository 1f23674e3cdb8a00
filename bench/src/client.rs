//! What every scenario shares: the server's address and secret, sockets that connect and
//! authenticate, a paced ramp of them, and small readings (RSS, `/health`, percentiles).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Args, Clone)]
pub struct Common {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:8080", global = true)]
    pub addr: String,
    /// The server's JWT_SECRET (HS256): the bench mints its players' tokens.
    #[arg(long, default_value = "bench-secret-0123456789abcdef", global = true)]
    pub secret: String,
    /// PID of the server, to read its RSS from /proc.
    #[arg(long, global = true)]
    pub server_pid: Option<u32>,
    /// Local addresses to open sockets from, in turn (comma-separated, e.g. 127.0.0.2,127.0.0.3):
    /// one source address reaches one port only about 28,000 times. Empty: the system's choice.
    #[arg(long, global = true, value_delimiter = ',')]
    pub sources: Vec<std::net::IpAddr>,
}

/// A TCP connection to `addr`, from the next of `sources` if any.
async fn dial(addr: &str, sources: &[std::net::IpAddr]) -> anyhow::Result<TcpStream> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    if sources.is_empty() {
        return Ok(TcpStream::connect(addr).await?);
    }
    let source = sources[NEXT.fetch_add(1, Ordering::Relaxed) as usize % sources.len()];
    let target: std::net::SocketAddr = tokio::net::lookup_host(addr)
        .await?
        .next()
        .context("no address")?;
    let socket = if target.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // The port is chosen at connect, for this destination: chosen at bind, it may be one whose
    // tuple the server still holds in TIME_WAIT, and that SYN waits a second for its retry.
    {
        use std::os::fd::AsRawFd;
        let one: libc::c_int = 1;
        // SAFETY: a valid socket descriptor and an int option of the right size.
        let set = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if set != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
    }
    socket.bind((source, 0).into())?;
    Ok(socket.connect(target).await?)
}

/// Tags user names with this run, so a second run's players start with no best score (a
/// score below an earlier run's best would change no board and send no diff).
pub fn run_tag() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    // The process id too: several generators started together must not share player names.
    TAG.get_or_init(|| format!("{:x}{:x}", now_ms() % 0xFF_FFFF, std::process::id()))
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn token(secret: &str, user: &str) -> String {
    let claims = json!({"sub": user, "exp": now_ms() / 1000 + 3600});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

/// Reads frames until a text frame arrives; answers pings on the way (tungstenite queues
/// the pong, and only a write or flush sends it: a player that only listens would miss the
/// heartbeat).
pub async fn next_json(ws: &mut Ws) -> anyhow::Result<Value> {
    loop {
        match ws.next().await.context("socket ended")?? {
            Message::Text(t) => return Ok(serde_json::from_str(&t)?),
            Message::Close(c) => bail!("closed: {c:?}"),
            Message::Ping(_) => ws.flush().await?,
            _ => continue,
        }
    }
}

/// Connects and authenticates; answers the socket and the time it took.
pub async fn open(common: &Common, user: &str) -> anyhow::Result<(Ws, Duration)> {
    let started = Instant::now();
    // tungstenite zeroes its whole read buffer before each read: its 128 KiB default made
    // memset half of the bench's CPU. Game frames are small.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0);
    let stream = dial(&common.addr, &common.sources).await?;
    stream.set_nodelay(true)?;
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(
        format!("ws://{}/ws", common.addr),
        MaybeTlsStream::Plain(stream),
        Some(config),
    )
    .await?;
    ws.send(Message::Text(
        json!({"type":"auth","token": token(&common.secret, user)})
            .to_string()
            .into(),
    ))
    .await?;
    let welcome = next_json(&mut ws).await?;
    if welcome["type"] != "welcome" {
        bail!("auth refused: {welcome}");
    }
    Ok((ws, started.elapsed()))
}

pub fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The server's CPU time so far (user + system, `/proc/PID/stat`, in 10 ms ticks), seconds.
pub fn cpu_s(pid: Option<u32>) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

pub fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Opens `n` sockets at `rate` per second, each handed to `hold` once authenticated.
/// Answers the handshake+auth latency histogram (µs) and the error count.
pub async fn ramp<F, Fut>(
    common: &Common,
    n: usize,
    rate: u64,
    prefix: &str,
    hold: F,
) -> (Histogram<u64>, u64)
where
    F: Fn(usize, Ws) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let latency = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
    let errors = Arc::new(AtomicU64::new(0));
    let gap = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        tokio::time::sleep_until((start + gap * i as u32).into()).await;
        let (common, latency, errors, hold) = (
            common.clone(),
            latency.clone(),
            errors.clone(),
            hold.clone(),
        );
        let user = format!("{prefix}-{}-{i}", run_tag());
        tasks.push(tokio::spawn(async move {
            match tokio::time::timeout(Duration::from_secs(30), open(&common, &user)).await {
                Ok(Ok((ws, took))) => {
                    latency.lock().unwrap().record(took.as_micros() as u64).ok();
                    hold(i, ws).await;
                }
                Ok(Err(err)) => {
                    if errors.fetch_add(1, Ordering::Relaxed) < 5 {
                        eprintln!("connect error: {err}");
                    }
                }
                Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // Wait for every socket to be open (or failed). Tasks hold `latency` while they live, so if
    // every one ended without counting (a panic), the wait ends too instead of hanging.
    while Arc::strong_count(&latency) > 1
        && latency.lock().unwrap().len() + errors.load(Ordering::Relaxed) < n as u64
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(tasks);
    let h = latency.lock().unwrap().clone();
    (h, errors.load(Ordering::Relaxed))
}

/// `GET /health` over a plain socket: the JSON body.
pub async fn health(addr: &str) -> Option<Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.ok()?;
    s.write_all(b"GET /health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.ok()?;
    let raw = String::from_utf8_lossy(&raw);
    serde_json::from_str(raw.split_once("\r\n\r\n")?.1).ok()
}
