//! Local servers with exact behaviour: a delay before answering, a status, a body, TLS.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslAcceptor, SslMethod};
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509, X509NameBuilder};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// How a route answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub delay: Duration,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Arc<Vec<u8>>,
    /// Accept, read the request, never answer (until the client hangs up).
    pub hang: bool,
}

impl Reply {
    pub fn ok(body: &str) -> Self {
        Self {
            delay: Duration::ZERO,
            status: 200,
            headers: vec![],
            body: Arc::new(body.as_bytes().to_vec()),
            hang: false,
        }
    }

    pub fn status(status: u16) -> Self {
        Self {
            status,
            ..Self::ok("")
        }
    }

    pub fn delayed(delay: Duration, body: &str) -> Self {
        Self {
            delay,
            ..Self::ok(body)
        }
    }

    pub fn redirect(to: &str) -> Self {
        Self {
            headers: vec![("Location".into(), to.into())],
            ..Self::status(302)
        }
    }

    pub fn hang() -> Self {
        Self {
            hang: true,
            ..Self::ok("")
        }
    }

    pub fn big(bytes: usize) -> Self {
        Self {
            body: Arc::new(vec![b'x'; bytes]),
            ..Self::ok("")
        }
    }
}

/// Routes by path; unknown paths get 404.
pub type Routes = Arc<Vec<(&'static str, Reply)>>;

/// A running server: plain HTTP, or HTTPS with the given certificate.
pub struct Server {
    pub addr: SocketAddr,
    /// Connections to a hanging route that the client has closed.
    pub hung_up: Arc<AtomicUsize>,
}

impl Server {
    pub async fn start(routes: Vec<(&'static str, Reply)>, tls: Option<&Cert>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let routes: Routes = Arc::new(routes);
        let hung_up = Arc::new(AtomicUsize::new(0));
        let counter = hung_up.clone();
        let acceptor = tls.map(|c| {
            let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
            b.set_private_key(&c.key).unwrap();
            b.set_certificate(&c.cert).unwrap();
            Arc::new(b.build())
        });
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let routes = routes.clone();
                let acceptor = acceptor.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    match acceptor {
                        Some(acceptor) => {
                            let ssl = openssl::ssl::Ssl::new(acceptor.context()).unwrap();
                            let mut stream = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
                            if Pin::new(&mut stream).accept().await.is_ok() {
                                serve(stream, routes, counter).await;
                            }
                        }
                        None => serve(tcp, routes, counter).await,
                    }
                });
            }
        });
        Self { addr, hung_up }
    }

    pub fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://localhost:{}{path}", self.addr.port())
    }
}

async fn serve<S: tokio::io::AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    routes: Routes,
    hung_up: Arc<AtomicUsize>,
) {
    // One request per connection: read the head.
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut words = text.split_whitespace();
    let method = words.next().unwrap_or("").to_string();
    let path = words.next().unwrap_or("/").to_string();
    let mut reply = routes
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, r)| r.clone())
        .unwrap_or_else(|| Reply::status(404));
    if path == "/echo" {
        // The request's head, as the body.
        reply.body = Arc::new(head.clone());
    }
    if reply.hang {
        // Wait for the client to give up and close the connection.
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
        hung_up.fetch_add(1, Ordering::SeqCst);
        return;
    }
    tokio::time::sleep(reply.delay).await;
    let mut response = format!(
        "HTTP/1.1 {} X\r\ncontent-length: {}\r\nconnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (k, v) in &reply.headers {
        response.push_str(&format!("{k}: {v}\r\n"));
    }
    response.push_str("\r\n");
    if stream.write_all(response.as_bytes()).await.is_err() {
        return;
    }
    if method != "HEAD" {
        let _ = stream.write_all(&reply.body).await;
    }
    let _ = stream.shutdown().await;
}

/// A self-signed certificate for `localhost` and 127.0.0.1.
pub struct Cert {
    pub cert: X509,
    pub key: PKey<Private>,
}

impl Cert {
    pub fn self_signed(expires_in_days: u32) -> Self {
        let key = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "localhost").unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(expires_in_days).unwrap())
            .unwrap();
        let serial = openssl::bn::BigNum::from_u32(1)
            .unwrap()
            .to_asn1_integer()
            .unwrap();
        b.set_serial_number(&serial).unwrap();
        let san = SubjectAlternativeName::new()
            .dns("localhost")
            .ip("127.0.0.1")
            .build(&b.x509v3_context(None, None))
            .unwrap();
        b.append_extension(san).unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        Self {
            cert: b.build(),
            key,
        }
    }

    /// Writes the certificate as PEM (to trust it as a CA).
    pub fn write_pem(&self, path: &std::path::Path) {
        std::fs::write(path, self.cert.to_pem().unwrap()).unwrap();
    }
}
