//! Connection pool from a libpq-style URL. tokio-postgres understands `sslmode=disable|prefer|
//! require`; `verify-ca`/`verify-full` and `sslrootcert` are libpq options it lacks, so they are
//! translated here into OpenSSL settings. As in libpq, `require` encrypts without verifying the
//! certificate, `verify-full` verifies the chain and the host name.

use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use postgres_openssl::MakeTlsConnector;

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

/// Builds a pool of at most `size` connections. Connections are opened lazily.
pub fn connect_pool(url: &str, size: usize) -> Result<Pool, ConnectError> {
    let (url, options) = split_tls_options(url);
    let config = tokio_postgres::Config::from_str(&url)?;
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
    Ok(Pool::builder(manager).max_size(size).build()?)
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
        assert!(connect_pool("postgres://u@h/db?sslmode=sometimes", 2).is_err());
    }
}
