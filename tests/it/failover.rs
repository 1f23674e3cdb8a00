//! Redis failing over under load: a Redis Cluster losing a master to its replica, Sentinel
//! promoting a replica, and a master demoted under the engine. Each test runs its own Redis
//! processes on free loopback ports (redis-server, also as a sentinel, and redis-cli, from
//! Debian's packages), so the shared services are never touched. The invariant is the reliability
//! issue's: every session decided once, nothing acknowledged lost, no `internal` answers
//! (`compound::check`), and the boards equal what PostgreSQL holds.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::compound::{busy, check, load};
use crate::faults::{has_issue, health, redis_server, run};

/// A port whose cluster bus port (+10000) is free too.
fn cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).replace('\r', "")
}

/// Waits (blocking) for `what` to hold, for up to 30 s.
fn settle(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// 3 masters with `replicas` (0 or 1) replicas each; 1 is what `scripts/redis-cluster` makes.
pub struct TempCluster {
    dir: PathBuf,
    nodes: Vec<(u16, Option<Child>)>,
}

/// A cluster node's arguments beside `redis_server`'s: a failover within seconds, and replicas
/// that sync at once.
const CLUSTER_NODE: &[&str] = &[
    "--cluster-enabled",
    "yes",
    "--cluster-node-timeout",
    "1000",
    "--repl-diskless-sync-delay",
    "0",
];

impl TempCluster {
    pub fn start(replicas: usize) -> Self {
        let dir = std::env::temp_dir().join(format!("podium-cluster-{}", unique_tag()));
        let nodes: Vec<(u16, Option<Child>)> = (0..3 * (1 + replicas))
            .map(|_| {
                let port = cluster_port();
                let node_dir = dir.join(port.to_string());
                std::fs::create_dir_all(&node_dir).unwrap();
                (port, Some(redis_server(port, &node_dir, CLUSTER_NODE)))
            })
            .collect();
        let mut create = vec!["--cluster".to_owned(), "create".to_owned()];
        create.extend(nodes.iter().map(|(p, _)| format!("127.0.0.1:{p}")));
        create.extend(
            ["--cluster-replicas", &replicas.to_string(), "--cluster-yes"].map(str::to_owned),
        );
        let create: Vec<&str> = create.iter().map(String::as_str).collect();
        let out = Command::new("redis-cli").args(&create).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Self { dir, nodes };
        cluster.wait_healthy(3 * replicas);
        cluster
    }

    /// Starts a killed node again from its files (it rejoins the cluster).
    pub fn restart(&mut self, port: u16) {
        let dir = self.dir.join(port.to_string());
        let (_, child) = self.nodes.iter_mut().find(|(p, _)| *p == port).unwrap();
        *child = Some(redis_server(port, &dir, CLUSTER_NODE));
    }

    /// Kills (SIGKILL) the master serving `key`'s slot and answers its port, without waiting
    /// for a replica.
    pub fn kill_owner_of(&mut self, key: &str) -> u16 {
        let any = self.live_port();
        let slot = cli(any, &["cluster", "keyslot", key]).trim().to_owned();
        let master = Self::owner(any, &slot).expect("a master serves the slot");
        let (_, child) = self.nodes.iter_mut().find(|(p, _)| *p == master).unwrap();
        let mut child = child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        master
    }

    /// Until every slot is served and `replicas` replicas have synced with their master (a
    /// replica that never synced is too stale to be promoted).
    fn wait_healthy(&self, replicas: usize) {
        let port = self.live_port();
        settle("the cluster serves every slot", || {
            cli(port, &["cluster", "info"]).contains("cluster_state:ok")
                && cli(port, &["cluster", "nodes"]).matches(" slave ").count() == replicas
        });
        settle("every replica synced", || {
            self.nodes
                .iter()
                .filter(|(_, c)| c.is_some())
                .map(|(p, _)| cli(*p, &["info", "replication"]))
                .filter(|info| info.contains("master_link_status:up"))
                .count()
                == replicas
        });
    }

    fn live_port(&self) -> u16 {
        self.nodes.iter().find(|(_, c)| c.is_some()).unwrap().0
    }

    pub fn configure(&self, config: &mut Config) {
        config.redis.url = None;
        config.redis.cluster_nodes = self
            .nodes
            .iter()
            .map(|(p, _)| format!("redis://127.0.0.1:{p}"))
            .collect();
    }

    /// Kills (SIGKILL) the master serving `key`'s slot; answers its port once its replica
    /// has taken the slot over.
    pub fn kill_master_of(&mut self, key: &str) -> u16 {
        let slot = cli(self.live_port(), &["cluster", "keyslot", key])
            .trim()
            .to_owned();
        let master = self.kill_owner_of(key);
        let any = self.live_port();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !(Self::owner(any, &slot).is_some_and(|p| p != master)
            && cli(any, &["cluster", "info"]).contains("cluster_state:ok"))
        {
            assert!(
                Instant::now() < deadline,
                "the replica never took slot {slot} over from {master}:\n{}",
                cli(any, &["cluster", "nodes"])
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        master
    }

    /// The port of the master serving `slot`, as node `port` sees it.
    fn owner(port: u16, slot: &str) -> Option<u16> {
        let slot: u16 = slot.parse().ok()?;
        cli(port, &["cluster", "nodes"]).lines().find_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            if !fields.get(2)?.contains("master") || fields.get(2)?.contains("fail") {
                return None;
            }
            let serves = fields[8..].iter().any(|range| {
                let (from, to) = range.split_once('-').unwrap_or((range, range));
                matches!((from.parse::<u16>(), to.parse::<u16>()), (Ok(f), Ok(t)) if (f..=t).contains(&slot))
            });
            serves.then(|| fields[1].split(['@', ':']).nth(1)?.parse().ok())?
        })
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            if let Some(mut c) = child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A master, its replica, and three sentinels watching them as `podium`.
pub struct TempSentinel {
    dir: PathBuf,
    master: (u16, Option<Child>),
    replica: (u16, Child),
    sentinels: Vec<(u16, Child)>,
}

impl TempSentinel {
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("podium-sentinel-{}", unique_tag()));
        let node = |name: &str, extra: &[&str]| {
            let port = free_port();
            let node_dir = dir.join(name);
            std::fs::create_dir_all(&node_dir).unwrap();
            (port, redis_server(port, &node_dir, extra))
        };
        let (master_port, master) = node("master", &["--repl-diskless-sync-delay", "0"]);
        let replica = node(
            "replica",
            &["--replicaof", "127.0.0.1", &master_port.to_string()],
        );
        let sentinels = (0..3)
            .map(|i| {
                let port = free_port();
                let conf = dir.join(format!("sentinel-{i}.conf"));
                std::fs::write(
                    &conf,
                    format!(
                        "port {port}\nbind 127.0.0.1\ndir {}\n\
                         sentinel monitor podium 127.0.0.1 {master_port} 2\n\
                         sentinel down-after-milliseconds podium 1000\n\
                         sentinel failover-timeout podium 5000\n",
                        dir.display()
                    ),
                )
                .unwrap();
                let child = Command::new("redis-server")
                    .arg(&conf)
                    .arg("--sentinel")
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .expect("redis-server --sentinel");
                (port, child)
            })
            .collect::<Vec<_>>();
        let s = Self {
            dir,
            master: (master_port, Some(master)),
            replica,
            sentinels,
        };
        settle("the replica follows the master", || {
            cli(s.replica.0, &["info", "replication"]).contains("master_link_status:up")
        });
        settle("every sentinel knows the replica and the others", || {
            s.sentinels.iter().all(|(p, _)| {
                let master = cli(*p, &["sentinel", "master", "podium"]);
                master.contains("num-slaves\n1") && master.contains("num-other-sentinels\n2")
            })
        });
        s
    }

    pub fn configure(&self, config: &mut Config) {
        config.redis.url = None;
        config.redis.cluster_nodes.clear();
        config.redis.sentinels = self
            .sentinels
            .iter()
            .map(|(p, _)| format!("redis://127.0.0.1:{p}"))
            .collect();
        config.redis.master_name = Some("podium".into());
    }

    /// Kills the master (SIGKILL) and waits until the sentinels name the replica.
    pub fn fail_over(&mut self) {
        if let Some(mut c) = self.master.1.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
        let replica = self.replica.0.to_string();
        settle("the sentinels promoted the replica", || {
            cli(
                self.sentinels[0].0,
                &["sentinel", "get-master-addr-by-name", "podium"],
            )
            .contains(&replica)
        });
    }
}

impl Drop for TempSentinel {
    fn drop(&mut self) {
        let children = self
            .sentinels
            .iter_mut()
            .map(|(_, c)| c)
            .chain([&mut self.replica.1])
            .chain(self.master.1.as_mut());
        for c in children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// No submit was answered `internal`: a Redis fault is retryable, never a server failure.
async fn assert_no_internal(server: &TestServer) {
    let (_, metrics) = server.http_text("GET", "/metrics", None).await;
    let internal = sample(
        &metrics,
        "podium_submits_total{outcome=\"failed\",reason=\"internal\"}",
    );
    assert_eq!(internal, Some(0.0), "no submit was answered internal");
}

/// The `quick` campaign's global board equals the bests PostgreSQL holds, once every result
/// has reached PostgreSQL.
async fn boards_match_postgres(server: &TestServer) {
    eventually("the results streams drained into PostgreSQL", || async {
        stream_backlog(&server.config).await == 0
    })
    .await;
    let pool = podium_actors::store::postgres::pool(&server.config.postgres).unwrap();
    let mut want: Vec<(String, u64)> =
        podium_actors::store::postgres::results::bests(&pool, "quick", None, None)
            .await
            .unwrap()
            .into_iter()
            .map(|(u, s, _)| (u, s))
            .collect();
    want.sort();
    eventually("the global board equals PostgreSQL's bests", || async {
        let (_, page) = server
            .http("GET", "/leaderboard/quick/global?limit=100", None)
            .await;
        let mut got: Vec<(String, u64)> = page["rows"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        (
                            r["user"].as_str().unwrap().to_owned(),
                            r["score"].as_u64().unwrap(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        got.sort();
        got == want
    })
    .await;
}

/// 20 players for 12 s on `server`, and `fail_over` (blocking) 3 s in: every session decided
/// once, nothing acknowledged lost, no `internal`, the failover seen by the players as retryable
/// answers, and the boards equal to PostgreSQL. Answers what `fail_over` gave back (the Redis
/// processes, kept until the test ends).
async fn failover_under_load<T: Send + 'static>(
    server: &TestServer,
    fail_over: impl FnOnce() -> T + Send + 'static,
) -> T {
    let addr = Arc::new(Mutex::new(server.addr.to_string()));
    let (ledger, players) = load(addr, 20, Instant::now() + Duration::from_secs(12));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let kept = tokio::task::spawn_blocking(fail_over).await.unwrap();
    for p in players {
        p.await.unwrap();
    }
    let counts = check(&server.addr.to_string(), &server.config, &ledger).await;
    assert!(
        counts.retryable_answers > 0,
        "the failover was seen by the players: {counts:?}"
    );
    boards_match_postgres(server).await;
    kept
}

#[tokio::test]
async fn a_cluster_master_killed_under_load_loses_nothing_and_decides_nothing_twice() {
    let mut cluster = TempCluster::start(1);
    let server = TestServer::redis(|c| {
        busy(c);
        cluster.configure(c);
    });
    // The master of the campaign's boards: the second step of every decision goes there.
    failover_under_load(&server, move || {
        println!(
            "killed the master on {}",
            cluster.kill_master_of("{c:quick}")
        );
        cluster
    })
    .await;
}

#[tokio::test]
async fn a_sentinel_failover_under_load_loses_nothing_and_decides_nothing_twice() {
    let mut sentinel = TempSentinel::start();
    let server = TestServer::redis(|c| {
        busy(c);
        sentinel.configure(c);
    });
    failover_under_load(&server, move || {
        sentinel.fail_over();
        sentinel
    })
    .await;
}

/// After a failover the old master answers `PING` but refuses writes (`READONLY`): that is
/// Redis unavailable (the game in progress gets `unavailable`, new games go to PostgreSQL),
/// never `internal`.
#[tokio::test]
async fn a_master_demoted_to_a_replica_is_redis_unavailable_not_internal() {
    let (master, other) = (
        crate::faults::TempRedis::start(),
        crate::faults::TempRedis::start(),
    );
    let server = TestServer::redis(|c| {
        use_redis_at(c, master.url());
        c.redis.command_timeout_ms = 300;
    });
    let mut p = server.player("demoted").await;
    assert_eq!(p.play(10).await["status"], "accepted");
    let in_progress = p.start_game("quick").await;
    run(
        "redis-cli",
        &[
            "-p",
            &master.port.to_string(),
            "replicaof",
            "127.0.0.1",
            &other.port.to_string(),
        ],
    );
    let held = p.submit(&in_progress, 40).await;
    assert_eq!(
        (held["status"].as_str(), held["reason"].as_str()),
        (Some("rejected"), Some("unavailable")),
        "{held}"
    );
    eventually("/health names Redis", || async {
        has_issue(&health(&server).await, "redis_down")
    })
    .await;
    let fallback = p.play(30).await;
    assert_eq!(
        fallback["status"], "accepted",
        "decided in PostgreSQL: {fallback}"
    );
    assert_no_internal(&server).await;
}

/// After an outage one instance at a time rebuilds a campaign's boards, and once per Redis
/// process: a second instance waits for the first, and a restarted Redis is rebuilt again.
#[tokio::test]
async fn one_instance_rebuilds_a_campaign_once_per_redis_process() {
    use podium_actors::domain::ids::CampaignId;
    use podium_actors::store::redis::boards::{RebuildClaim, RebuildHold};
    let mut redis = crate::faults::TempRedis::start();
    let mut config = Config::default();
    use_redis_engine(&mut config);
    use_redis_at(&mut config, redis.url());
    let store = podium_actors::store::durable::Durable::connect(&config).unwrap();
    let (campaign, lease) = (CampaignId::new("quick"), Duration::from_secs(30));
    let claim = |owner: &'static str| {
        let (store, campaign) = (store.clone(), campaign.clone());
        async move {
            store
                .redis
                .claim_rebuild(&campaign, owner, lease)
                .await
                .unwrap()
        }
    };
    let RebuildClaim::Mine { run } = claim("a").await else {
        panic!("the first instance rebuilds");
    };
    assert_eq!(claim("b").await, RebuildClaim::Wait, "one at a time");
    assert!(store
        .redis
        .hold_rebuild(&campaign, "a", lease, RebuildHold::Renew)
        .await
        .unwrap());
    assert!(
        !store
            .redis
            .hold_rebuild(&campaign, "b", lease, RebuildHold::Renew)
            .await
            .unwrap(),
        "only the holder renews"
    );
    store
        .redis
        .hold_rebuild(&campaign, "a", lease, RebuildHold::Done { run })
        .await
        .unwrap();
    assert_eq!(
        claim("b").await,
        RebuildClaim::Done,
        "rebuilt once, for both"
    );
    redis.crash();
    redis.up();
    let mut again = None;
    for _ in 0..50 {
        match store.redis.claim_rebuild(&campaign, "b", lease).await {
            Ok(claim) => {
                again = Some(claim);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(
        matches!(again, Some(RebuildClaim::Mine { .. })),
        "a restarted Redis is another process, whose boards are rebuilt: {again:?}"
    );
}

/// A master lost with no replica leaves its slots unserved: the engine says so (`/health`
/// names Redis), games go on in PostgreSQL, and when the node is back everything decided
/// meanwhile is on the boards.
#[tokio::test]
async fn a_cluster_master_lost_without_a_replica_is_redis_down_until_it_returns() {
    let mut cluster = TempCluster::start(0);
    let server = TestServer::redis(|c| {
        cluster.configure(c);
        c.redis.command_timeout_ms = 500;
    });
    let mut p = server.player("lonely").await;
    assert_eq!(p.play(10).await["status"], "accepted");
    let killed = cluster.kill_owner_of("{c:quick}");
    eventually("/health names Redis", || async {
        has_issue(&health(&server).await, "redis_down")
    })
    .await;
    let mut q = server.player("newcomer").await;
    let fallback = q.play(30).await;
    assert_eq!(
        fallback["status"], "accepted",
        "decided in PostgreSQL: {fallback}"
    );
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.restart(killed);
        cluster.wait_healthy(0);
        cluster
    })
    .await
    .unwrap();
    eventually("the fallback is over", || async {
        !has_issue(&health(&server).await, "redis_down")
    })
    .await;
    boards_match_postgres(&server).await;
    assert_no_internal(&server).await;
    drop(cluster);
}
