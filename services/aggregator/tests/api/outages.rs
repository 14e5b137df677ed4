use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

/// A TCP proxy to PostgreSQL that the test can cut (closing every connection) and restore, or
/// freeze: the connections open at that moment stop passing bytes either way and are held open
/// (no FIN, no RST), as after a failover or a dropped NAT entry; new ones work.
struct PgProxy {
    addr: SocketAddr,
    cut: CancellationToken,
    freeze: Arc<Mutex<CancellationToken>>,
}

impl PgProxy {
    async fn start(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = CancellationToken::new();
        let stop = cut.clone();
        let freeze = Arc::new(Mutex::new(CancellationToken::new()));
        let freezes = freeze.clone();
        tokio::spawn(async move {
            loop {
                let (mut inbound, _) = tokio::select! {
                    () = stop.cancelled() => return,
                    accepted = listener.accept() => accepted.unwrap(),
                };
                let stop = stop.clone();
                let frozen = freezes.lock().unwrap().clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect("127.0.0.1:5432").await else {
                        return;
                    };
                    tokio::select! {
                        () = stop.cancelled() => {}
                        () = frozen.cancelled() => stop.cancelled().await, // sockets held open
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                });
            }
        });
        Self { addr, cut, freeze }
    }

    fn cut(&self) {
        self.cut.cancel();
    }

    fn freeze(&self) {
        let mut current = self.freeze.lock().unwrap();
        current.cancel();
        *current = CancellationToken::new();
    }
}

/// A PostgreSQL that stopped answering: it accepts connections on `addr` and never replies.
async fn hang_at(addr: SocketAddr) -> tokio::task::JoinHandle<()> {
    // The cut proxy lets go of the address as its task ends.
    let deadline = Instant::now() + Duration::from_secs(5);
    let listener = loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => break listener,
            Err(err) => assert!(Instant::now() < deadline, "bind {addr}: {err}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    })
}

async fn wait_until(app: &TestApp, what: &str, within: Duration, check: impl Fn(f64, u16) -> bool) {
    let deadline = Instant::now() + within;
    loop {
        let health = app.metric("health_status").await;
        let ready = app.get("/readyz").await.0;
        if check(health, ready) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: health_status {health}, /readyz {ready}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An aggregator whose PostgreSQL is reached through a proxy the test can cut, on a calls
/// topic of `partitions`, once `calls` calls (seeded with `seed`) are stored.
struct Proxied {
    names: Names,
    bootstrap: String,
    db: TestDb,
    proxy: PgProxy,
    app: TestApp,
    stored: Expected,
}

impl Proxied {
    async fn start(partitions: i32, calls: usize, seed: u64) -> Self {
        let Setup(names, bootstrap, db) = setup(partitions).await;
        let proxy = PgProxy::start("127.0.0.1:0".parse().unwrap()).await;
        let proxied_url = db.url.replace("127.0.0.1:5432", &proxy.addr.to_string());
        assert_ne!(
            proxied_url, db.url,
            "TEST_DATABASE_URL must use 127.0.0.1:5432"
        );
        let app = TestApp::spawn(args(&bootstrap, &proxied_url, &names)).await;
        let stored = produce_calls(&bootstrap, &names.calls, calls, seed);
        db.wait_for_offsets(&names.group, stored.calls, Duration::from_secs(60))
            .await;
        Self {
            names,
            bootstrap,
            db,
            proxy,
            app,
            stored,
        }
    }

    /// A second member of the group, reaching PostgreSQL directly.
    async fn other_member(&self) -> TestApp {
        TestApp::spawn(args(&self.bootstrap, &self.db.url, &self.names)).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_drops_health_and_loses_nothing_after_recovery() {
    let Proxied {
        names,
        bootstrap,
        db,
        proxy,
        app,
        stored: first,
    } = Proxied::start(3, 2_000, 3).await;
    wait_until(&app, "healthy", Duration::from_secs(10), |h, r| {
        h == 1.0 && r == 200
    })
    .await;

    // Outage: the aggregator keeps consuming into memory, health drops, /readyz says why.
    proxy.cut();
    let second = produce_calls(&bootstrap, &names.calls, 3_000, 4);
    wait_until(&app, "unhealthy", Duration::from_secs(20), |h, r| {
        h == 0.0 && r == 503
    })
    .await;
    assert!(
        app.metric(r#"aggregator_flush_errors_total{kind="postgres"}"#)
            .await
            >= 1.0
    );
    assert_eq!(
        db.stored_offsets(&names.group).await,
        2_000,
        "nothing committed during the outage"
    );

    // Recovery on the same address: everything lands, once.
    let _restored = PgProxy::start(proxy.addr).await;
    db.wait_for_offsets(&names.group, 5_000, Duration::from_secs(60))
        .await;
    wait_until(&app, "healthy again", Duration::from_secs(20), |h, r| {
        h == 1.0 && r == 200
    })
    .await;
    assert_stored_exactly(&db, first.and(second)).await;
    app.stop().await;
}

/// Connections that go silent under load (no answer, no FIN, no RST: what keepalives cannot
/// tell from a busy server while the far kernel still acknowledges) cost an attempt deadline
/// each: the attempt is cancelled, its connection discarded, and the batch stored on a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_frozen_under_load_cost_a_deadline_and_lose_nothing() {
    let Setup(names, bootstrap, db) = setup(3).await;
    let proxy = PgProxy::start("127.0.0.1:0".parse().unwrap()).await;
    let proxied_url = db.url.replace("127.0.0.1:5432", &proxy.addr.to_string());
    let mut args = args(&bootstrap, &proxied_url, &names);
    args.extend(["--agg-flush-timeout-secs".into(), "2".into()]);
    let app = TestApp::spawn(args).await;
    let first = produce_calls(&bootstrap, &names.calls, 2_000, 5);
    db.wait_for_offsets(&names.group, first.calls, Duration::from_secs(60))
        .await;

    // Under load, every open connection freezes (the pooled ones and the in-flight flush's).
    let (b, topic) = (bootstrap.clone(), names.calls.clone());
    let load = std::thread::spawn(move || produce_calls(&b, &topic, 20_000, 6));
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.freeze();
    let frozen_at = Instant::now();
    let second = tokio::task::spawn_blocking(move || load.join().unwrap())
        .await
        .unwrap();
    // Bound: one 2 s deadline per frozen connection (at most the pool's 4), plus backoff.
    db.wait_for_offsets(
        &names.group,
        first.calls + second.calls,
        Duration::from_secs(30),
    )
    .await;
    println!(
        "stored everything {:?} after the freeze",
        frozen_at.elapsed()
    );
    assert!(
        app.metric(r#"aggregator_flush_errors_total{kind="timeout"}"#)
            .await
            >= 1.0,
        "a flush met a frozen connection"
    );
    assert_stored_exactly(&db, first.and(second)).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_outage_makes_readyz_503_until_the_broker_returns() {
    // A broker of this test's own: it is killed, then restarted on the same data.
    let kafka = testkit::broker::Broker::start(Default::default());
    let Spawned(names, bootstrap, db, app) = spawn_app().on(&kafka.bootstrap()).await;
    wait_until(&app, "ready", Duration::from_secs(30), |h, r| {
        h == 1.0 && r == 200
    })
    .await;

    kafka.kill();
    wait_until(&app, "broker down", Duration::from_secs(30), |h, r| {
        h == 0.0 && r == 503
    })
    .await;
    let (_, body) = app.get("/readyz").await;
    assert!(body.contains("kafka"), "{body}");

    kafka.restart();
    wait_until(&app, "broker back", Duration::from_secs(30), |h, r| {
        h == 1.0 && r == 200
    })
    .await;
    let expected = produce_calls(&bootstrap, &names.calls, 500, 5);
    db.wait_for_offsets(&names.group, 500, Duration::from_secs(60))
        .await;
    assert_stored_exactly(&db, expected).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_assigned_while_postgres_is_down_wait_paused_and_resume_from_their_stored_offsets()
 {
    const ASSIGNED: &str = "aggregator_assigned_partitions";
    let proxied = Proxied::start(4, 2_000, 61).await;
    let (a, db, names) = (&proxied.app, &proxied.db, &proxied.names);

    // A loses PostgreSQL, then a second member joins: A cannot read the stored offsets of its
    // share of the new assignment. The group settles all the same (A's rebalance callback
    // does not wait for PostgreSQL), A's share paused.
    proxied.proxy.cut();
    let b = proxied.other_member().await;
    let total = consumed_partitions(4);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (pa, pb) = (a.metric(ASSIGNED).await, b.metric(ASSIGNED).await);
        let pending = a.metric("aggregator_partitions_pending").await;
        if pa > 0.0 && pb > 0.0 && pa + pb == total && pending == pa {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "group did not settle while A's PostgreSQL was down: {pa} ({pending} pending) + {pb}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // B stores its share meanwhile.
    let second = produce_calls(&proxied.bootstrap, &names.calls, 3_000, 62);
    b.wait_metric_where("aggregator_calls_total", Duration::from_secs(30), |v| {
        v > 0.0
    })
    .await;
    assert_eq!(
        a.metric("aggregator_calls_total").await,
        2_000.0,
        "A stored nothing more"
    );

    // A's PostgreSQL returns: its partitions resume from their stored offsets, and every call
    // is stored once.
    let _restored = PgProxy::start(proxied.proxy.addr).await;
    db.wait_for_offsets(&names.group, 5_000, Duration::from_secs(60))
        .await;
    assert_stored_exactly(db, proxied.stored.and(second)).await;
    assert_eq!(a.metric("aggregator_partitions_pending").await, 0.0);
    b.stop().await;
    proxied.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_partitions_wait_for_a_hung_postgres_is_prompt_and_the_other_member_takes_over()
 {
    let proxied = Proxied::start(4, 1_000, 71).await;
    proxied.proxy.cut();
    let hung = hang_at(proxied.proxy.addr).await;
    let b = proxied.other_member().await;
    let pending = "aggregator_partitions_pending";
    (proxied.app)
        .wait_metric_where(pending, Duration::from_secs(30), |v| v > 0.0)
        .await;
    let Proxied {
        names,
        bootstrap,
        db,
        app: a,
        stored: first,
        ..
    } = proxied;

    // A stops while its partitions wait: it does not wait for PostgreSQL on the way out (a
    // read of their offsets would hang for 5 s).
    let stopping = Instant::now();
    a.stop().await;
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(3), "stop took {took:?}");
    hung.abort();
    // B takes everything over and stores what follows, once.
    let second = produce_calls(&bootstrap, &names.calls, 2_000, 72);
    db.wait_for_offsets(&names.group, 3_000, Duration::from_secs(60))
        .await;
    assert_stored_exactly(&db, first.and(second)).await;
    b.stop().await;
}
