//! Least-privilege roles (migration 0007): a schema owner that is not a superuser runs the
//! migrations, the aggregator connected as a member of `fleetpulse_writer` stores a stream
//! exactly and an alert, that member cannot change the schema nor delete what it stored, and a
//! member of `fleetpulse_reader` reads every table and writes none.

use std::time::Duration;

use tokio_postgres::error::SqlState;

use crate::helpers::*;

/// `db.url` as `role`.
fn url_as(db: &TestDb, role: &str) -> String {
    let (scheme, rest) = db.url.split_once("://").unwrap();
    let (_, host_db) = rest.split_once('@').unwrap();
    format!("{scheme}://{role}@{host_db}")
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// The tables partitioned by time (migration 0009).
fn store_tables_partitioned() -> i32 {
    aggregator::store::PARTITIONED.len() as i32
}

/// Every statement is refused for lack of privilege.
async fn refused(client: &tokio_postgres::Client, who: &str, statements: &[&str]) {
    for sql in statements {
        let err = client.batch_execute(sql).await.expect_err(sql);
        assert_eq!(
            err.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{who}: {sql}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_stores_but_cannot_change_the_schema_and_the_reader_only_reads() {
    let Setup(names, bootstrap, db) = setup(2).await;
    let admin = connect(&admin_url()).await;
    // The group roles, as a superuser or deploy/postgres/roles.sh makes them (other tests of
    // the run may make them at the same moment).
    for group in ["fleetpulse_writer", "fleetpulse_reader"] {
        let create = format!(
            "DO $$ BEGIN CREATE ROLE {group} NOLOGIN; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        );
        admin.batch_execute(&create).await.unwrap();
    }
    // Login roles of this test only (agg_test_*: scripts/test.sh drops them with the
    // databases); the owner is no superuser and owns the database's schema.
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (owner, writer, reader) = (
        format!("agg_test_owner_{}", &id[..12]),
        format!("agg_test_writer_{}", &id[..12]),
        format!("agg_test_reader_{}", &id[..12]),
    );
    admin
        .batch_execute(&format!(
            "CREATE ROLE {owner} LOGIN; \
             CREATE ROLE {writer} LOGIN IN ROLE fleetpulse_writer; \
             CREATE ROLE {reader} LOGIN IN ROLE fleetpulse_reader"
        ))
        .await
        .unwrap();
    db.client
        .batch_execute(&format!("ALTER SCHEMA public OWNER TO {owner}"))
        .await
        .unwrap();

    // The aggregator: its pool as the writer, the migrations as the owner.
    let mut migrating = args(&bootstrap, &url_as(&db, &writer), &names);
    migrating.extend(["--database-migration-url".to_string(), url_as(&db, &owner)]);
    let app = TestApp::spawn(migrating).await;
    let expected = produce_calls(&bootstrap, &names.calls, 2_000, 7);
    db.wait_for_offsets(&names.group, expected.calls, Duration::from_secs(60))
        .await;
    assert_stored_exactly(&db, expected).await;
    let notification = r#"{"version":"4","receiver":"oncall","status":"firing","alerts":[
        {"status":"firing","labels":{"alertname":"RolesTest"},"startsAt":"2026-01-01T00:00:00Z"}]}"#;
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/alerts", app.port))
        .header("content-type", "application/json")
        .body(notification)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    app.stop().await;

    // On the migrated database the writer alone starts: it checks the migrations, changes
    // nothing, and is ready.
    let app = TestApp::spawn(args(&bootstrap, &url_as(&db, &writer), &names)).await;
    app.wait_metric("health_status", 1.0, Duration::from_secs(30))
        .await;
    app.stop().await;
    let tables: Vec<String> = db
        .client
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(tables.len() >= 10, "{tables:?}");
    let owned: i64 = db
        .client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = $1",
            &[&owner],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owned as usize, tables.len(), "the owner owns every table");

    let as_writer = connect(&url_as(&db, &writer)).await;
    refused(
        &as_writer,
        "writer",
        &[
            "CREATE TABLE intruder (x int)",
            "ALTER TABLE long_calls ADD COLUMN x int",
            "DROP TABLE alerts",
            "TRUNCATE call_totals",
            "DELETE FROM long_calls",
            "DELETE FROM consumer_offsets",
            "UPDATE alerts SET status = 'resolved'",
            "SELECT fleet_drop_partitions('raw', now() + interval '1 year')",
            &format!(
                "DROP TABLE {}",
                tables.iter().find(|t| t.contains("_p")).unwrap()
            ),
        ],
    )
    .await;
    // A flush may make a missing partition: as the owner, and nothing else.
    let made: i32 = as_writer
        .query_one(
            "SELECT fleet_create_partitions(now() + interval '100 days', now() + interval '100 days')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        made,
        store_tables_partitioned(),
        "a partition of every table"
    );
    let owners: Vec<String> = db
        .column("SELECT DISTINCT tableowner::text FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE '%\\_p%'")
        .await;
    assert_eq!(owners, [owner.as_str()]);

    let as_reader = connect(&url_as(&db, &reader)).await;
    for table in &tables {
        let sql = format!("SELECT count(*) FROM {table}");
        as_reader.query_one(&sql, &[]).await.expect(&sql);
    }
    refused(
        &as_reader,
        "reader",
        &[
            "INSERT INTO call_totals (calls, duration_ms, long_calls) VALUES (1, 1, 1)",
            "UPDATE consumer_offsets SET next_offset = 0",
            "DELETE FROM alerts",
            "TRUNCATE long_calls",
            "CREATE TABLE intruder (x int)",
        ],
    )
    .await;
}
