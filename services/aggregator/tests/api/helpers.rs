//! `spawn_app()` and friends: a fresh database, broker, topics and group per test.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::time::{Duration, Instant};

use aggregator::Application;
use aggregator::config::Config;
use call_simulator::generator::CallGenerator;
use clap::Parser as _;
use std::collections::HashMap;

use fleet::events::{HostSample, HostValue, Unit};
use rand::{Rng, SeedableRng};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

/// The server tests connect to; `DATABASE_URL` (any database on it) overrides.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

fn url_for(db: &str) -> String {
    let admin = admin_url();
    let base = admin
        .rsplit_once('/')
        .map_or(admin.as_str(), |(b, _)| b)
        .to_string();
    format!("{base}/{db}")
}

/// A database of its own for one test.
pub struct TestDb {
    pub url: String,
    pub client: tokio_postgres::Client,
}

impl TestDb {
    pub async fn create() -> Self {
        let name = format!("agg_test_{}", uuid::Uuid::new_v4().simple());
        let (admin, conn) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
            .await
            .expect("connect to the test PostgreSQL server (scripts/test.sh starts one)");
        tokio::spawn(conn);
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let url = url_for(&name);
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        Self { url, client }
    }

    /// `(sum of calls, sum of durations in ms, long calls)` over `call_stats_1m`.
    pub async fn window_totals(&self) -> (i64, i64, i64) {
        let row = self
            .client
            .query_one(
                "SELECT coalesce(sum(calls),0)::bigint, coalesce(sum(duration_sum_ms),0)::bigint, \
                 coalesce(sum(long_calls),0)::bigint FROM call_stats_1m",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1), row.get(2))
    }

    /// The first column of every row `sql` returns.
    pub async fn column<T: for<'a> tokio_postgres::types::FromSql<'a>>(&self, sql: &str) -> Vec<T> {
        let rows = self.client.query(sql, &[]).await.unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    }

    pub async fn long_call_rows(&self) -> i64 {
        self.client
            .query_one("SELECT count(*) FROM long_calls", &[])
            .await
            .unwrap()
            .get(0)
    }

    /// Sum of stored next offsets = messages covered by committed flushes.
    pub async fn stored_offsets(&self, group: &str) -> i64 {
        let q =
            "SELECT coalesce(sum(next_offset),0)::bigint FROM consumer_offsets WHERE group_id = $1";
        match self.client.query_one(q, &[&group]).await {
            Ok(row) => row.get(0),
            Err(_) => 0, // table not migrated yet
        }
    }

    /// Waits (bounded) until committed flushes cover `messages` messages.
    pub async fn wait_for_offsets(&self, group: &str, messages: i64, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let stored = self.stored_offsets(group).await;
            if stored >= messages {
                assert_eq!(stored, messages, "more offsets stored than messages exist");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "only {stored} of {messages} messages flushed in {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Names unique to one test.
pub struct Names {
    pub calls: String,
    pub hosts: String,
    pub probes: String,
    pub dlq: String,
    pub group: String,
}

impl Names {
    pub fn new() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self {
            calls: format!("calls-{id}"),
            hosts: format!("hosts-{id}"),
            probes: format!("probes-{id}"),
            dlq: format!("dlq-{id}"),
            group: format!("agg-{id}"),
        }
    }

    /// Each consumed topic's setting and this test's name for it.
    pub fn topics(&self) -> [(&'static str, &str); 3] {
        [
            ("CALLS_TOPIC", &self.calls),
            ("HOST_METRICS_TOPIC", &self.hosts),
            ("PROBES_TOPIC", &self.probes),
        ]
    }
}

/// Partitions of the host-metrics topic in tests.
pub const HOST_PARTITIONS: i32 = 2;

/// The test's topics on the broker at `bootstrap`.
pub fn create_topics(bootstrap: &str, names: &Names, partitions: i32) {
    testkit::kafka::create_topics(
        bootstrap,
        &[
            (&names.calls, partitions),
            (&names.hosts, HOST_PARTITIONS),
            (&names.probes, 1),
            (&names.dlq, 1),
        ],
    );
}

/// Partitions an aggregator group is assigned when the calls topic has `calls`: those of
/// [`create_topics`] but the dead-letter topic's.
pub fn consumed_partitions(calls: i32) -> f64 {
    f64::from(calls + HOST_PARTITIONS + 1)
}

/// Aggregator arguments for the test's broker, database and names.
pub fn args(bootstrap: &str, db_url: &str, names: &Names) -> Vec<String> {
    // CALLS_TOPIC is --calls-topic.
    let topics = names.topics().into_iter().flat_map(|(setting, name)| {
        let flag = format!("--{}", setting.to_lowercase().replace('_', "-"));
        [flag, name.to_string()]
    });
    let head = [
        "aggregator",
        "--kafka-bootstrap-servers",
        bootstrap,
        "--database-url",
        db_url,
    ];
    let tail = [
        "--dlq-topic",
        &names.dlq,
        "--consumer-group",
        &names.group,
        "--metrics-addr",
        "127.0.0.1:0",
        "--agg-flush-interval-ms",
        "100",
    ];
    let (head, tail) = (head.map(String::from), tail.map(String::from));
    head.into_iter().chain(topics).chain(tail).collect()
}

/// What a test starts from: names of its own, their topics on a broker (its bootstrap address),
/// and a database of its own. [`setup`] makes one for a test that runs the aggregator its own
/// way; [`spawn_app`] makes one and runs an aggregator on it. The fields' types differ: a
/// pattern that mixes them up does not compile.
pub struct Setup(pub Names, pub String, pub TestDb);

/// A [`Setup`] on the run's broker, the calls topic with `partitions`.
pub async fn setup(partitions: i32) -> Setup {
    setup_on(&testkit::kafka::bootstrap(), partitions).await
}

/// A [`Setup`] on the broker at `bootstrap` (a test's own).
pub async fn setup_on(bootstrap: &str, partitions: i32) -> Setup {
    let names = Names::new();
    create_topics(bootstrap, &names, partitions);
    let db = TestDb::create().await;
    Setup(names, bootstrap.to_string(), db)
}

/// A [`Setup`] with an aggregator running on it: `Spawned(names, bootstrap, db, app)`.
pub struct Spawned(pub Names, pub String, pub TestDb, pub TestApp);

/// An aggregator in this process on a fresh [`Setup`]: the run's broker, one partition for the
/// calls, the arguments of [`args`]. Await it; the builder's methods vary it first.
pub fn spawn_app() -> SpawnApp {
    SpawnApp {
        partitions: 1,
        bootstrap: None,
        args: Vec::new(),
        trace: false,
    }
}

/// How [`spawn_app`] sets the aggregator up.
pub struct SpawnApp {
    partitions: i32,
    bootstrap: Option<String>,
    args: Vec<String>,
    trace: bool,
}

impl SpawnApp {
    /// Partitions of the calls topic.
    pub fn partitions(mut self, partitions: i32) -> Self {
        self.partitions = partitions;
        self
    }

    /// The broker at `bootstrap` (a test's own) instead of the run's.
    pub fn on(mut self, bootstrap: &str) -> Self {
        self.bootstrap = Some(bootstrap.to_string());
        self
    }

    /// Arguments after those of [`args`].
    pub fn args<const N: usize>(mut self, args: [&str; N]) -> Self {
        self.args.extend(args.map(String::from));
        self
    }

    /// Continue the producers' traces found in message headers.
    pub fn traced(mut self) -> Self {
        self.trace = true;
        self
    }
}

impl IntoFuture for SpawnApp {
    type Output = Spawned;
    type IntoFuture = Pin<Box<dyn Future<Output = Spawned> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let bootstrap = self.bootstrap.unwrap_or_else(testkit::kafka::bootstrap);
            let Setup(names, bootstrap, db) = setup_on(&bootstrap, self.partitions).await;
            let mut args = args(&bootstrap, &db.url, &names);
            args.extend(self.args);
            let app = TestApp::spawn_with_trace(args, self.trace).await;
            Spawned(names, bootstrap, db, app)
        })
    }
}

/// An aggregator running in this process; stopped (its token cancelled) when dropped, so that a
/// test that panics does not hang in the runtime's teardown, waiting for its consume thread.
pub struct TestApp {
    pub port: u16,
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<anyhow::Result<()>>,
    _stop_on_drop: DropGuard,
}

impl TestApp {
    pub async fn spawn(args: Vec<String>) -> Self {
        Self::spawn_with_trace(args, false).await
    }

    /// `trace`: continue the producers' traces found in message headers.
    pub async fn spawn_with_trace(args: Vec<String>, trace: bool) -> Self {
        let config = Config::try_parse_from(args).unwrap();
        let app = Application::build(config).await.unwrap();
        let port = app.port();
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(app.run_until_stopped(shutdown.clone(), trace));
        Self {
            port,
            _stop_on_drop: shutdown.clone().drop_guard(),
            shutdown,
            handle,
        }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("http://127.0.0.1:{}{path}", self.port))
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// The value of the series `name{label="value",...}` selects on `/metrics`; 0 when absent.
    pub async fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.get("/metrics").await;
        let scrape = testkit::prom::parse(&body).unwrap();
        scrape.value(name).unwrap_or(0.0)
    }

    /// Waits (bounded) for `name` to reach `value`.
    pub async fn wait_metric(&self, name: &str, value: f64, within: Duration) {
        self.wait_metric_where(name, within, |v| (v - value).abs() < 1e-9)
            .await;
    }

    /// Waits (bounded) until `check` holds for the metric's value, and returns that value.
    pub async fn wait_metric_where(
        &self,
        name: &str,
        within: Duration,
        check: impl Fn(f64) -> bool,
    ) -> f64 {
        let deadline = Instant::now() + within;
        loop {
            let current = self.metric(name).await;
            if check(current) {
                return current;
            }
            assert!(
                Instant::now() < deadline,
                "{name} = {current}, not as expected within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("stops within 10 s")
            .unwrap()
            .unwrap();
    }
}

/// What a produced stream adds up to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    pub calls: i64,
    pub duration_ms: i64,
    pub long_calls: i64,
}

impl Expected {
    /// What two inputs add up to.
    pub fn and(self, other: Self) -> Self {
        Self {
            calls: self.calls + other.calls,
            duration_ms: self.duration_ms + other.duration_ms,
            long_calls: self.long_calls + other.long_calls,
        }
    }
}

/// Produces `n` simulated calls (seeded) keyed by caller and waits for delivery.
pub fn produce_calls(bootstrap: &str, topic: &str, n: usize, seed: u64) -> Expected {
    // The stream spans n/rate seconds ending about now, inside the accepted lateness.
    let rate = 1000.0;
    let origin = chrono::Utc::now() - chrono::TimeDelta::seconds((n as f64 / rate) as i64 + 1);
    let mut generator = CallGenerator::new(rate, 120.0, seed, origin);
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let mut expected = Expected::default();
    for _ in 0..n {
        let call = generator.next_call().event;
        let payload = serde_json::to_vec(&call).unwrap();
        let record = BaseRecord::to(topic)
            .key(call.caller.as_bytes())
            .payload(&payload);
        producer.send(record).map_err(|(e, _)| e).unwrap();
        let ms = (call.duration_secs * 1000.0).round() as i64;
        expected.calls += 1;
        expected.duration_ms += ms;
        expected.long_calls += i64::from(ms > 60_000);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    expected
}

/// Produces raw messages `(key, payload)` and waits for delivery.
pub fn produce_raw(bootstrap: &str, topic: &str, messages: &[(Option<&[u8]>, Option<&[u8]>)]) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    for (key, payload) in messages {
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
        if let Some(k) = key {
            record = record.key(*k);
        }
        if let Some(p) = payload {
            record = record.payload(*p);
        }
        producer.send(record).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// Checks the database against what was produced, exactly.
pub async fn assert_stored_exactly(db: &TestDb, expected: Expected) {
    let (calls, duration_ms, long_calls) = db.window_totals().await;
    assert_eq!(
        Expected {
            calls,
            duration_ms,
            long_calls
        },
        expected,
        "call_stats_1m totals"
    );
    assert_eq!(
        db.long_call_rows().await,
        expected.long_calls,
        "long_calls rows"
    );
    let totals = db
        .client
        .query_one(
            "SELECT calls, duration_ms, long_calls FROM call_totals",
            &[],
        )
        .await
        .unwrap();
    let (c, d, l): (i64, i64, i64) = (totals.get(0), totals.get(1), totals.get(2));
    assert_eq!(
        Expected {
            calls: c,
            duration_ms: d,
            long_calls: l
        },
        expected,
        "call_totals"
    );
    assert_rollups_match(db, "call_stats", CALL_HOURS).await;
}

/// How the test folds the windows of an hour (after the key columns, `keys` of them), and
/// the columns of an hourly row to compare with: its own fold, not the code's.
pub struct Hours {
    pub keys: usize,
    pub fold: &'static str,
    pub columns: &'static str,
}

pub const CALL_HOURS: Hours = Hours {
    keys: 0,
    fold: "sum(calls), sum(duration_sum_ms), min(duration_min_ms), max(duration_max_ms), \
           sum(long_calls)",
    columns: "calls, duration_sum_ms, duration_min_ms, duration_max_ms, long_calls",
};
pub const HOST_HOURS: Hours = Hours {
    keys: 3,
    fold: "host, metric, device, sum(samples), sum(sum), min(min), max(max), max(last_time), \
           (array_agg(last ORDER BY last_time DESC))[1]",
    columns: "host, metric, device, samples, sum, min, max, last_time, last",
};
/// Latency sums are compared rounded: the flush adds them in another order.
pub const PROBE_HOURS: Hours = Hours {
    keys: 1,
    fold: "url, sum(checks), sum(ok), sum(timeouts), sum(dns_errors), sum(connect_errors), \
           sum(tls_errors), sum(http_status_errors), sum(regex_mismatches), sum(body_errors), \
           round(sum(latency_sum_seconds)::numeric, 6), min(latency_min_seconds), \
           max(latency_max_seconds)",
    columns: "url, checks, ok, timeouts, dns_errors, connect_errors, tls_errors, \
              http_status_errors, regex_mismatches, body_errors, \
              round(latency_sum_seconds::numeric, 6), latency_min_seconds, latency_max_seconds",
};

/// `<prefix>_1h` holds exactly the windows of `<prefix>_1m` folded by the hour they start in
/// ([`Hours`]): every hour, nothing more, nothing less.
pub async fn assert_rollups_match(db: &TestDb, prefix: &str, hours: Hours) {
    let Hours {
        keys,
        fold,
        columns,
    } = hours;
    let group = (1..=keys + 1).map(|i| i.to_string()).collect::<Vec<_>>();
    let group = group.join(", ");
    let sql = format!(
        "WITH minutes AS (
            SELECT date_trunc('hour', window_start) AS hour, {fold}
            FROM {prefix}_1m GROUP BY {group}
         ), hours AS (
            SELECT window_start AS hour, {columns} FROM {prefix}_1h
         )
         SELECT (SELECT count(*) FROM (TABLE minutes EXCEPT TABLE hours) a),
                (SELECT count(*) FROM (TABLE hours EXCEPT TABLE minutes) b),
                (SELECT count(*) FROM hours),
                (SELECT count(*) FROM {prefix}_1h WHERE window_secs <> 3600)"
    );
    let row = db.client.query_one(&sql, &[]).await.unwrap();
    let (missing, extra, hours, wrong): (i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(
        (missing, extra, wrong),
        (0, 0, 0),
        "{prefix}_1h against {prefix}_1m: {missing} hours of the minutes not in the hours, \
         {extra} hours not in the minutes, {wrong} rows not of 3600 s ({hours} hours)"
    );
}

/// What a produced set of host samples adds up to. Values are whole numbers, so every sum is
/// exact in `f64` whatever the order of addition.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct HostExpected {
    pub samples: i64,
    pub values: i64,
    pub value_sum: f64,
}

/// Produces `n` seeded samples from three hosts, one second apart and ending now, keyed by host.
/// Their times end on `seed` milliseconds past a whole second: calls with other seeds (below
/// 1,000) never share a host and a millisecond, which is one sample to the aggregator, stored
/// once. Calls a few seconds apart with times at "now" once in a while did, and lost a round.
pub fn produce_host_samples(bootstrap: &str, topic: &str, n: usize, seed: u64) -> HostExpected {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let end = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() - 1, 0).unwrap()
        + chrono::TimeDelta::milliseconds((seed % 1000) as i64);
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let mut expected = HostExpected::default();
    for i in 0..n {
        let host = format!("host-{}", i % 3);
        // Per host, times are distinct (one sample per second per host).
        let time = end - chrono::TimeDelta::seconds((n - i) as i64);
        let mut metrics = vec![HostValue {
            metric: "cpu_usage".into(),
            device: String::new(),
            value: f64::from(rng.random_range(0..=100u32)),
            unit: Unit::Percent,
        }];
        for core in 0..4 {
            metrics.push(HostValue {
                metric: "cpu_core_usage".into(),
                device: format!("cpu{core}"),
                value: f64::from(rng.random_range(0..=100u32)),
                unit: Unit::Percent,
            });
        }
        metrics.push(HostValue {
            metric: "memory_available".into(),
            device: String::new(),
            value: f64::from(rng.random_range(1..=1u32 << 30)),
            unit: Unit::Bytes,
        });
        expected.samples += 1;
        expected.values += metrics.len() as i64;
        expected.value_sum += metrics.iter().map(|v| v.value).sum::<f64>();
        let sample = HostSample {
            schema_version: 1,
            host: host.clone(),
            time,
            metrics,
        };
        let payload = serde_json::to_vec(&sample).unwrap();
        let record = BaseRecord::to(topic).key(host.as_bytes()).payload(&payload);
        producer.send(record).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    expected
}

/// Checks `system_metrics` and `host_metrics_1m` against what was produced, exactly.
pub async fn assert_hosts_stored_exactly(db: &TestDb, expected: HostExpected) {
    let raw = db
        .client
        .query_one(
            "SELECT count(*), coalesce(sum(value), 0), count(DISTINCT (host, time)) \
             FROM system_metrics",
            &[],
        )
        .await
        .unwrap();
    let (values, sum, samples): (i64, f64, i64) = (raw.get(0), raw.get(1), raw.get(2));
    assert_eq!(
        HostExpected {
            samples,
            values,
            value_sum: sum
        },
        expected,
        "system_metrics"
    );
    let windows = db
        .client
        .query_one(
            "SELECT coalesce(sum(samples), 0)::bigint, coalesce(sum(sum), 0) FROM host_metrics_1m",
            &[],
        )
        .await
        .unwrap();
    let (values, sum): (i64, f64) = (windows.get(0), windows.get(1));
    assert_eq!(
        (values, sum),
        (expected.values, expected.value_sum),
        "host_metrics_1m"
    );
    assert_rollups_match(db, "host_metrics", HOST_HOURS).await;
}

/// Messages ever written to partition 0 of `topic` (its high watermark).
pub fn topic_end(bootstrap: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .unwrap()
        .1
}

/// Reads `n` messages from the start of `topic`: (headers, payload).
pub fn read_topic(
    bootstrap: &str,
    topic: &str,
    n: usize,
) -> Vec<(HashMap<String, String>, Option<Vec<u8>>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("reader-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "read {} of {n} from {topic}",
            out.len()
        );
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            let headers = message
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_string(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push((headers, message.payload().map(<[u8]>::to_vec)));
        }
    }
    out
}
