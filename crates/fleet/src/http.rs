//! The HTTP face of every service: `GET /metrics` (Prometheus text format), `GET /livez`
//! (the process answers) and `GET /readyz` (503 until the service can do its job).

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

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

/// Serves `router` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

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
}
