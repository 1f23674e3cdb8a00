//! Games: signed sessions, idempotent submits and every anti-cheat rule with its reason.

use std::time::Duration;

use podium_actors::domain::campaign::CampaignRules;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn an_accepted_score_reports_best_and_rank() {
    let server = TestServer::start();
    let mut a = server.player("ada").await;
    let r = a.play(50).await;
    assert_eq!(
        (r["status"].as_str(), r["best"].as_u64(), r["rank"].as_u64()),
        (Some("accepted"), Some(50), Some(1))
    );
    let mut b = server.player("bo").await;
    assert_eq!(b.play(60).await["rank"], 1);
    // A lower score is accepted but the best stays.
    let r = a.play(10).await;
    assert_eq!(
        (r["best"].as_u64(), r["rank"].as_u64()),
        (Some(50), Some(2))
    );
}

#[tokio::test]
async fn a_retried_submit_gets_the_same_answer_and_counts_once() {
    let server = TestServer::start();
    let mut a = server.player("cy").await;
    let session = a.start_game("quick").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let first = a.submit(&session, 40).await;
    let again = a.submit(&session, 40).await;
    assert_eq!(first, again);
    // From another socket of the same player, too.
    let mut a2 = server.player("cy").await;
    assert_eq!(a2.submit(&session, 40).await, first);
    // Another score for the same session is refused.
    let other = a.submit(&session, 41).await;
    assert_eq!(
        (other["status"].as_str(), other["reason"].as_str()),
        (Some("rejected"), Some("already_submitted"))
    );
    let top = a.join("quick/global").await["top"].clone();
    assert_eq!(top, json!([{"rank":1,"user":"cy","score":40}]));
}

async fn rejected(c: &mut Client, session: &str, score: u64) -> String {
    let r = c.submit(session, score).await;
    assert_eq!(r["status"], "rejected", "{r}");
    r["reason"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn each_anti_cheat_rule_refuses_with_its_reason() {
    let server = TestServer::with(|c| {
        c.campaigns.insert(
            "rules".into(),
            CampaignRules {
                min_duration_ms: 200,
                max_duration_ms: 600,
                max_score: 1000,
                max_score_per_second: 100,
                starts_at_ms: None,
                ends_at_ms: None,
                ..Default::default()
            },
        );
        c.campaigns.insert(
            "over".into(),
            CampaignRules {
                min_duration_ms: 1,
                max_duration_ms: 600,
                max_score: 10,
                max_score_per_second: 10,
                starts_at_ms: None,
                ends_at_ms: Some(1),
                ..Default::default()
            },
        );
        c.game.max_submits_per_minute = 5;
    });
    let mut p = server.player("eve").await;

    let s = p.start_game("rules").await;
    assert_eq!(rejected(&mut p, &s, 1).await, "too_fast");

    let s = p.start_game("rules").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rejected(&mut p, &s, 1001).await, "score_too_high");
    let s = p.start_game("rules").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // 300 ms at 100/s allows 30.
    assert_eq!(rejected(&mut p, &s, 80).await, "score_rate_too_high");

    let s = p.start_game("rules").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(rejected(&mut p, &s, 1).await, "too_slow");

    assert_eq!(rejected(&mut p, "forged.token", 1).await, "bad_session");
    // A session tampered with: another player's name in the body, same signature.
    let s = p.start_game("rules").await;
    let (body, sig) = s.split_once('.').unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let forged_body = String::from_utf8(b64.decode(body).unwrap())
        .unwrap()
        .replace("\"eve\"", "\"mallory\"");
    assert_eq!(
        rejected(&mut p, &format!("{}.{sig}", b64.encode(forged_body)), 1).await,
        "bad_session"
    );
    // Someone else's genuine session.
    let mut other = server.player("fay").await;
    let theirs = other.start_game("rules").await;
    assert_eq!(rejected(&mut p, &theirs, 1).await, "bad_session");

    // A refusal is an answer too: the same session gets the same one.
    let s = p.start_game("rules").await;
    assert_eq!(rejected(&mut p, &s, 1).await, "too_fast");
    assert_eq!(
        rejected(&mut p, &s, 1).await,
        "too_fast",
        "retry of a refused session"
    );

    // The campaign window.
    p.send(json!({"type":"start_game","campaign":"over"})).await;
    assert_eq!(p.recv().await["code"], "campaign_closed");
    p.send(json!({"type":"start_game","campaign":"nope"})).await;
    assert_eq!(p.recv().await["code"], "unknown_campaign");

    // The per-user submit rate: 5 per minute, and 5 submits above counted (bad sessions and
    // retries of a decided session are answered before the rate is checked).
    let s = p.start_game("rules").await;
    assert_eq!(rejected(&mut p, &s, 1).await, "rate_limited");
}
