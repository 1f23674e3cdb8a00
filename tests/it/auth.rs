//! The first frame must be a valid `auth`; everything else closes with 4401.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use podium_actors::domain::token::JwtAlgorithm;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn a_valid_token_gets_a_welcome_naming_the_player() {
    let server = TestServer::start();
    let mut c = server.connect().await;
    c.send(json!({"type":"auth","token": server.token("alice"),"id":"a1"}))
        .await;
    let welcome = c.recv().await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["user"], "alice");
    assert_eq!(welcome["re"], "a1");
    assert!(welcome["server_time"].as_u64().unwrap() > 0);
}

async fn refused(server: &TestServer, token: String) -> (serde_json::Value, (u16, String)) {
    let mut c = server.connect().await;
    c.send(json!({"type":"auth","token": token})).await;
    let err = c.recv().await;
    (err, c.closed().await)
}

#[tokio::test]
async fn expired_wrong_alg_forged_and_garbage_tokens_are_refused_with_4401() {
    let server = TestServer::start();
    let expired = token_with(
        "alice",
        now_secs() - 3600,
        Algorithm::HS256,
        SECRET.as_bytes(),
    );
    let wrong_alg = token_with(
        "alice",
        now_secs() + 600,
        Algorithm::HS384,
        SECRET.as_bytes(),
    );
    let forged = token_with(
        "alice",
        now_secs() + 600,
        Algorithm::HS256,
        b"another-secret-entirely",
    );
    // alg "none": header {"alg":"none"}, no signature.
    let none = {
        use base64::Engine;
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.",
            b.encode(r#"{"alg":"none","typ":"JWT"}"#),
            b.encode(format!(r#"{{"sub":"alice","exp":{}}}"#, now_secs() + 600))
        )
    };
    let no_sub = {
        let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &json!({"exp": now_secs() + 600}),
            &key,
        )
        .unwrap()
    };
    for (what, token, says) in [
        ("expired", expired, "expired"),
        ("wrong alg", wrong_alg, "algorithm"),
        ("forged", forged, "signature"),
        ("alg none", none, ""),
        ("no sub", no_sub, ""),
        ("garbage", "not.a.jwt".to_owned(), ""),
    ] {
        let (err, (code, reason)) = refused(&server, token).await;
        assert_eq!(err["type"], "error", "{what}");
        assert_eq!(err["code"], "unauthorized", "{what}: {err}");
        assert!(
            err["message"].as_str().unwrap().contains(says),
            "{what}: {err}"
        );
        assert_eq!((code, reason.as_str()), (4401, "unauthorized"), "{what}");
    }
}

#[tokio::test]
async fn any_other_first_message_is_refused() {
    let server = TestServer::start();
    let mut c = server.connect().await;
    c.send(json!({"type":"join","room":"demo/global"})).await;
    assert_eq!(c.recv().await["code"], "unauthorized");
    assert_eq!(c.closed().await.0, 4401);
}

#[tokio::test]
async fn a_socket_that_never_authenticates_is_closed_at_the_deadline() {
    let server = TestServer::with(|c| c.ws.auth_timeout_ms = 150);
    let mut c = server.connect().await;
    assert_eq!(c.recv().await["code"], "unauthorized");
    assert_eq!(c.closed().await, (4401, "auth_timeout".into()));
}

#[tokio::test]
async fn es256_with_a_public_key_accepts_its_tokens_and_nothing_else() {
    let public = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/es256-public.pem"
    );
    let private = include_bytes!("../fixtures/es256-private.pem");
    let server = TestServer::with(|c| {
        c.jwt.algorithm = JwtAlgorithm::ES256;
        c.jwt.secret = None;
        c.jwt.public_key = Some(public.into());
    });
    let mut c = server.connect().await;
    c.send(json!({"type":"auth","token": token_with("erin", now_secs() + 600, Algorithm::ES256, private)})).await;
    assert_eq!(c.recv().await["user"], "erin");
    // An HS256 token signed with the public key's text is the classic confusion attack.
    let confused = token_with(
        "erin",
        now_secs() + 600,
        Algorithm::HS256,
        &std::fs::read(public).unwrap(),
    );
    assert_eq!(refused(&server, confused).await.1 .0, 4401);
    // Dev tokens need a signing key, which an ES256 server does not hold.
    assert_eq!(
        server
            .http("POST", "/dev/token", Some(r#"{"user":"erin"}"#))
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn rs256_with_a_public_key_accepts_its_tokens_and_nothing_else() {
    let public = include_str!("../fixtures/rs256-public.pem");
    let private = include_bytes!("../fixtures/rs256-private.pem");
    let server = TestServer::with(|c| {
        c.jwt.algorithm = JwtAlgorithm::RS256;
        c.jwt.secret = None;
        // PEM text in the variable itself, as a container's environment would carry it.
        c.jwt.public_key = Some(public.into());
    });
    let mut c = server.connect().await;
    c.send(json!({"type":"auth","token": token_with("rita", now_secs() + 600, Algorithm::RS256, private)})).await;
    assert_eq!(c.recv().await["user"], "rita");
    let es256 = token_with(
        "rita",
        now_secs() + 600,
        Algorithm::ES256,
        include_bytes!("../fixtures/es256-private.pem"),
    );
    assert_eq!(
        refused(&server, es256).await.1 .0,
        4401,
        "only RS256 is accepted"
    );
    let confused = token_with(
        "rita",
        now_secs() + 600,
        Algorithm::HS256,
        public.as_bytes(),
    );
    assert_eq!(refused(&server, confused).await.1 .0, 4401);
}

/// Outside dev mode the real binary will not start with a secret copied from this repository
/// (this one is written right here) or one too short, and its message names the key, never the
/// value; with secrets of its own it starts.
#[tokio::test]
async fn outside_dev_mode_a_secret_written_in_the_repository_stops_start_up() {
    let copied = "a-jwt-secret-someone-copied-from-the-readme-0123";
    let run = |env: Vec<(&'static str, String)>| async move {
        let port = free_port();
        let mut command = podium_command(port);
        command
            .env_remove("REDIS_URL")
            .env_remove("DATABASE_URL")
            .env("PODIUM_DEV_MODE", "false")
            .env("SESSION_SECRET", &*SESSION_SECRET)
            .stderr(std::process::Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start podium");
        let addr = format!("127.0.0.1:{port}");
        let ended = tokio::time::timeout(WAIT * 6, async {
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    return Some(status);
                }
                if tokio::net::TcpStream::connect(&addr).await.is_ok() {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("podium neither started nor stopped");
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        (ended, String::from_utf8_lossy(&out.stderr).into_owned())
    };

    let (ended, stderr) = run(vec![("JWT_SECRET", copied.to_owned())]).await;
    assert!(ended.is_some_and(|s| !s.success()), "it started: {stderr}");
    assert!(stderr.contains("JWT_SECRET"), "{stderr}");
    assert!(
        !stderr.contains(copied),
        "the message shows the secret: {stderr}"
    );

    let (ended, stderr) = run(vec![
        ("JWT_SECRET", SECRET.clone()),
        ("SESSION_SECRET", "short-session-secret".to_owned()),
    ])
    .await;
    assert!(ended.is_some_and(|s| !s.success()), "it started: {stderr}");
    assert!(stderr.contains("SESSION_SECRET"), "{stderr}");

    let (ended, stderr) = run(vec![("JWT_SECRET", SECRET.clone())]).await;
    assert!(
        ended.is_none(),
        "secrets of its own, and it stopped: {stderr}"
    );
}
