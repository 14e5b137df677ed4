//! Start-up validation, as Prometheus does it: a targets file that is missing or invalid stops
//! the start with exit status 2 and one line naming the file and the problem (once running, a
//! broken edit keeps the last good targets: `app.rs`).

use std::time::Duration;

use testkit::service::Service;

#[test]
fn a_missing_or_invalid_targets_file_stops_the_start_with_one_line_naming_it() {
    let dir = testkit::TempDir::new("prober-start");
    let missing = dir.path().join("targets.yaml");
    let invalid = dir.path().join("invalid.yaml");
    std::fs::write(&invalid, "targets:\n  - url: not a url\n").unwrap();
    let lines = dir.path().join("targets.txt");
    std::fs::write(&lines, "https://ok.test/\nftp://nope.test/\n").unwrap();
    let cases = [
        (&missing, "cannot read it: No such file or directory"),
        (&invalid, "target 1 (not a url): bad url `not a url`"),
        (
            &lines,
            "line 2: `ftp://nope.test/` is not an http(s) URL with a host",
        ),
    ];
    for (file, problem) in cases {
        // No broker is reached: the file is read before any network.
        let env = [
            ("PROBE_TARGETS_FILE", file.display().to_string()),
            ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9".to_string()),
        ];
        let prober = Service::start("web-prober", env);
        let status = prober.wait_exit(Duration::from_secs(10));
        let log = prober.log_text();
        assert_eq!(status.code(), Some(2), "{log}");
        let expected = format!("error: PROBE_TARGETS_FILE={}: {problem}", file.display());
        let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(errors.len(), 1, "{log}");
        assert!(
            errors[0].starts_with(&expected),
            "{} vs {expected}",
            errors[0]
        );
    }
}
