//! One check at a time, against servers whose behaviour is known.

use std::time::Duration;

use chrono::Utc;
use fleet::events::{ProbeOutcome, ProbeResult};
use web_prober::check::Checker;
use web_prober::targets::{Defaults, Target, parse};

use crate::servers::{Cert, Reply, Server};

fn target(line: &str, timeout: Duration) -> Target {
    let d = Defaults {
        interval: Duration::from_secs(60),
        timeout,
        regex: None,
    };
    parse(line, false, &d).unwrap().remove(0)
}

fn yaml_target(yaml: &str) -> Target {
    let d = Defaults {
        interval: Duration::from_secs(60),
        timeout: Duration::from_secs(5),
        regex: None,
    };
    parse(yaml, true, &d).unwrap().remove(0)
}

fn checker() -> Checker {
    Checker::new(None, 1 << 20, 5).unwrap()
}

async fn check(line: &str) -> ProbeResult {
    checker().check(&target(line, Duration::from_secs(5))).await
}

#[tokio::test]
async fn a_known_delay_shows_up_in_time_to_first_byte_and_every_phase_is_timed() {
    let server = Server::start(
        vec![("/slow", Reply::delayed(Duration::from_millis(50), "hi"))],
        None,
    )
    .await;
    let r = check(&server.url("http", "/slow")).await;
    assert_eq!(r.result, ProbeOutcome::Ok, "{r:?}");
    assert_eq!(r.status, Some(200));
    let p = r.phases;
    let ttfb = p.ttfb_seconds.unwrap();
    assert!((0.050..0.080).contains(&ttfb), "ttfb {ttfb}");
    assert!(p.dns_seconds.unwrap() < 0.5 && p.connect_seconds.unwrap() < 0.05);
    assert!(p.tls_seconds.is_none(), "plain http has no TLS phase");
    let sum =
        p.dns_seconds.unwrap() + p.connect_seconds.unwrap() + ttfb + p.transfer_seconds.unwrap();
    assert!(
        p.total_seconds >= sum && p.total_seconds - sum < 0.01,
        "{p:?}"
    );
    assert_eq!(r.body_bytes, 2);
    assert!(r.tls.is_none() && r.error.is_none());
}

#[tokio::test]
async fn status_classes_and_redirects() {
    let server = Server::start(
        vec![
            ("/ok", Reply::ok("x")),
            ("/empty", Reply::status(204)),
            ("/moved", Reply::redirect("/ok")),
            ("/loop", Reply::redirect("/loop")),
            ("/error", Reply::status(503)),
            ("/away", Reply::redirect("ftp://files.test/x")),
            ("/missing", Reply::status(404)),
        ],
        None,
    )
    .await;
    let r = check(&server.url("http", "/ok")).await;
    assert_eq!(
        (r.result, r.status, r.redirects),
        (ProbeOutcome::Ok, Some(200), 0)
    );
    let r = check(&server.url("http", "/empty")).await;
    assert_eq!((r.result, r.status), (ProbeOutcome::Ok, Some(204)));
    let r = check(&server.url("http", "/moved")).await;
    assert_eq!(
        (r.result, r.status, r.redirects),
        (ProbeOutcome::Ok, Some(200), 1)
    );
    assert_eq!(r.body_bytes, 1);
    // Five redirects followed, then the sixth answer (a redirect) is judged: not 2xx.
    let r = check(&server.url("http", "/loop")).await;
    assert_eq!(
        (r.result, r.status, r.redirects),
        (ProbeOutcome::HttpStatus, Some(302), 5)
    );
    // Only http(s) redirects are followed: the 302 to ftp is the answer.
    let r = check(&server.url("http", "/away")).await;
    assert_eq!(
        (r.result, r.status, r.redirects),
        (ProbeOutcome::HttpStatus, Some(302), 0)
    );
    for (path, status) in [("/error", 503), ("/missing", 404)] {
        let r = check(&server.url("http", path)).await;
        assert_eq!(
            (r.result, r.status),
            (ProbeOutcome::HttpStatus, Some(status)),
            "{path}"
        );
    }
    // Expected statuses are per target.
    let t = yaml_target(&format!(
        "targets:\n  - url: {}\n    expect_status: [\"5xx\"]\n",
        server.url("http", "/error")
    ));
    assert_eq!(checker().check(&t).await.result, ProbeOutcome::Ok);
}

#[tokio::test]
async fn matching_and_non_matching_bodies() {
    let server = Server::start(vec![("/", Reply::ok(r#"{"status": "ok"}"#))], None).await;
    let r = check(&format!(
        "{} \"status\":\\s*\"ok\"",
        server.url("http", "/")
    ))
    .await;
    assert_eq!((r.result, r.regex_match), (ProbeOutcome::Ok, Some(true)));
    let r = check(&format!(
        "{} \"status\":\\s*\"degraded\"",
        server.url("http", "/")
    ))
    .await;
    assert_eq!(
        (r.result, r.regex_match),
        (ProbeOutcome::RegexMismatch, Some(false))
    );
    assert_eq!(r.status, Some(200));
    let r = check(&server.url("http", "/")).await;
    assert_eq!(r.regex_match, None, "no regex, no verdict");
}

#[tokio::test]
async fn tls_with_a_self_signed_certificate_whose_expiry_we_set() {
    let cert = Cert::self_signed(10);
    let server = Server::start(vec![("/", Reply::ok("secure"))], Some(&cert)).await;
    let url = server.url("https", "/");

    // Not trusted: a TLS error, and no response phases.
    let r = check(&url).await;
    assert_eq!(r.result, ProbeOutcome::TlsError, "{r:?}");
    assert!(
        r.error.as_deref().unwrap().contains("self-signed")
            || r.error.as_deref().unwrap().contains("certificate"),
        "{r:?}"
    );
    assert!(r.status.is_none() && r.phases.ttfb_seconds.is_none());

    // Trusted through PROBE_CA_FILE: ok, with the expiry and the version.
    let pem = std::env::temp_dir().join(format!("probe-ca-{}.pem", uuid::Uuid::new_v4()));
    cert.write_pem(&pem);
    let trusting = Checker::new(Some(&pem), 1 << 20, 5).unwrap();
    let r = trusting.check(&target(&url, Duration::from_secs(5))).await;
    std::fs::remove_file(&pem).unwrap();
    assert_eq!(r.result, ProbeOutcome::Ok, "{r:?}");
    let tls = r.tls.unwrap();
    let days = (tls.cert_not_after - Utc::now()).num_hours() as f64 / 24.0;
    assert!((9.9..=10.1).contains(&days), "expires in {days} days");
    assert!(tls.version.starts_with("TLSv1."), "{}", tls.version);
    assert!(r.phases.tls_seconds.unwrap() > 0.0);

    // Or accepted per target without verification.
    let t = yaml_target(&format!(
        "targets:\n  - url: {url}\n    insecure_skip_verify: true\n"
    ));
    let r = checker().check(&t).await;
    assert_eq!(r.result, ProbeOutcome::Ok, "{r:?}");
    assert!(r.tls.is_some());
}

#[tokio::test]
async fn refused_unresolvable_and_silent_servers() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // closed again: connections are refused
    let r = check(&format!("http://localhost:{port}/")).await;
    assert_eq!(r.result, ProbeOutcome::ConnectError, "{r:?}");
    assert!(r.status.is_none() && r.phases.connect_seconds.is_none());

    let r = check("http://no-such-host.invalid/").await;
    assert_eq!(r.result, ProbeOutcome::DnsError, "{r:?}");
    assert!(r.phases.dns_seconds.is_none() && r.phases.connect_seconds.is_none());

    let server = Server::start(vec![("/", Reply::hang())], None).await;
    let t = target(&server.url("http", "/"), Duration::from_millis(300));
    let r = checker().check(&t).await;
    assert_eq!(r.result, ProbeOutcome::Timeout, "{r:?}");
    assert!(r.status.is_none() && r.phases.ttfb_seconds.is_none());
    assert!(r.phases.connect_seconds.is_some(), "it did connect");
    assert!(
        (0.3..0.4).contains(&r.phases.total_seconds),
        "{}",
        r.phases.total_seconds
    );
    // The abandoned connection is closed, not left open behind the timeout.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while server.hung_up.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the timed-out connection stayed open"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_huge_body_is_counted_and_stopped_at_the_limit() {
    let server = Server::start(vec![("/big", Reply::big(8 << 20))], None).await;
    let url = server.url("http", "/big");
    let small = Checker::new(None, 1 << 20, 5).unwrap();
    let r = small.check(&target(&url, Duration::from_secs(10))).await;
    assert_eq!(r.result, ProbeOutcome::BodyError, "{r:?}");
    assert!(
        r.body_bytes > 1 << 20 && r.body_bytes < 8 << 20,
        "{}",
        r.body_bytes
    );
    let large = Checker::new(None, 64 << 20, 5).unwrap();
    let r = large.check(&target(&url, Duration::from_secs(10))).await;
    assert_eq!((r.result, r.body_bytes), (ProbeOutcome::Ok, 8 << 20));
    assert!(r.phases.transfer_seconds.unwrap() > 0.0);
}

#[tokio::test]
async fn a_failed_check_never_carries_the_previous_checks_timings() {
    let server = Server::start(
        vec![("/", Reply::delayed(Duration::from_millis(20), "x"))],
        None,
    )
    .await;
    let c = checker();
    let good = c
        .check(&target(&server.url("http", "/"), Duration::from_secs(5)))
        .await;
    assert!(good.phases.ttfb_seconds.is_some());
    let bad = c
        .check(&target(
            "http://no-such-host.invalid/",
            Duration::from_secs(5),
        ))
        .await;
    assert_eq!(bad.result, ProbeOutcome::DnsError);
    assert_eq!(
        (
            bad.status,
            bad.phases.ttfb_seconds,
            bad.phases.transfer_seconds,
            bad.body_bytes
        ),
        (None, None, None, 0)
    );
}

#[tokio::test]
async fn a_targets_own_host_header_replaces_ours() {
    let server = Server::start(vec![("/echo", Reply::ok(""))], None).await;
    let t = yaml_target(&format!(
        "targets:\n  - url: {}\n    headers: {{ Host: vhost.test }}\n    regex: '(?i)host: vhost\\.test'\n",
        server.url("http", "/echo")
    ));
    let r = checker().check(&t).await;
    assert_eq!(r.result, ProbeOutcome::Ok, "{r:?}");
    let echo = server.url("http", "/echo");
    let t = target(
        &format!("{echo} (?i)user-agent: fleetpulse"),
        Duration::from_secs(5),
    );
    assert_eq!(checker().check(&t).await.result, ProbeOutcome::Ok);
    // Exactly one Host header, not ours and theirs.
    let t = yaml_target(&format!(
        "targets:\n  - url: {echo}\n    headers: {{ Host: vhost.test }}\n    regex: '(?ims)^host:.*^host:'\n"
    ));
    assert_eq!(
        checker().check(&t).await.result,
        ProbeOutcome::RegexMismatch
    );
}
