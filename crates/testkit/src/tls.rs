//! A certificate authority made by a test, and server certificates it signs, written where a
//! broker (PKCS#12 keystore) and a client (PEM CA file) read them.

use std::path::{Path, PathBuf};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509, X509Name, X509NameBuilder};

/// A self-signed CA.
#[derive(Debug)]
pub struct Ca {
    /// The CA's certificate.
    pub cert: X509,
    key: PKey<Private>,
}

/// A certificate and its key.
#[derive(Debug)]
pub struct Issued {
    /// The leaf certificate.
    pub cert: X509,
    /// Its private key.
    pub key: PKey<Private>,
}

fn name(common_name: &str) -> X509Name {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", common_name).unwrap();
    name.build()
}

fn serial() -> openssl::asn1::Asn1Integer {
    let mut bn = BigNum::new().unwrap();
    bn.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    bn.to_asn1_integer().unwrap()
}

fn new_key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

impl Ca {
    /// A new CA named `common_name`, valid for a day.
    pub fn new(common_name: &str) -> Self {
        let key = new_key();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&serial()).unwrap();
        b.set_subject_name(&name(common_name)).unwrap();
        b.set_issuer_name(&name(common_name)).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .unwrap(),
        )
        .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        Self {
            cert: b.build(),
            key,
        }
    }

    /// A server certificate for `127.0.0.1` and `localhost`, signed by this CA.
    pub fn issue_server(&self, common_name: &str) -> Issued {
        let key = new_key();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&serial()).unwrap();
        b.set_subject_name(&name(common_name)).unwrap();
        b.set_issuer_name(self.cert.subject_name()).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        let san = SubjectAlternativeName::new()
            .ip("127.0.0.1")
            .dns("localhost")
            .build(&b.x509v3_context(Some(&self.cert), None))
            .unwrap();
        b.append_extension(san).unwrap();
        b.sign(&self.key, MessageDigest::sha256()).unwrap();
        Issued {
            cert: b.build(),
            key,
        }
    }

    /// Writes the CA certificate as PEM to `dir/name` and returns the path.
    pub fn write_pem(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, self.cert.to_pem().unwrap()).unwrap();
        path
    }
}

impl Issued {
    /// Writes a PKCS#12 keystore (key, certificate, and the CA as its chain) protected by
    /// `password` to `dir/name` and returns the path: what a Java server reads.
    pub fn write_pkcs12(&self, ca: &Ca, dir: &Path, name: &str, password: &str) -> PathBuf {
        let mut chain = openssl::stack::Stack::new().unwrap();
        chain.push(ca.cert.clone()).unwrap();
        let der = Pkcs12::builder()
            .name("server")
            .pkey(&self.key)
            .cert(&self.cert)
            .ca(chain)
            .build2(password)
            .unwrap()
            .to_der()
            .unwrap();
        let path = dir.join(name);
        std::fs::write(&path, der).unwrap();
        path
    }
}
