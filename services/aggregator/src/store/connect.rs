//! Connection pool from a libpq-style URL. tokio-postgres understands `sslmode=disable|prefer|
//! require`; `verify-ca`/`verify-full` and `sslrootcert` are libpq options it lacks, so they are
//! translated here into OpenSSL settings. As in libpq, `require` encrypts without verifying the
//! certificate, `verify-full` verifies the chain and the host name.
//!
//! Every wait on a connection is bounded ([`Timeouts`]): opening one, waiting for a free one,
//! and a peer that stopped answering (keepalive probes while idle, `tcp_user_timeout` while
//! data is unacknowledged), so a failover, a moved address or a dropped NAT entry is an error
//! within seconds rather than a socket waited on for hours.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use postgres_openssl::MakeTlsConnector;
use tokio_util::sync::CancellationToken;

use crate::db::StoreError;

/// Why a URL could not be turned into a pool.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid URL: {0}")]
    Url(#[from] tokio_postgres::Error),
    #[error("TLS setup: {0}")]
    Tls(#[from] openssl::error::ErrorStack),
    #[error("pool: {0}")]
    Pool(#[from] deadpool_postgres::BuildError),
}

/// Libpq options we handle ourselves, split off the URL.
#[derive(Debug, Default, PartialEq)]
struct TlsOptions {
    verify: Option<&'static str>,
    root_cert: Option<String>,
}

fn split_tls_options(url: &str) -> (String, TlsOptions) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), TlsOptions::default());
    };
    let mut options = TlsOptions::default();
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("sslmode", "verify-full")) => options.verify = Some("verify-full"),
            Some(("sslmode", "verify-ca")) => options.verify = Some("verify-ca"),
            Some(("sslrootcert", path)) => options.root_cert = Some(path.to_string()),
            _ => kept.push(pair),
        }
    }
    if options.verify.is_some() {
        kept.push("sslmode=require");
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, options)
}

/// How long the pool and its connections wait (settings; see `docs/operations.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening a connection: TCP, TLS and authentication (unless the URL sets
    /// `connect_timeout`); also the pool's create timeout.
    pub connect: Duration,
    /// Waiting for a free connection of the pool, and checking a returned one.
    pub pool_wait: Duration,
    /// Idle time before keepalive probes start; probes follow at a third of it, three missed
    /// ones close the connection.
    pub keepalive_idle: Duration,
    /// How long sent data may stay unacknowledged before the kernel closes the connection
    /// (unless the URL sets `tcp_user_timeout`).
    pub tcp_user_timeout: Duration,
}

impl Timeouts {
    /// The settings' defaults: a connection refused or unanswered is an error within ten
    /// seconds; a peer gone silent is detected within 20 s idle (10 s, then three probes 3 s
    /// apart) or 30 s with data unacknowledged, well inside a failover's minute.
    pub const DEFAULT: Timeouts = Timeouts {
        connect: Duration::from_secs(10),
        pool_wait: Duration::from_secs(10),
        keepalive_idle: Duration::from_secs(10),
        tcp_user_timeout: Duration::from_secs(30),
    };
}

/// Runs `work` on a connection of `pool` within `deadline` (counted from when the connection
/// is in hand; getting one has the pool's own bounds), unless `cancel` comes first. A
/// connection whose work did not finish is taken out of the pool and closed rather than handed
/// to the next user: it may be stuck on a peer that stopped answering (which keepalives cannot
/// tell when the peer's kernel still acknowledges), or mid-transaction.
pub async fn bounded<T>(
    pool: &Pool,
    deadline: Duration,
    cancel: Option<&CancellationToken>,
    work: impl AsyncFnOnce(&mut deadpool_postgres::Client) -> Result<T, StoreError>,
) -> Result<T, Bounded> {
    let never = CancellationToken::new();
    let cancel = cancel.unwrap_or(&never);
    let mut client = tokio::select! {
        () = cancel.cancelled() => return Err(Bounded::Cancelled),
        client = pool.get() => client.map_err(|e| Bounded::Failed(e.into()))?,
    };
    let unfinished = tokio::select! {
        () = cancel.cancelled() => Bounded::Cancelled,
        done = tokio::time::timeout(deadline, work(&mut client)) => match done {
            Ok(done) => return done.map_err(Bounded::Failed),
            Err(_) => Bounded::Failed(StoreError::TimedOut(deadline)),
        },
    };
    drop(deadpool_postgres::Object::take(client));
    Err(unfinished)
}

/// Why [`bounded`] work did not finish.
#[derive(Debug)]
pub enum Bounded {
    Failed(StoreError),
    Cancelled,
}

impl From<Bounded> for StoreError {
    fn from(b: Bounded) -> Self {
        match b {
            Bounded::Failed(err) => err,
            // Only work given a token is cancelled; without one this cannot happen.
            Bounded::Cancelled => StoreError::Cancelled,
        }
    }
}

/// Builds a pool of at most `size` connections, each wait bounded by `timeouts`. Connections
/// are opened lazily.
pub fn connect_pool(url: &str, size: usize, timeouts: Timeouts) -> Result<Pool, ConnectError> {
    let (url, options) = split_tls_options(url);
    let mut config = tokio_postgres::Config::from_str(&url)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(timeouts.connect);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(timeouts.tcp_user_timeout);
    }
    config
        .keepalives(true)
        .keepalives_idle(timeouts.keepalive_idle)
        .keepalives_interval((timeouts.keepalive_idle / 3).max(Duration::from_secs(1)))
        .keepalives_retries(3);
    let mut tls = SslConnector::builder(SslMethod::tls())?;
    if let Some(path) = &options.root_cert {
        tls.set_ca_file(path)?;
    }
    if options.verify.is_none() {
        tls.set_verify(SslVerifyMode::NONE);
    }
    let mut connector = MakeTlsConnector::new(tls.build());
    if options.verify != Some("verify-full") {
        connector.set_callback(|cfg, _| {
            cfg.set_verify_hostname(false);
            Ok(())
        });
    }
    let manager = Manager::from_config(
        config,
        connector,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(timeouts.pool_wait))
        .create_timeout(Some(timeouts.connect))
        .recycle_timeout(Some(timeouts.pool_wait))
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_verification_modes_are_translated() {
        let (url, o) = split_tls_options(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem&application_name=x",
        );
        assert_eq!(url, "postgres://u@h/db?application_name=x&sslmode=require");
        assert_eq!(
            o,
            TlsOptions {
                verify: Some("verify-full"),
                root_cert: Some("/ca.pem".into())
            }
        );
        let (url, o) = split_tls_options("postgres://u@h/db?sslmode=require");
        assert_eq!(url, "postgres://u@h/db?sslmode=require");
        assert_eq!(o, TlsOptions::default());
        assert_eq!(
            split_tls_options("postgres://u@h/db").0,
            "postgres://u@h/db"
        );
    }

    #[test]
    fn a_malformed_url_is_an_error_not_a_panic() {
        assert!(connect_pool("postgres://u@h/db?sslmode=sometimes", 2, TIMEOUTS).is_err());
    }

    const TIMEOUTS: Timeouts = Timeouts::DEFAULT;

    #[tokio::test]
    async fn every_wait_is_bounded() {
        let pool = connect_pool("postgres://u@h/db?connect_timeout=3", 2, TIMEOUTS).unwrap();
        let t = pool.timeouts();
        assert_eq!(t.wait, Some(TIMEOUTS.pool_wait));
        assert_eq!(t.create, Some(TIMEOUTS.connect));
        assert_eq!(t.recycle, Some(TIMEOUTS.pool_wait));
    }
}
