//! One check of one target, timed phase by phase: name resolution, TCP connect, TLS handshake,
//! time to first byte, body transfer. Built from the layers (tokio, OpenSSL, hyper's HTTP/1
//! connection) rather than a high-level client, because a high-level client does not say where
//! the time went. Every check starts from a fresh [`Timings`]: a failed check carries only what
//! it measured itself.

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use fleet::events::{PROBE_SCHEMA_VERSION, Phases, ProbeOutcome, ProbeResult, TlsInfo};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

use crate::targets::Target;

/// `User-Agent` of every request.
const USER_AGENT: &str = concat!("fleetpulse-web-prober/", env!("CARGO_PKG_VERSION"));

/// Why a check did not get a usable response.
#[derive(Debug)]
enum Failure {
    Dns(String),
    Connect(String),
    Tls(String),
    Body(String),
}

impl Failure {
    fn outcome(&self) -> (ProbeOutcome, String) {
        match self {
            Self::Dns(e) => (ProbeOutcome::DnsError, e.clone()),
            Self::Connect(e) => (ProbeOutcome::ConnectError, e.clone()),
            Self::Tls(e) => (ProbeOutcome::TlsError, e.clone()),
            Self::Body(e) => (ProbeOutcome::BodyError, e.clone()),
        }
    }
}

/// What one check measured so far; phases add up over redirects.
#[derive(Debug, Default)]
struct Timings {
    dns: Option<Duration>,
    connect: Option<Duration>,
    tls: Option<Duration>,
    ttfb: Option<Duration>,
    transfer: Option<Duration>,
    status: Option<u16>,
    body_bytes: u64,
    redirects: u32,
    tls_info: Option<TlsInfo>,
}

fn add(phase: &mut Option<Duration>, took: Duration) {
    *phase = Some(phase.unwrap_or_default() + took);
}

/// Settings shared by every check.
#[derive(Clone)]
pub struct Checker {
    tls: SslConnector,
    max_body_bytes: u64,
    max_redirects: u32,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker")
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_redirects", &self.max_redirects)
            .finish_non_exhaustive()
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl Checker {
    /// Certificates are verified against the system's CAs, plus `extra_ca_file` if given.
    pub fn new(
        extra_ca_file: Option<&std::path::Path>,
        max_body_bytes: u64,
        max_redirects: u32,
    ) -> Result<Self, openssl::error::ErrorStack> {
        let mut builder = SslConnector::builder(SslMethod::tls_client())?;
        builder.set_default_verify_paths()?;
        if let Some(path) = extra_ca_file {
            builder.set_ca_file(path)?;
        }
        Ok(Self {
            tls: builder.build(),
            max_body_bytes,
            max_redirects,
        })
    }

    /// Checks `target` once, within its timeout.
    pub async fn check(&self, target: &Target) -> ProbeResult {
        let time = Utc::now();
        let started = Instant::now();
        let mut t = Timings::default();
        let outcome = tokio::time::timeout(target.timeout, self.exchange(target, &mut t)).await;
        let total = started.elapsed();
        let (result, regex_match, error) = match outcome {
            Err(_) => (
                ProbeOutcome::Timeout,
                None,
                Some(format!("no complete answer within {:?}", target.timeout)),
            ),
            Ok(Err(failure)) => {
                let (result, error) = failure.outcome();
                (result, None, Some(error))
            }
            Ok(Ok(body)) => judge(target, t.status.unwrap_or_default(), &body),
        };
        ProbeResult {
            schema_version: PROBE_SCHEMA_VERSION,
            url: target.url.to_string(),
            method: target.method.to_string(),
            time,
            result,
            status: t.status,
            phases: Phases {
                dns_seconds: t.dns.map(|d| d.as_secs_f64()),
                connect_seconds: t.connect.map(|d| d.as_secs_f64()),
                tls_seconds: t.tls.map(|d| d.as_secs_f64()),
                ttfb_seconds: t.ttfb.map(|d| d.as_secs_f64()),
                transfer_seconds: t.transfer.map(|d| d.as_secs_f64()),
                total_seconds: total.as_secs_f64(),
            },
            body_bytes: t.body_bytes,
            regex_match,
            redirects: t.redirects,
            tls: t.tls_info,
            error,
        }
    }

    /// Requests `target`, following redirects; returns the last body.
    async fn exchange(&self, target: &Target, t: &mut Timings) -> Result<Vec<u8>, Failure> {
        let mut url = target.url.clone();
        loop {
            // The connection lives until the body is read (or the check is abandoned).
            let (response, _connection) = self.request(target, &url, t).await?;
            let status = response.status();
            t.status = Some(status.as_u16());
            let location = response
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| url.join(l).ok());
            // Only http(s) redirects are followed; any other is judged as the answer.
            if status.is_redirection()
                && t.redirects < self.max_redirects
                && let Some(next) = location.filter(|l| matches!(l.scheme(), "http" | "https"))
            {
                t.redirects += 1;
                url = next;
                continue;
            }
            return self.read_body(response, t, target.regex.is_some()).await;
        }
    }

    async fn request(
        &self,
        target: &Target,
        url: &url::Url,
        t: &mut Timings,
    ) -> Result<(http::Response<hyper::body::Incoming>, Connection), Failure> {
        let https = url.scheme() == "https";
        let port = url.port_or_known_default().unwrap_or(80);
        let (addrs, host) = self.resolve(url, port, t).await?;

        let started = Instant::now();
        let tcp = connect_any(&addrs).await?;
        add(&mut t.connect, started.elapsed());
        let _ = tcp.set_nodelay(true);

        // TLS details describe the last connection: none after a redirect to plain http.
        t.tls_info = None;
        let io: Box<dyn Io> = if https {
            let started = Instant::now();
            let stream = self
                .handshake(tcp, &host, target.insecure_skip_verify)
                .await?;
            add(&mut t.tls, started.elapsed());
            t.tls_info = tls_info(stream.ssl());
            Box::new(stream)
        } else {
            Box::new(tcp)
        };

        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| Failure::Connect(format!("HTTP handshake: {e}")))?;
        // Drives the connection. Aborted when the check lets go of it (hyper would also end it
        // once the request is dropped): no task or socket outlives its check, whatever the
        // server does.
        let connection = Connection(tokio::spawn(async move {
            let _ = connection.await;
        }));
        let mut request = http::Request::builder()
            .method(target.method.clone())
            .uri(&url[url::Position::BeforePath..url::Position::AfterQuery]);
        // A target's own Host or User-Agent replaces ours (two Host headers get a 400).
        let own = |h: &http::header::HeaderName| target.headers.iter().any(|(n, _)| n == h);
        if !own(&http::header::HOST) {
            request = request.header(
                http::header::HOST,
                &url[url::Position::BeforeHost..url::Position::AfterPort],
            );
        }
        if !own(&http::header::USER_AGENT) {
            request = request.header(http::header::USER_AGENT, USER_AGENT);
        }
        for (name, value) in &target.headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| Failure::Connect(format!("cannot build the request: {e}")))?;
        let started = Instant::now();
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| Failure::Connect(format!("no response: {e}")))?;
        add(&mut t.ttfb, started.elapsed());
        Ok((response, connection))
    }

    /// Addresses of the URL's host, and the host name for TLS.
    async fn resolve(
        &self,
        url: &url::Url,
        port: u16,
        t: &mut Timings,
    ) -> Result<(Vec<SocketAddr>, String), Failure> {
        match url.host() {
            Some(url::Host::Ipv4(ip)) => Ok((vec![SocketAddr::from((ip, port))], ip.to_string())),
            Some(url::Host::Ipv6(ip)) => Ok((vec![SocketAddr::from((ip, port))], ip.to_string())),
            Some(url::Host::Domain(name)) => {
                let started = Instant::now();
                let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
                    .await
                    .map_err(|e| Failure::Dns(format!("{name}: {e}")))?
                    .collect();
                add(&mut t.dns, started.elapsed());
                if addrs.is_empty() {
                    return Err(Failure::Dns(format!("{name}: no addresses")));
                }
                Ok((addrs, name.to_string()))
            }
            None => Err(Failure::Dns("no host".into())),
        }
    }

    async fn handshake(
        &self,
        tcp: TcpStream,
        host: &str,
        insecure: bool,
    ) -> Result<SslStream<TcpStream>, Failure> {
        let tls_err = |e: openssl::error::ErrorStack| Failure::Tls(e.to_string());
        let mut config = self.tls.configure().map_err(tls_err)?;
        if insecure {
            config.set_verify(SslVerifyMode::NONE);
            config.set_verify_hostname(false);
        }
        let ssl = config.into_ssl(host).map_err(tls_err)?;
        let mut stream = SslStream::new(ssl, tcp).map_err(tls_err)?;
        Pin::new(&mut stream).connect().await.map_err(|e| {
            let verify = stream.ssl().verify_result();
            if verify == openssl::x509::X509VerifyResult::OK {
                Failure::Tls(e.to_string())
            } else {
                Failure::Tls(format!("{e}: {}", verify.error_string()))
            }
        })?;
        Ok(stream)
    }

    async fn read_body(
        &self,
        response: http::Response<hyper::body::Incoming>,
        t: &mut Timings,
        keep: bool,
    ) -> Result<Vec<u8>, Failure> {
        let started = Instant::now();
        let mut body = response.into_body();
        let mut kept = Vec::new();
        let result = loop {
            match body.frame().await {
                None => break Ok(()),
                Some(Err(e)) => break Err(Failure::Body(format!("reading the body: {e}"))),
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        t.body_bytes += data.len() as u64;
                        if t.body_bytes > self.max_body_bytes {
                            break Err(Failure::Body(format!(
                                "body larger than {} bytes",
                                self.max_body_bytes
                            )));
                        }
                        // Without a regex the body is only counted, never held.
                        if keep {
                            kept.extend_from_slice(data);
                        }
                    }
                }
            }
        };
        add(&mut t.transfer, started.elapsed());
        result.map(|()| kept)
    }
}

/// The task driving one HTTP connection, aborted when dropped.
struct Connection(tokio::task::JoinHandle<()>);

impl Drop for Connection {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Tries each address in turn; the error of the last one if none answers.
async fn connect_any(addrs: &[SocketAddr]) -> Result<TcpStream, Failure> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(format!("{addr}: {e}")),
        }
    }
    Err(Failure::Connect(
        last.unwrap_or_else(|| "no address".into()),
    ))
}

fn tls_info(ssl: &openssl::ssl::SslRef) -> Option<TlsInfo> {
    let cert = ssl.peer_certificate()?;
    Some(TlsInfo {
        version: ssl.version_str().to_string(),
        cert_not_after: asn1_to_utc(cert.not_after())?,
    })
}

fn asn1_to_utc(time: &openssl::asn1::Asn1TimeRef) -> Option<DateTime<Utc>> {
    let epoch = openssl::asn1::Asn1Time::from_unix(0).ok()?;
    let diff = epoch.diff(time).ok()?;
    DateTime::from_timestamp(i64::from(diff.days) * 86_400 + i64::from(diff.secs), 0)
}

/// The verdict on a complete response: status first, then the body regex.
fn judge(
    target: &Target,
    status: u16,
    body: &[u8],
) -> (ProbeOutcome, Option<bool>, Option<String>) {
    let regex_match = target
        .regex
        .as_ref()
        .map(|re| re.is_match(&String::from_utf8_lossy(body)));
    if !target.expect_status.contains(status) {
        return (
            ProbeOutcome::HttpStatus,
            regex_match,
            Some(format!("status {status} not expected")),
        );
    }
    match regex_match {
        Some(false) => (
            ProbeOutcome::RegexMismatch,
            Some(false),
            Some("body does not match the regex".into()),
        ),
        matched => (ProbeOutcome::Ok, matched, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::{Defaults, parse};

    fn target(line: &str) -> Target {
        let defaults = Defaults {
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
            regex: None,
        };
        parse(line, false, &defaults).unwrap().remove(0)
    }

    #[test]
    fn status_is_judged_before_the_body() {
        let t = target("http://a.test ^hello");
        assert_eq!(judge(&t, 200, b"hello world").0, ProbeOutcome::Ok);
        assert_eq!(judge(&t, 200, b"hello world").1, Some(true));
        assert_eq!(judge(&t, 200, b"bye").0, ProbeOutcome::RegexMismatch);
        let (outcome, matched, error) = judge(&t, 503, b"hello");
        assert_eq!(outcome, ProbeOutcome::HttpStatus);
        assert_eq!(matched, Some(true), "the match is still reported");
        assert!(error.unwrap().contains("503"));
    }

    #[test]
    fn no_regex_means_no_match_value() {
        let t = target("http://a.test");
        assert_eq!(judge(&t, 204, b""), (ProbeOutcome::Ok, None, None));
    }

    #[test]
    fn certificate_times_convert_to_utc() {
        let t = openssl::asn1::Asn1Time::from_unix(1_800_000_000).unwrap();
        assert_eq!(asn1_to_utc(&t).unwrap().timestamp(), 1_800_000_000);
    }
}
