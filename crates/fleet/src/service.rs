//! The one service runner: the start-up and shutdown every service shares, so that each
//! supplies only its own loop. [`Runner::start`] serves the metrics and health endpoint and
//! prepares what every Kafka client of the service starts from (bootstrap, `KAFKA_*`
//! passthrough, the broker watch feeding the `kafka` health check);
//! [`Runner::with_topics`] creates the service's topics (or tears down if the stop comes first); [`Runner::spawn`] runs a background
//! task until teardown. [`Runner::stop`] tears down in reverse order of start, each task
//! awaited, the HTTP server last, so `/metrics` and `/readyz` answer until the very end. An
//! error that leaves the service's code early drops the runner, which cancels the same tasks
//! in the same order (without waiting for them): nothing keeps running after a failed start.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::Router;
use rdkafka::ClientConfig;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::CommonArgs;
use crate::health::Health;
use crate::http::Endpoint;
use crate::kafka::{BrokerWatch, TopicsError};

/// A started service (see the module docs).
#[derive(Debug)]
pub struct Runner {
    pub health: Health,
    pub watch: BrokerWatch,
    /// The settings every Kafka client of the service starts from.
    pub kafka: ClientConfig,
    /// Fires when the service is asked to stop.
    pub shutdown: CancellationToken,
    partitions: i32,
    replication: i32,
    /// In the order they started.
    tasks: Vec<Task>,
}

#[derive(Debug)]
struct Task {
    name: &'static str,
    stop: CancellationToken,
    handle: JoinHandle<()>,
}

impl Runner {
    /// Serves `endpoint` (`/metrics`, `/livez`, `/readyz`) and prepares the Kafka client
    /// settings of `common`.
    pub fn start(endpoint: Endpoint, common: &CommonArgs, shutdown: CancellationToken) -> Self {
        Self::start_with(endpoint, Router::new(), common, shutdown)
    }

    /// [`Runner::start`], with the service's own `routes` served beside the three.
    pub fn start_with(
        endpoint: Endpoint,
        routes: Router,
        common: &CommonArgs,
        shutdown: CancellationToken,
    ) -> Self {
        let health = endpoint.health.clone();
        let stop = CancellationToken::new();
        let server = endpoint.spawn_with(routes, stop.clone());
        let handle = tokio::spawn(async move {
            match server.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::error!(%err, "HTTP server failed"),
                Err(err) => tracing::error!(%err, "HTTP server panicked"),
            }
        });
        Self {
            watch: BrokerWatch::new(health.clone()),
            health,
            kafka: crate::kafka::client_config(&common.kafka_bootstrap_servers),
            shutdown,
            partitions: common.kafka_topic_partitions,
            replication: common.kafka_topic_replication_factor,
            tasks: vec![Task {
                name: "http",
                stop,
                handle,
            }],
        }
    }

    /// Creates the `topics` that do not exist yet, waiting for the broker (see
    /// [`crate::kafka::ensure_topics`]), and gives the runner back. `Ok(None)`: the stop came
    /// first, and the runner is torn down already; the service ends without having started.
    pub async fn with_topics(self, topics: &[&str]) -> Result<Option<Self>, TopicsError> {
        let ready = crate::kafka::ensure_topics(
            &self.kafka,
            &self.watch,
            topics,
            self.partitions,
            self.replication,
            &self.shutdown,
        )
        .await?;
        if ready {
            Ok(Some(self))
        } else {
            self.stop().await;
            Ok(None)
        }
    }

    /// Runs `task` until teardown cancels the token it is given; stopped before the tasks
    /// spawned earlier.
    pub fn spawn<F>(&mut self, name: &'static str, task: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let stop = CancellationToken::new();
        let handle = tokio::spawn(task(stop.clone()));
        self.tasks.push(Task { name, stop, handle });
    }

    /// Keeps the health check `check` (registered by the service) true to its deliveries: it
    /// fails while `waiting` says messages wait and `delivered` has not moved for `limit` (see
    /// [`crate::health::watch_deliveries`]).
    pub fn watch_deliveries(
        &mut self,
        check: &'static str,
        delivered: Arc<AtomicU64>,
        waiting: impl Fn() -> bool + Send + 'static,
        limit: Duration,
    ) {
        let health = self.health.clone();
        self.spawn("delivery monitor", move |stop| {
            crate::health::watch_deliveries(health, check, delivered, waiting, limit, stop)
        });
    }

    /// Tears down in reverse order of start, awaiting each task.
    pub async fn stop(mut self) {
        while let Some(task) = self.tasks.pop() {
            task.stop.cancel();
            if let Err(err) = task.handle.await {
                tracing::error!(task = task.name, %err, "task panicked");
            }
        }
    }
}

impl Drop for Runner {
    /// Left without [`Runner::stop`] (an error): every task is told to stop, in reverse order.
    fn drop(&mut self) {
        for task in self.tasks.iter().rev() {
            task.stop.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A started runner and its HTTP port.
    async fn runner() -> (Runner, u16) {
        let endpoint = Endpoint::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let port = endpoint.port();
        let common = CommonArgs {
            kafka_bootstrap_servers: "127.0.0.1:1".into(),
            kafka_topic_partitions: 1,
            kafka_topic_replication_factor: 1,
            metrics_addr: None,
            log_format: crate::config::LogFormat::Text,
        };
        let runner = Runner::start(endpoint, &common, CancellationToken::new());
        (runner, port)
    }

    /// Whether the HTTP server still accepts connections, waiting up to a second for it to go.
    async fn still_serving(port: u16) -> bool {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        true
    }

    /// A task that notes its name in `order` when told to stop.
    fn noting(
        order: &Arc<Mutex<Vec<&'static str>>>,
        name: &'static str,
    ) -> impl FnOnce(CancellationToken) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
        let order = Arc::clone(order);
        move |stop| {
            Box::pin(async move {
                stop.cancelled().await;
                order.lock().unwrap().push(name);
            })
        }
    }

    #[tokio::test]
    async fn teardown_runs_in_reverse_order_of_start_and_the_server_goes_last() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let (mut runner, port) = runner().await;
        runner.spawn("first", noting(&order, "first"));
        runner.spawn("second", noting(&order, "second"));
        assert!(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        );
        runner.stop().await;
        assert_eq!(*order.lock().unwrap(), ["second", "first"]);
        assert!(!still_serving(port).await, "the HTTP server stopped");
    }

    #[tokio::test]
    async fn a_runner_left_by_an_error_stops_its_tasks_and_its_server() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let (mut runner, port) = runner().await;
        runner.spawn("task", noting(&order, "task"));
        let task = runner.tasks[1].handle.abort_handle();
        // What a `?` after the start does: the runner goes with the function's other locals.
        fn start_up(runner: Runner) -> Result<(), &'static str> {
            let _runner = runner;
            Err("a start-up step failed")
        }
        assert!(start_up(runner).is_err());
        assert!(!still_serving(port).await, "the HTTP server stopped");
        assert!(task.is_finished());
        assert_eq!(*order.lock().unwrap(), ["task"]);
    }
}
