//! docs/operations.md's settings tables against every binary's arguments, as `clap` describes
//! them (the rules: `fleet_e2e::settings`).

use std::path::Path;

use clap::CommandFactory;
use fleet_e2e::settings::{self, OPERATIONS};

#[test]
fn the_settings_tables_match_every_binarys_arguments() {
    let binaries = [
        ("aggregator", aggregator::config::Config::command()),
        ("call-simulator", call_simulator::config::Config::command()),
        ("host-metrics", host_metrics::config::Config::command()),
        ("web-prober", web_prober::config::Config::command()),
        ("devbroker", devbroker::Config::command()),
    ];
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(OPERATIONS);
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (problems, compared) = settings::check(&doc, &binaries);
    assert!(
        problems.is_empty(),
        "{} problem(s) between {OPERATIONS} and the binaries' arguments:\n{}",
        problems.len(),
        problems.join("\n")
    );
    // Every binary has settings of its own: an empty list would be a check that cannot fail.
    assert!(compared >= 40, "only {compared} arguments compared");
    println!(
        "{compared} arguments of {} binaries match {OPERATIONS}",
        binaries.len()
    );
}
