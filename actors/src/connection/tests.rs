//! A Connection on its own: a Gateway over the memory store, the upgrade route on an
//! ephemeral port, and a real WebSocket client. No Engine is involved.

use std::time::Duration;

use actix_web::App;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::*;
use crate::config::{RoomConfig, WsConfig};
use crate::connection_registry::ConnectionRegistry;
use crate::domain::campaign::{Campaign, CampaignRules};
use crate::domain::decision::Attempt;
use crate::domain::ids::{CampaignId, RoomId};
use crate::domain::session::SessionSigner;
use crate::domain::token::{JwtAlgorithm, TokenRules, TokenVerifier};
use crate::results::{Pipelines, ResultsPipeline};
use crate::room_registry::RoomRegistry;
use crate::store::counters::{MessageLimiter, WindowCounts};
use crate::store::live::{BanBook, CampaignBook};
use crate::store::memory::MemoryStore;
use crate::store::Store;
use crate::telemetry::Stats;

const SECRET: &[u8] = b"connection-test-secret";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A Gateway with `ws` limits over `memory`, served on an ephemeral port; answers the URL.
fn serve(mut ws: WsConfig, memory: Arc<MemoryStore>) -> String {
    // The binary fits a 0 cap to its descriptor limit; these few sockets need no fit.
    if ws.max_connections == 0 {
        ws.max_connections = 1_000;
    }
    let store = Store::Memory(memory);
    let stats = Arc::new(Stats::default());
    let counters = store.counters();
    let messages = Arc::new(MessageLimiter::new(
        Duration::from_millis(ws.rate_limit_window_ms),
        ws.rate_limit_max_messages,
        &counters,
    ));
    let campaigns = Arc::new(CampaignBook::new([Campaign::configured(
        CampaignId::new("demo"),
        CampaignRules::default(),
        0,
    )]));
    let bans = Arc::new(BanBook::default());
    let signer = Arc::new(SessionSigner::new(b"sessions"));
    let rules = TokenRules {
        dev_ttl_secs: 600,
        ..TokenRules::default()
    };
    let gateway = Arc::new(Gateway {
        max_rooms_per_connection: 8,
        trust_proxy: false,
        verifier: TokenVerifier::new(JwtAlgorithm::HS256, SECRET, &rules).unwrap(),
        connections: ConnectionRegistry::new(
            ws.clone(),
            stats.clone(),
            messages.clone(),
            counters,
            "test".into(),
        )
        .start(),
        rooms: RoomRegistry::new(RoomConfig::default(), campaigns.clone(), store.clone()).start(),
        results: Pipelines::start(ResultsPipeline::new(
            store.clone(),
            signer.clone(),
            campaigns.clone(),
            bans.clone(),
            30,
            Duration::from_secs(30),
            None,
        )),
        ws,
        signer,
        campaigns,
        bans,
        games: WindowCounts::new("gh", Duration::from_secs(3_600), &store.counters()),
        messages,
        stats,
        store,
        counting: Default::default(),
    });
    let listener = server::listen("127.0.0.1:0", false).unwrap();
    let addr = listener.local_addr().unwrap();
    let app = move || {
        App::new()
            .app_data(web::Data::new(gateway.clone()))
            .route("/ws", web::get().to(upgrade))
    };
    actix_rt::spawn(server::serve(listener, 1, app, |_: &_, _: &mut _| {}).unwrap());
    format!("ws://{addr}/ws")
}

fn token(user: &str) -> String {
    let rules = TokenRules {
        dev_ttl_secs: 600,
        ..TokenRules::default()
    };
    TokenVerifier::new(JwtAlgorithm::HS256, SECRET, &rules)
        .unwrap()
        .mint_dev_token(&UserId::parse(user).unwrap(), now_ms() / 1000)
        .unwrap()
}

async fn connect(url: &str) -> Socket {
    tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade")
        .0
}

async fn send(ws: &mut Socket, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// The next text frame as JSON, or the close frame's code and reason.
async fn next(ws: &mut Socket) -> Result<Value, (u16, String)> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame in time")
            .expect("socket open")
            .expect("a frame");
        match frame {
            Message::Text(t) => return Ok(serde_json::from_str(&t).unwrap()),
            Message::Close(Some(c)) => return Err((c.code.into(), c.reason.to_string())),
            _ => continue,
        }
    }
}

async fn player(url: &str, user: &str) -> Socket {
    let mut ws = connect(url).await;
    send(&mut ws, json!({"type": "auth", "token": token(user)})).await;
    assert_eq!(next(&mut ws).await.unwrap()["type"], "welcome");
    ws
}

#[actix_rt::test]
async fn a_socket_that_does_not_authenticate_in_time_is_closed_with_4401() {
    let url = serve(
        WsConfig {
            auth_timeout_ms: 50,
            ..WsConfig::default()
        },
        Arc::default(),
    );
    let mut ws = connect(&url).await;
    assert_eq!(next(&mut ws).await.unwrap()["code"], "unauthorized");
    assert_eq!(
        next(&mut ws).await.unwrap_err(),
        (4401, "auth_timeout".into())
    );
    // In time, the same limits let a player in.
    player(&url, "prompt").await;
}

#[actix_rt::test]
async fn past_the_rate_limit_messages_are_refused_then_the_socket_is_closed() {
    let url = serve(
        WsConfig {
            rate_limit_window_ms: 60_000,
            rate_limit_max_messages: 3,
            rate_limit_max_strikes: 2,
            ..WsConfig::default()
        },
        Arc::default(),
    );
    let mut ws = player(&url, "chatty").await;
    for i in 0..3 {
        send(&mut ws, json!({"type": "ping", "id": i})).await;
        assert_eq!(next(&mut ws).await.unwrap()["type"], "pong");
    }
    send(&mut ws, json!({"type": "ping", "id": "over"})).await;
    let refused = next(&mut ws).await.unwrap();
    assert_eq!(
        (refused["code"].as_str(), refused["re"].as_str()),
        (Some("rate_limited"), Some("over"))
    );
    send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(next(&mut ws).await.unwrap()["code"], "rate_limited");
    assert_eq!(
        next(&mut ws).await.unwrap_err(),
        (4429, "rate_limit_abuse".into())
    );
}

#[actix_rt::test]
async fn the_queue_cap_bounds_what_waits_for_a_client_not_the_size_of_a_frame() {
    // A board whose snapshot is about 2 KB, twice the cap below. The socket takes it at once,
    // so nothing waits and the reader gets it; 4008 is for a client that stops reading
    // (tests/it/connection.rs).
    let memory = Arc::new(MemoryStore::default());
    let room = RoomId::parse("demo/global").unwrap();
    let boards = [(
        crate::domain::ids::BoardKey::for_room(&room, now_ms()),
        None,
    )];
    for i in 0..40 {
        let user = UserId::parse(&format!("player-with-a-long-name-{i:02}")).unwrap();
        memory
            .decide(&Attempt {
                session_id: &format!("s{i}"),
                user: &user,
                campaign: &CampaignId::new("demo"),
                score: 100 + i,
                started_ms: 0,
                now_ms: now_ms(),
                keep_until_ms: u64::MAX,
                refused: None,
                region: None,
                boards: &boards,
                fallback: false,
                limit: None,
                counted: None,
            })
            .expect("nobody is banned");
    }
    let join = json!({"type": "join", "room": "demo/global"});
    let tight = serve(
        WsConfig {
            outbound_queue_max_bytes: 1_024,
            ..WsConfig::default()
        },
        memory,
    );
    let mut ws = player(&tight, "reader").await;
    send(&mut ws, join).await;
    let snapshot = next(&mut ws).await.unwrap();
    assert_eq!(snapshot["top"].as_array().unwrap().len(), 40);
    assert!(snapshot.to_string().len() > 1_024);
}
