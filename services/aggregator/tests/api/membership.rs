//! Static group membership on the real broker: an aggregator restarted with the same
//! `CONSUMER_INSTANCE_ID` within the session timeout takes its partitions back without a
//! rebalance, so the other member keeps its own throughout.

use std::time::{Duration, Instant};

use testkit::service::Service;

use crate::helpers::*;

fn member(bootstrap: &str, db: &TestDb, names: &Names, instance: &str) -> Service {
    let kafka = [("KAFKA_BOOTSTRAP_SERVERS", bootstrap.to_string())];
    let own = [
        ("CONSUMER_INSTANCE_ID", instance.to_string()),
        // Long enough to restart within; a dynamic member would be gone for as long.
        ("KAFKA_SESSION_TIMEOUT_MS", "45000".to_string()),
    ];
    Service::start("aggregator", crate::fleet::env(names, db, &kafka, &own))
}

const ASSIGNED: &str = "aggregator_assigned_partitions";
const REBALANCES: &str = "aggregator_rebalances_total";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_static_member_gets_its_partitions_back_and_the_other_keeps_its_own() {
    let Setup(names, bootstrap, db) = setup(6).await;
    let a = member(&bootstrap, &db, &names, "a");
    let b = member(&bootstrap, &db, &names, "b");
    let total = consumed_partitions(6);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (a_owns, b_owns) = loop {
        let (pa, pb) = (a.metric(ASSIGNED), b.metric(ASSIGNED));
        if let (Some(pa), Some(pb)) = (pa, pb)
            && pa > 0.0
            && pb > 0.0
            && pa + pb == total
        {
            break (pa, pb);
        }
        assert!(
            Instant::now() < deadline,
            "group did not settle: {pa:?} + {pb:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut expected = produce_calls(&bootstrap, &names.calls, 5_000, 51);
    db.wait_for_offsets(&names.group, expected.calls, Duration::from_secs(60))
        .await;
    let a_rebalances = a.metric(REBALANCES).unwrap();

    // B crashes and comes back as the same instance.
    b.kill();
    let b = member(&bootstrap, &db, &names, "b");
    let restarted = Instant::now();
    b.wait_metric(ASSIGNED, Duration::from_secs(20), |v| v == b_owns);
    let back_after = restarted.elapsed();

    // Storing resumes within seconds, across both members' partitions.
    let more = produce_calls(&bootstrap, &names.calls, 5_000, 52);
    expected.calls += more.calls;
    expected.duration_ms += more.duration_ms;
    expected.long_calls += more.long_calls;
    db.wait_for_offsets(&names.group, expected.calls, Duration::from_secs(15))
        .await;
    assert_stored_exactly(&db, expected).await;
    // B stores again. Its counters move just after the commit that made the offsets visible
    // (CI once read them in between), so wait for them rather than read them once.
    b.wait_metric("aggregator_calls_total", Duration::from_secs(10), |v| {
        v > 0.0
    });
    // A was never asked to give anything up.
    assert_eq!(a.metric(ASSIGNED), Some(a_owns));
    assert_eq!(
        a.metric(REBALANCES),
        Some(a_rebalances),
        "A saw no rebalance"
    );
    eprintln!("B had its {b_owns} partitions back {back_after:?} after its restart");
    assert!(back_after < Duration::from_secs(15), "{back_after:?}");
}
