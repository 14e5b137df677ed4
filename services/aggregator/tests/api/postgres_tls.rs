//! TLS to PostgreSQL, with the aggregator as a process: `sslmode=verify-full` with the server's
//! CA connects (and the connections are encrypted), a wrong CA or a host name the certificate
//! does not name keeps the aggregator up but not ready with one log line naming the cause, and
//! `sslmode=require` encrypts without verifying, as libpq does.
//!
//! The server is the test server with TLS on: `scripts/test.sh` gives the local cluster a test
//! CA and a certificate for `localhost` (`scripts/pg-test-tls.sh`) and sets `TEST_PG_TLS_CA`.

use std::time::Duration;

use testkit::service::Service;
use testkit::tls::Ca;

use crate::helpers::*;

fn server_ca() -> String {
    std::env::var("TEST_PG_TLS_CA").expect(
        "TEST_PG_TLS_CA: the CA of the test server's certificate for localhost \
         (scripts/test.sh sets it up with scripts/pg-test-tls.sh)",
    )
}

/// `db.url` with another host and these libpq parameters.
fn url(db: &TestDb, host: &str, params: &str) -> String {
    let (scheme_user, rest) = db.url.split_once('@').unwrap();
    let (_, port_db) = rest.split_once(':').unwrap();
    format!("{scheme_user}@{host}:{port_db}?{params}")
}

fn aggregator(names: &Names, db: &TestDb, kafka: &str, database_url: String) -> Service {
    let kafka = [("KAFKA_BOOTSTRAP_SERVERS", kafka.to_string())];
    let own = [("DATABASE_URL", database_url)];
    Service::start("aggregator", crate::fleet::env(names, db, &kafka, &own))
}

/// Encrypted connections of this test's database.
async fn tls_connections(db: &TestDb) -> i64 {
    db.client
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = current_database() AND s.ssl AND a.pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_with_the_ca_connects_and_a_wrong_ca_or_host_name_is_one_clear_line() {
    let ca = server_ca();
    let pg_ca = testkit::TempDir::new("pg-ca");
    let other_ca = Ca::new("not the server's CA").write_pem(pg_ca.path(), "ca");
    let other_ca = other_ca.display().to_string();

    // verify-full, the server's CA, the name in its certificate: ready, encrypted.
    for params in [
        format!("sslmode=verify-full&sslrootcert={ca}"),
        // require: encrypted, nothing verified (no CA given).
        "sslmode=require".to_string(),
    ] {
        let Setup(names, bootstrap, db) = setup(1).await;
        let service = aggregator(&names, &db, &bootstrap, url(&db, "localhost", &params));
        service.wait_metric("health_status", Duration::from_secs(30), |v| v == 1.0);
        assert_eq!(
            service.get("/readyz").map(|(s, _)| s),
            Some(200),
            "{params}"
        );
        assert!(
            tls_connections(&db).await > 0,
            "{params}: no encrypted connection"
        );
        assert!(service.terminate(Duration::from_secs(15)).success());
    }

    // A CA that did not sign the server's certificate, and a host name it does not name.
    let cases = [
        (
            "wrong CA",
            "localhost",
            other_ca.as_str(),
            "certificate verify failed",
        ),
        (
            "wrong host name",
            "127.0.0.1",
            ca.as_str(),
            "IP address mismatch",
        ),
    ];
    let mut refused = Vec::new();
    for (case, host, root, cause) in cases {
        let Setup(names, bootstrap, db) = setup(1).await;
        let params = format!("sslmode=verify-full&sslrootcert={root}");
        let service = aggregator(&names, &db, &bootstrap, url(&db, host, &params));
        refused.push((case, cause, service, db));
    }
    // The migration is retried with a backoff up to 10 s: 15 s hold several attempts.
    tokio::time::sleep(Duration::from_secs(15)).await;
    for (case, cause, service, db) in &refused {
        let log = service.log_text();
        assert!(service.running(), "{case}: exited\n{log}");
        let (status, body) = service.get("/readyz").unwrap();
        assert_eq!(status, 503, "{case}: {body}");
        assert!(
            body.contains(cause),
            "{case}: /readyz does not name {cause:?}: {body}"
        );
        let naming = log.lines().filter(|l| l.contains(cause)).count();
        assert_eq!(naming, 1, "{case}: {naming} lines name {cause:?}:\n{log}");
        assert_eq!(tls_connections(db).await, 0, "{case}");
    }
}
