//! Settings that would corrupt the tables are refused at start, with the way out.

use std::time::Duration;

use aggregator::config::Refused;

use crate::helpers::*;

/// [`args`] with another consumer group.
fn args_with_group(bootstrap: &str, db_url: &str, names: &Names, group: &str) -> Vec<String> {
    let mut args = args(bootstrap, db_url, names);
    let at = args.iter().position(|a| a == "--consumer-group").unwrap() + 1;
    args[at] = group.to_string();
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_group_on_tables_another_group_filled_is_refused_and_the_documented_move_works() {
    let Spawned(names, bootstrap, db, app) = spawn_app().await;
    let first = produce_calls(&bootstrap, &names.calls, 200, 21);
    db.wait_for_offsets(&names.group, first.calls, Duration::from_secs(60))
        .await;
    app.stop().await;

    // Same tables and topics, another group: it would start from the beginning.
    let new_group = format!("{}-new", names.group);
    let other = TestApp::spawn(args_with_group(&bootstrap, &db.url, &names, &new_group)).await;
    let ran = tokio::time::timeout(Duration::from_secs(30), other.handle)
        .await
        .expect("refused at start, not left running")
        .unwrap();
    let err = ran.expect_err("a group with no offsets on another group's tables");
    assert!(err.is::<Refused>(), "{err:#}");
    let line = err.to_string();
    assert!(
        line.starts_with(&format!(
            "CONSUMER_GROUP `{new_group}` has no stored offsets but the tables hold group `{}`'s",
            names.group
        )),
        "{line}"
    );
    assert!(!line.contains('\n'), "one line: {line}");
    assert_eq!(
        db.window_totals().await.0,
        first.calls,
        "nothing counted again"
    );

    // The move the docs give: rename the group's offsets while no aggregator runs.
    db.client
        .execute(
            "UPDATE consumer_offsets SET group_id = $1 WHERE group_id = $2",
            &[&new_group, &names.group],
        )
        .await
        .unwrap();
    let moved = TestApp::spawn(args_with_group(&bootstrap, &db.url, &names, &new_group)).await;
    let second = produce_calls(&bootstrap, &names.calls, 100, 22);
    db.wait_for_offsets(
        &new_group,
        first.calls + second.calls,
        Duration::from_secs(60),
    )
    .await;
    assert_stored_exactly(&db, first.and(second)).await;
    moved.stop().await;
}
