//! The HTTP face of every service: `GET /metrics` (Prometheus text format), `GET /livez`
//! (the process answers) and `GET /readyz` (503 until the service can do its job).
//!
//! No client can hold the server or a stop: request headers must arrive within
//! [`HEADER_READ_TIMEOUT`], a body within [`BODY_READ_TIMEOUT`], and at a stop the open
//! connections get [`STOP_GRACE`] to finish their requests before they are closed.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::health::Health;

#[derive(Clone)]
struct AppState {
    registry: Registry,
    health: Health,
}

/// What every service's HTTP face starts from: a metrics registry, the health gauges registered
/// in it, and the bound listener. Services register their own metrics in `registry`, then
/// [`spawn`](Endpoint::spawn) it with their own routes merged in.
#[derive(Debug)]
pub struct Endpoint {
    pub registry: Registry,
    pub health: Health,
    listener: TcpListener,
}

impl Endpoint {
    /// Binds `addr` (port 0 picks a free one).
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        let registry = registry()?;
        let health = Health::new(&registry)?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("bind {addr}"))?;
        Ok(Self {
            registry,
            health,
            listener,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves `/metrics`, `/livez` and `/readyz` until `shutdown`.
    pub fn spawn(self, shutdown: CancellationToken) -> JoinHandle<std::io::Result<()>> {
        self.spawn_with(Router::new(), shutdown)
    }

    /// Serves the three endpoints and the service's own `routes` until `shutdown`.
    pub fn spawn_with(
        self,
        routes: Router,
        shutdown: CancellationToken,
    ) -> JoinHandle<std::io::Result<()>> {
        let router = router(self.registry, self.health).merge(routes);
        tokio::spawn(serve(self.listener, router, shutdown))
    }
}

/// A registry with the process collector every exporter has (`process_cpu_seconds_total`,
/// `process_resident_memory_bytes`, `process_open_fds`, …), so a service's own cost is visible
/// next to what it measures.
fn registry() -> prometheus::Result<Registry> {
    let registry = Registry::new();
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    Ok(registry)
}

/// The router with the three endpoints. Services `merge` their own routes into it.
pub fn router(registry: Registry, health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(AppState { registry, health })
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut body = Vec::with_capacity(16 * 1024);
    match TextEncoder::new().encode(&state.registry.gather(), &mut body) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
            body,
        )
            .into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.health.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(failing) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready\n{failing}\n"),
        ),
    }
}

/// How long a client may take to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's body.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long, at a stop, open connections get to finish the requests they are serving.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// Serves `router` until `shutdown` is cancelled (see the module docs for the bounds).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let router = router.layer(RequestBodyTimeoutLayer::new(BODY_READ_TIMEOUT));
    let connections = TaskTracker::new();
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of descriptors, or a connection reset before it was accepted: the
                    // listener itself is fine.
                    tracing::debug!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let service = router
            .clone()
            .map_request(|request: axum::http::Request<Incoming>| {
                request.map(axum::body::Body::new)
            });
        let stop = shutdown.clone();
        connections.spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(STOP_GRACE, connection).await;
                }
            }
        });
    }
    connections.close();
    // Each connection task bounds itself; this bound is for a task that would not.
    let _ = tokio::time::timeout(STOP_GRACE * 2, connections.wait()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::time::Instant;

    async fn get_path(app: Router, path: &str) -> (StatusCode, String) {
        let response = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn readyz_is_503_until_readiness_checks_pass_and_metrics_has_help_and_type() {
        let registry = registry().unwrap();
        let health = Health::new(&registry).unwrap();
        health.register("kafka", true);
        let app = router(registry, health.clone());

        let (status, body) = get_path(app.clone(), "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("kafka: starting"), "{body}");

        health.pass("kafka");
        assert_eq!(get_path(app.clone(), "/readyz").await.0, StatusCode::OK);
        assert_eq!(get_path(app.clone(), "/livez").await.0, StatusCode::OK);

        let (status, body) = get_path(app, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("# HELP health_status "), "{body}");
        assert!(body.contains("# TYPE health_status gauge"), "{body}");
        assert!(body.contains("\nhealth_status 1\n"), "{body}");
        let rss = body
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .and_then(|v| v.parse::<f64>().ok());
        assert!(rss.is_some_and(|b| b > 0.0), "{body}");
    }

    /// A real server with a route that reads a body.
    async fn start() -> (
        SocketAddr,
        CancellationToken,
        JoinHandle<std::io::Result<()>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let routes =
            Router::new().route("/echo", axum::routing::post(|body: String| async { body }));
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(listener, routes, stop.clone()));
        (addr, stop, server)
    }

    /// Sends `request` and reads until the server answers or closes.
    async fn send_and_read(addr: SocketAddr, request: &str) -> (TcpStream, Vec<u8>) {
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(request.as_bytes()).await.unwrap();
        let mut answer = vec![0; 1024];
        let n = client.read(&mut answer).await.unwrap_or(0);
        answer.truncate(n);
        (client, answer)
    }

    #[tokio::test]
    async fn a_client_trickling_headers_or_a_body_is_cut_off() {
        let (addr, _stop, _server) = start().await;
        let started = Instant::now();
        let headers = send_and_read(addr, "POST /echo HTTP/1.1\r\nHost: x\r\n");
        let body = send_and_read(
            addr,
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly this",
        );
        let whole = send_and_read(
            addr,
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok",
        );
        let ((_, headers), (_, body), (_, whole)) = tokio::join!(headers, body, whole);
        assert!(String::from_utf8_lossy(&whole).ends_with("\r\n\r\nok"));
        // Closed or refused, within the bounds (plus scheduling slack), not held open.
        let answer = String::from_utf8_lossy(&body);
        assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
        assert!(!String::from_utf8_lossy(&headers).starts_with("HTTP/1.1 2"));
        let took = started.elapsed();
        assert!(
            took >= HEADER_READ_TIMEOUT.min(BODY_READ_TIMEOUT),
            "{took:?}"
        );
        assert!(
            took < HEADER_READ_TIMEOUT.max(BODY_READ_TIMEOUT) + Duration::from_secs(3),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn a_stop_does_not_wait_for_slow_clients() {
        let (addr, stop, server) = start().await;
        let mut slow_headers = TcpStream::connect(addr).await.unwrap();
        slow_headers
            .write_all(b"POST /echo HTTP/1.1\r\n")
            .await
            .unwrap();
        let mut slow_body = TcpStream::connect(addr).await.unwrap();
        (slow_body.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n1"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stopping = Instant::now();
        stop.cancel();
        server.await.unwrap().unwrap();
        let took = stopping.elapsed();
        assert!(
            took <= STOP_GRACE * 2 + Duration::from_millis(500),
            "{took:?}"
        );
    }
}
