//! The HTTP server: an actix-web App on actix-http, where a WebSocket upgrade ends with the
//! Connection owning its TCP socket (see [`socket`](super::socket)).
//!
//! actix-http hands every request with `Upgrade: websocket` to [`take_over`] together with
//! the socket. The request still goes through the App (its middleware, routes and error
//! answers, so `/ws` is refused or accepted exactly like any route); when the `/ws` route
//! accepted it, its answer carries an [`Accepted`] and the socket goes to a new Connection,
//! else the answer is written and the socket closed.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use actix_codec::Framed;
use actix_http::body::{BodySize, MessageBody};
use actix_http::h1;
use actix_http::{ConnectionType, Extensions, HttpMessage, HttpService, Request, Response};
use actix_service::{
    fn_factory, fn_service, map_config, IntoServiceFactory, Service, ServiceFactory,
    ServiceFactoryExt,
};
use actix_web::dev::{AppConfig, Server};
use futures_util::SinkExt;
use tokio::net::TcpStream;

use super::{Accepted, Upgrading};

/// Requests waiting to be accepted, per listening socket.
const BACKLOG: i32 = 4_096;

/// Binds `addr` with the server's backlog; `reuse_port` lets other processes bind it too
/// (`SO_REUSEPORT`: the kernel spreads new connections over every listener).
pub fn listen(addr: &str, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    let addr: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(addr)?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address"))?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Serves the App that `app` builds (once per worker thread) on `listener`.
pub fn serve<F, I, S, B, C>(
    listener: std::net::TcpListener,
    workers: usize,
    app: F,
    on_connect: C,
) -> io::Result<Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    S::Service: 'static,
    <S::Service as Service<Request>>::Future: 'static,
    B: MessageBody + 'static,
    C: Fn(&TcpStream, &mut Extensions) + Send + Clone + 'static,
{
    let addr = listener.local_addr()?;
    Ok(Server::build()
        .workers(workers)
        .backlog(BACKLOG as u32)
        .shutdown_timeout(10)
        .disable_signals()
        .listen("podium", listener, move || {
            let upgrades = {
                let app = app.clone();
                fn_factory(move || {
                    let factory = map_config(app().into_factory(), |_| AppConfig::default());
                    async move {
                        let app = factory.new_service(()).await.map_err(|err| {
                            tracing::error!(?err, "the App for WebSocket upgrades did not start");
                        })?;
                        let app = Rc::new(app);
                        Ok::<_, ()>(fn_service(move |(req, framed)| {
                            take_over(app.clone(), req, framed)
                        }))
                    }
                })
            };
            let http = map_config(
                app()
                    .into_factory()
                    .map_err(|err| err.into().error_response()),
                |_| AppConfig::default(),
            );
            HttpService::build()
                .local_addr(addr)
                // Replies and diffs are small frames written as they are ready; with Nagle's
                // algorithm a second one waits for the client's delayed ACK (40 ms).
                .tcp_nodelay(true)
                .on_connect_ext(on_connect.clone())
                .upgrade(upgrades)
                .finish(http)
                .tcp()
        })?
        .run())
}

/// Runs an upgrade request through the App and either gives the socket to the Connection the
/// App accepted or writes the App's refusal and closes.
async fn take_over<S, R, B>(
    app: Rc<S>,
    req: Request,
    mut framed: Framed<TcpStream, h1::Codec>,
) -> Result<(), actix_web::Error>
where
    S: Service<Request, Response = R>,
    S::Error: Into<actix_web::Error>,
    R: Into<Response<B>>,
    B: MessageBody + 'static,
{
    req.extensions_mut().insert(Upgrading);
    let res = match app.call(req).await {
        Ok(res) => res.into().map_into_boxed_body(),
        Err(err) => err.into().error_response().into(),
    };
    let (mut head, body) = res.into_parts();
    let accepted = head.extensions_mut().remove::<Accepted>();
    if let Some(accepted) = accepted {
        framed
            .send(h1::Message::Item((head, BodySize::None)))
            .await?;
        let parts = framed.into_parts();
        accepted.start(parts.io, parts.read_buf);
        return Ok(());
    }
    let body = actix_web::body::to_bytes(body).await.unwrap_or_default();
    head.head_mut().set_connection_type(ConnectionType::Close);
    // One write: a client reading the refusal may look no further than the head's packet.
    framed
        .feed(h1::Message::Item((
            head,
            BodySize::Sized(body.len() as u64),
        )))
        .await?;
    framed.feed(h1::Message::Chunk(Some(body))).await?;
    framed.send(h1::Message::Chunk(None)).await?;
    Ok(())
}
