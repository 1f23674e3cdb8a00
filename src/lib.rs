//! The `podium` server: configuration in, a running HTTP + WebSocket server out. `main.rs`
//! and the integration tests both start it through [`start`] / [`run`].

pub mod access;
pub mod admin;
pub mod conns;
mod fnv;
pub mod observe;
pub mod openapi;
pub mod policy;
pub mod public;
pub mod routes;
pub mod secrets;
pub mod views;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App};
use anyhow::Context as _;
pub use podium_actors::config::Config;
use podium_actors::engine::Engine;

/// Longest a shutdown waits for the sockets to close: each answers its submits in flight first
/// (for at most 2 s, see the Connection), then writes its close frame.
const SOCKETS_GRACE: Duration = Duration::from_secs(5);
/// Time sockets get to receive their 1001 close frame before the server stops.
const CLOSE_GRACE: Duration = Duration::from_millis(300);

/// A started server.
pub struct Running {
    /// Where it listens (the real port when the config asked for port 0).
    pub addr: SocketAddr,
    pub engine: Arc<Engine>,
    pub server: actix_web::dev::Server,
}

/// Builds the engine and binds the server. Must be called inside an actix system; the
/// server runs once `server` is awaited.
pub async fn start(mut config: Config) -> anyhow::Result<Running> {
    secrets::check(&config)?;
    let limit = raise_descriptor_limit();
    config.fit_descriptors(limit)?;
    tracing::info!(
        descriptors = limit,
        max_connections = config.ws.max_connections,
        "socket cap"
    );
    let prometheus = observe::prometheus();
    podium_actors::telemetry::init();
    let workers = config.worker_threads();
    let (listen, reuse_port) = (config.listen.clone(), config.reuse_port);
    let send_buffer = config.ws.socket_send_buffer_bytes;
    // Behind a trusted proxy every connection comes from the proxy: no cap per address then.
    let per_ip_cap = (!config.trust_proxy && config.max_connections_per_ip > 0)
        .then_some(config.max_connections_per_ip);
    let per_ip = conns::PerIp::default();
    let admin = web::Data::new(admin_auth(&config)?);
    let origins = web::Data::new(policy::Origins(Arc::new(
        config.cors_allowed_origins.clone(),
    )));
    let reads = web::Data::new(public::ReadCache::default());
    let engine = Engine::start(config).await?;
    let data = web::Data::new(engine.clone());
    let gateway = web::Data::new(engine.gateway.clone());
    let listener = podium_actors::connection::server::listen(&listen, reuse_port)
        .with_context(|| format!("PODIUM_LISTEN: cannot bind {listen}"))?;
    let addr = listener.local_addr()?;
    let app = move || {
        App::new()
            .wrap(actix_web::middleware::from_fn(conns::refuse_over_cap))
            .wrap(actix_web::middleware::ErrorHandlers::new().default_handler(routes::json_errors))
            // Outside the routes, so every answer carries the security headers, errors included.
            .wrap(actix_web::middleware::from_fn(policy::apply))
            // Outermost: every answer is counted and logged, refusals included.
            .wrap(actix_web::middleware::from_fn(access::record))
            .app_data(data.clone())
            .app_data(gateway.clone())
            .app_data(admin.clone())
            .app_data(origins.clone())
            .app_data(reads.clone())
            .app_data(web::Data::new(prometheus.clone()))
            .configure(routes::configure)
    };
    let on_connect = move |tcp: &actix_web::rt::net::TcpStream,
                           data: &mut actix_web::dev::Extensions| {
        if let (Some(cap), Ok(peer)) = (per_ip_cap, tcp.peer_addr()) {
            let (place, over) = per_ip.admit(peer.ip(), cap);
            // A WebSocket keeps its place for as long as it lives.
            data.insert(podium_actors::connection::Hold(std::rc::Rc::new(place)));
            if over {
                data.insert(conns::OverCap);
            }
        }
        if send_buffer > 0 {
            if let Err(err) = socket2::SockRef::from(tcp).set_send_buffer_size(send_buffer) {
                tracing::warn!(%err, "WS_SOCKET_SEND_BUFFER: could not set SO_SNDBUF");
            }
        }
    };
    let server = podium_actors::connection::server::serve(listener, workers, app, on_connect)?;
    engine
        .bus
        .do_send(podium_actors::cluster_bus::Listening(addr.to_string()));
    Ok(Running {
        addr,
        engine,
        server,
    })
}

/// Who may use `/admin/*`: the configured keys, or in dev mode with none configured, a random
/// key printed once, so a newcomer can try the API: on the terminal (stderr), never in the
/// log on stdout, which a collector ships and must not carry a working key.
fn admin_auth(config: &Config) -> anyhow::Result<admin::AdminAuth> {
    let mut keys = config.admin.keys()?;
    if keys.is_empty() && config.dev_mode() {
        let secret = podium_actors::domain::session::random_secret();
        eprintln!(
            "dev mode: admin key for /admin/* (printed once): Authorization: Bearer {secret}"
        );
        keys.push(podium_actors::config::AdminKey {
            name: "dev".into(),
            secret,
        });
    }
    Ok(admin::AdminAuth::new(
        &keys,
        &config.admin.role_claim,
        config.admin.auth_failures_per_minute,
        config.trust_proxy,
    ))
}

/// Raises this process's soft descriptor limit to its hard one (sockets are descriptors) and
/// answers the limit in force.
fn raise_descriptor_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

/// Starts the server and runs it until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + 'static,
) -> anyhow::Result<()> {
    let running = start(config).await?;
    tracing::info!(addr = %running.addr, "podium listening");
    // For the person at the terminal; stdout carries only the log.
    eprintln!(
        "podium listening on http://{0} (WebSocket: ws://{0}/ws)",
        running.addr
    );
    serve(running, shutdown).await
}

/// Runs a started server until `shutdown` resolves, then stops accepting, closes every socket
/// with 1001 (answering submits in flight first), stops the server and lets the batcher write
/// what it holds.
pub async fn serve(
    running: Running,
    shutdown: impl Future<Output = ()> + 'static,
) -> anyhow::Result<()> {
    let Running { engine, server, .. } = running;
    let handle = server.handle();
    let stopping = engine.clone();
    actix_rt::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: closing sockets");
        let closed = stopping.close_sockets().await;
        tracing::info!(closed, "sockets told to close");
        if actix_rt::time::timeout(SOCKETS_GRACE, stopping.sockets_closed())
            .await
            .is_err()
        {
            tracing::warn!("sockets still open after the shutdown grace");
        }
        actix_rt::time::sleep(CLOSE_GRACE).await;
        handle.stop(true).await;
    });
    let served = server.await.context("server failed");
    engine.drain().await;
    tracing::info!("stopped");
    served
}
