//! Offsets never move silently: a topic deleted and created again is read from its start
//! (told apart by its topic id) with no key collision; messages deleted before they were read,
//! or a log that ends before the stored offset, stop the partition until an operator moves it.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::helpers::*;

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap()
}

/// Waits (bounded) until `check` holds for the calls stored in the windows.
async fn wait_for_calls(db: &TestDb, calls: i64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let stored = db.window_totals().await.0;
        if stored == calls {
            return;
        }
        assert!(
            stored < calls,
            "{stored} calls stored, more than the {calls} produced"
        );
        assert!(
            Instant::now() < deadline,
            "{stored} of {calls} calls stored in {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn set_stored_offset(db: &TestDb, names: &Names, offset: i64) {
    let moved = db
        .client
        .execute(
            "UPDATE consumer_offsets SET next_offset = $1, watermark_ms = NULL \
             WHERE group_id = $2 AND topic = $3 AND partition = 0",
            &[&offset, &names.group, &names.calls],
        )
        .await
        .unwrap();
    assert_eq!(moved, 1);
}

fn out_of_range(names: &Names) -> String {
    format!(
        r#"aggregator_offsets_out_of_range{{partition="0",topic="{}"}}"#,
        names.calls
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_deleted_and_created_again_is_read_from_its_start_without_collisions() {
    let Spawned(names, bootstrap, db, app) = spawn_app().await;
    let first = produce_calls(&bootstrap, &names.calls, 500, 31);
    db.wait_for_offsets(&names.group, first.calls, Duration::from_secs(60))
        .await;

    let admin = admin(&bootstrap);
    let options = AdminOptions::new();
    let deleted = admin
        .delete_topics(&[&names.calls], &options)
        .await
        .unwrap();
    assert!(deleted.iter().all(Result::is_ok), "{deleted:?}");
    // The broker lets go of the name shortly after.
    let deadline = Instant::now() + Duration::from_secs(30);
    let topic = [NewTopic::new(&names.calls, 1, TopicReplication::Fixed(1))];
    loop {
        let created = admin.create_topics(&topic, &options).await.unwrap();
        match &created[0] {
            Ok(_) => break,
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => panic!("cannot create the topic again: {code}"),
        }
        assert!(Instant::now() < deadline, "the topic was not created again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Offsets 0.. again: the first 300 collide with stored long calls' offsets.
    let second = produce_calls(&bootstrap, &names.calls, 300, 32);
    wait_for_calls(&db, first.calls + second.calls, Duration::from_secs(60)).await;
    assert_stored_exactly(&db, first.and(second)).await;
    assert_eq!(db.stored_offsets(&names.group).await, second.calls);
    assert_eq!(app.metric("aggregator_topic_recreations_total").await, 1.0);
    assert_eq!(app.metric(&out_of_range(&names)).await, 0.0);
    let ids: i64 = db
        .client
        .query_one("SELECT count(DISTINCT topic_id) FROM long_calls", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ids, 2, "the long calls of each topic carry its id");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_deleted_before_they_were_read_stop_the_partition_until_it_is_moved() {
    let Spawned(names, bootstrap, db, app) = spawn_app().await;
    let first = produce_calls(&bootstrap, &names.calls, 100, 41);
    db.wait_for_offsets(&names.group, 100, Duration::from_secs(60))
        .await;
    app.stop().await;
    // While the aggregator is away, retention deletes messages it never read.
    produce_calls(&bootstrap, &names.calls, 100, 42);
    let mut up_to = TopicPartitionList::new();
    up_to
        .add_partition_offset(&names.calls, 0, Offset::Offset(150))
        .unwrap();
    (admin(&bootstrap).delete_records(&up_to, &AdminOptions::new()))
        .await
        .unwrap();

    let app = TestApp::spawn(args(&bootstrap, &db.url, &names)).await;
    app.wait_metric(&out_of_range(&names), 50.0, Duration::from_secs(30))
        .await;
    app.wait_metric("health_status", 0.0, Duration::from_secs(5))
        .await;
    let (_, readyz) = app.get("/readyz").await;
    assert_eq!(
        db.window_totals().await.0,
        first.calls,
        "nothing read meanwhile: {readyz}"
    );

    // The documented statement: resume where the log now starts.
    set_stored_offset(&db, &names, 150).await;
    wait_for_calls(&db, first.calls + 50, Duration::from_secs(30)).await;
    app.wait_metric(&out_of_range(&names), 0.0, Duration::from_secs(10))
        .await;
    app.wait_metric("health_status", 1.0, Duration::from_secs(10))
        .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_ends_before_the_stored_offset_stops_the_partition_until_it_is_moved() {
    let Spawned(names, bootstrap, db, app) = spawn_app().await;
    let first = produce_calls(&bootstrap, &names.calls, 100, 51);
    db.wait_for_offsets(&names.group, 100, Duration::from_secs(60))
        .await;
    app.stop().await;
    // As after an unclean leader election: the log lost its last 30 messages the aggregator
    // had stored (the same topic, so the same id).
    set_stored_offset(&db, &names, 130).await;

    let app = TestApp::spawn(args(&bootstrap, &db.url, &names)).await;
    app.wait_metric(&out_of_range(&names), 30.0, Duration::from_secs(30))
        .await;
    app.wait_metric("health_status", 0.0, Duration::from_secs(5))
        .await;

    set_stored_offset(&db, &names, 100).await;
    let second = produce_calls(&bootstrap, &names.calls, 20, 52);
    wait_for_calls(&db, first.calls + second.calls, Duration::from_secs(30)).await;
    app.wait_metric("health_status", 1.0, Duration::from_secs(10))
        .await;
    app.stop().await;
}
