//! The store's ranks at the edges (rank 1, rank 2, last place, ties, pages read backwards,
//! around-me), checked against both stores with the same expectations: the memory engine and
//! the real Redis of this machine.

use std::sync::Arc;

use podium_actors::domain::board::{Entry, Standing};
use podium_actors::domain::decision::Attempt;
use podium_actors::domain::ids::{BoardKey, BoardName, CampaignId, UserId};
use podium_actors::domain::session::GameSession;
use podium_actors::store::durable::Durable;
use podium_actors::store::memory::MemoryStore;
use podium_actors::store::Store;

use crate::common::use_redis_engine;

/// The redis engine's store on this machine's Redis (and PostgreSQL, which these calls do not
/// reach while Redis answers), in a fresh key prefix.
fn durable() -> Durable {
    let mut config = podium::Config::default();
    use_redis_engine(&mut config);
    Durable::connect(&config).unwrap()
}

fn stores() -> Vec<(&'static str, Store)> {
    vec![
        ("memory", Store::Memory(Arc::new(MemoryStore::default()))),
        ("redis", Store::Durable(durable())),
    ]
}

fn board() -> BoardKey {
    BoardKey {
        campaign: CampaignId::new("edge"),
        board: BoardName::Global,
    }
}

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

/// Offers `score` for `name` at time `at` (ms): later calls must use later times.
async fn offer(store: &Store, name: &str, score: u64, at: u64) {
    let (u, campaign) = (user(name), CampaignId::new("edge"));
    let session = format!("{name}-{at}");
    let attempt = Attempt {
        session_id: &session,
        user: &u,
        campaign: &campaign,
        score,
        started_ms: at - 1,
        now_ms: at,
        keep_until_ms: at + 60_000,
        refused: None,
        region: None,
        boards: &[(board(), None)],
        fallback: false,
        limit: None,
        counted: None,
    };
    store.decide(&attempt).await.unwrap();
}

fn rows(entries: &[Entry]) -> Vec<(u64, String, u64)> {
    entries
        .iter()
        .map(|e| (e.rank, e.user.to_string(), e.score))
        .collect()
}

fn at(rank: u64, score: u64) -> Option<Standing> {
    Some(Standing { rank, score })
}

#[tokio::test]
async fn ranks_are_right_at_the_edges_on_both_stores() {
    for (engine, store) in stores() {
        let b = board();
        assert_eq!(
            store.standing(&b, &user("nobody")).await.unwrap(),
            None,
            "{engine}"
        );
        assert!(
            store.top(&b, 10).await.unwrap().is_empty(),
            "{engine}: empty board"
        );

        let t0 = 1_795_392_000_000;
        offer(&store, "ann", 50, t0 + 1).await;
        offer(&store, "bob", 50, t0 + 2).await;
        offer(&store, "cat", 70, t0 + 3).await;
        offer(&store, "dan", 10, t0 + 4).await;
        offer(&store, "eve", 50, t0 + 5).await;
        let expected = vec![
            (1, "cat".into(), 70),
            (2, "ann".into(), 50),
            (3, "bob".into(), 50),
            (4, "eve".into(), 50),
            (5, "dan".into(), 10),
        ];
        assert_eq!(
            rows(&store.top(&b, 10).await.unwrap()),
            expected,
            "{engine}: ties go to the earlier"
        );
        assert_eq!(
            store.standing(&b, &user("cat")).await.unwrap(),
            at(1, 70),
            "{engine}: rank 1"
        );
        assert_eq!(
            store.standing(&b, &user("ann")).await.unwrap(),
            at(2, 50),
            "{engine}: rank 2, first of a tie"
        );
        assert_eq!(
            store.standing(&b, &user("eve")).await.unwrap(),
            at(4, 50),
            "{engine}: last of a tie"
        );
        assert_eq!(
            store.standing(&b, &user("dan")).await.unwrap(),
            at(5, 10),
            "{engine}: last place"
        );
        assert_eq!(store.count(&b).await.unwrap(), 5, "{engine}");

        // A lower score never replaces a best; an equal one does not move the player either.
        offer(&store, "ann", 40, t0 + 6).await;
        offer(&store, "ann", 50, t0 + 7).await;
        assert_eq!(
            store.standing(&b, &user("ann")).await.unwrap(),
            at(2, 50),
            "{engine}: a lower or equal score changes nothing"
        );
        // Reaching the leader's score later ranks second.
        offer(&store, "bob", 70, t0 + 8).await;
        assert_eq!(
            rows(&store.page(&b, 1, 3).await.unwrap()),
            vec![
                (1, "cat".into(), 70),
                (2, "bob".into(), 70),
                (3, "ann".into(), 50)
            ],
            "{engine}"
        );

        // Pages read backwards, from the last page to the first, rebuild the whole list with
        // consecutive ranks.
        let count = store.count(&b).await.unwrap();
        let mut pages = Vec::new();
        let mut end = count;
        while end > 0 {
            let from = end.saturating_sub(2) + 1;
            let page = store
                .page(&b, from, (end - from + 1) as usize)
                .await
                .unwrap();
            assert_eq!(
                page.first().map(|e| e.rank),
                Some(from),
                "{engine}: page from rank {from}"
            );
            pages.push(page);
            end = from - 1;
        }
        let rebuilt: Vec<Entry> = pages.into_iter().rev().flatten().collect();
        assert_eq!(
            rebuilt,
            store.top(&b, 100).await.unwrap(),
            "{engine}: pages read backwards"
        );
        assert!(
            store.page(&b, count + 1, 10).await.unwrap().is_empty(),
            "{engine}: past the end"
        );
        assert_eq!(
            rows(&store.page(&b, count, 10).await.unwrap()),
            vec![(5, "dan".into(), 10)],
            "{engine}: the last page is the last row"
        );

        // Around me, clamped at both ends.
        let around = |name: &'static str| {
            let (store, b) = (store.clone(), b.clone());
            async move {
                rows(&store.around(&b, &user(name), 1).await.unwrap())
                    .into_iter()
                    .map(|r| r.0)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(around("cat").await, vec![1, 2], "{engine}: around rank 1");
        assert_eq!(
            around("ann").await,
            vec![2, 3, 4],
            "{engine}: around the middle"
        );
        assert_eq!(
            around("dan").await,
            vec![4, 5],
            "{engine}: around last place"
        );
        assert!(around("nobody").await.is_empty(), "{engine}");
    }
}

#[tokio::test]
async fn a_decided_session_keeps_its_first_outcome_on_both_stores() {
    for (engine, store) in stores() {
        offer(&store, "solo", 30, 1_795_392_000_100).await;
        // The same session id again, with another score: the first answer stands.
        let (u, campaign) = (user("solo"), CampaignId::new("edge"));
        let again = Attempt {
            session_id: "solo-1795392000100",
            user: &u,
            campaign: &campaign,
            score: 99,
            started_ms: 1,
            now_ms: 1_795_392_000_200,
            keep_until_ms: 1_795_392_060_000,
            refused: None,
            region: None,
            boards: &[(board(), None)],
            fallback: false,
            limit: None,
            counted: None,
        };
        let outcome = store.decide(&again).await.unwrap();
        assert_eq!(
            (outcome.score, outcome.best, outcome.rank),
            (30, Some(30), Some(1)),
            "{engine}"
        );
        assert_eq!(
            store.standing(&board(), &u).await.unwrap(),
            at(1, 30),
            "{engine}: the board counted it once"
        );
        assert_eq!(
            store
                .outcome(&GameSession {
                    id: "solo-1795392000100".into(),
                    user: u.clone(),
                    campaign: campaign.clone(),
                    started_ms: 1,
                    region: None,
                    fallback: false,
                    limits: None,
                    seed: None,
                })
                .await
                .unwrap(),
            Some(outcome),
            "{engine}"
        );
    }
}

#[tokio::test]
async fn a_results_stream_entry_round_trips_through_the_decide_script() {
    use podium_actors::domain::campaign::Refusal;
    use podium_actors::domain::ids::Region;
    use podium_actors::persistence_batcher::GROUP;

    let store = durable();
    store.redis.ensure_group(GROUP).await.unwrap();
    let (u, campaign, region) = (
        user("streamed"),
        CampaignId::new("edge"),
        Region::parse("eu").unwrap(),
    );
    let attempts = [
        ("accepted-1", 120, None, Some(&region)),
        ("refused-1", 9_999, Some(Refusal::ScoreRateTooHigh), None),
    ];
    let mut written = Vec::new();
    for (session, score, refused, region) in attempts {
        let attempt = Attempt {
            session_id: session,
            user: &u,
            campaign: &campaign,
            score,
            started_ms: 1_795_392_000_000,
            now_ms: 1_795_392_004_000,
            keep_until_ms: 1_795_392_060_000,
            refused,
            region,
            boards: &[(board(), None)],
            fallback: false,
            limit: None,
            counted: None,
        };
        store.redis.decide(&attempt).await.unwrap();
        written.push(attempt.record());
    }
    let read = store
        .redis
        .read_group(
            GROUP,
            "reader",
            10,
            false,
            std::time::Duration::from_millis(10),
        )
        .await
        .unwrap();
    let rows: Vec<_> = read.into_iter().map(|e| e.row).collect();
    assert_eq!(rows, written.into_iter().map(Some).collect::<Vec<_>>());
}

#[tokio::test]
async fn the_highest_score_is_kept_exactly_on_both_stores() {
    use podium_actors::domain::protocol::MAX_SCORE;
    for (engine, store) in stores() {
        let (u, campaign) = (user("top-scorer"), CampaignId::new("edge"));
        let attempt = Attempt {
            session_id: "max-score",
            user: &u,
            campaign: &campaign,
            score: MAX_SCORE,
            started_ms: 1_795_392_000_000,
            now_ms: 1_795_392_001_000,
            keep_until_ms: 1_795_392_060_000,
            refused: None,
            region: None,
            boards: &[(board(), None)],
            fallback: false,
            limit: None,
            counted: None,
        };
        let first = store.decide(&attempt).await.unwrap();
        assert_eq!(
            (first.score, first.best),
            (MAX_SCORE, Some(MAX_SCORE)),
            "{engine}"
        );
        assert_eq!(
            store.decide(&attempt).await.unwrap(),
            first,
            "{engine}: a retry"
        );
        assert_eq!(
            store.standing(&board(), &u).await.unwrap(),
            at(1, MAX_SCORE),
            "{engine}"
        );
        assert_eq!(
            store.top(&board(), 1).await.unwrap()[0].score,
            MAX_SCORE,
            "{engine}"
        );
    }
}
