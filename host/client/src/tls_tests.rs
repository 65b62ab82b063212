//! TLS: the right CA connects, a wrong one is a TLS error that is not retried, and mutual TLS
//! presents the client's certificate. Certificates are made fresh with `rcgen`.

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SanType};
use remex_store::LocalStore;
use tempfile::TempDir;

use crate::client_tests::options_for;
use crate::fake::{FakeConfig, FakeServer, FakeTls, InstantClock};
use crate::{ReapiError, RemoteClient, RemoteOptions};

/// A certificate authority and a certificate it signed, in PEM.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn pki(name: &str) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} CA"));
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("ca");

    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    let localhost = std::net::IpAddr::from([127, 0, 0, 1]);
    params.subject_alt_names.push(SanType::IpAddress(localhost));
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca).expect("signed");
    Pki {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

fn write(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write");
    path
}

async fn tls_server(server: &Pki, client_ca: Option<&Pki>) -> FakeServer {
    let config = FakeConfig {
        tls: Some(FakeTls {
            cert_pem: server.cert_pem.clone(),
            key_pem: server.key_pem.clone(),
            client_ca_pem: client_ca.map(|p| p.ca_pem.clone()),
        }),
        ..FakeConfig::default()
    };
    FakeServer::start(config).await.expect("fake")
}

async fn connect(options: RemoteOptions, dir: &TempDir) -> Result<RemoteClient, ReapiError> {
    let store = LocalStore::open(dir.path().join("store")).expect("store");
    RemoteClient::connect(options, store).await
}

#[tokio::test]
async fn the_right_ca_connects() {
    let pki = pki("server");
    let server = tls_server(&pki, None).await;
    assert!(server.address().starts_with("grpcs://127.0.0.1:"));
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(InstantClock::default());
    let mut options = options_for(&server, &clock);
    options.ca_certs_path = Some(write(&dir, "ca.pem", &pki.ca_pem));

    connect(options, &dir).await.expect("connects");
}

#[tokio::test]
async fn a_wrong_ca_is_a_tls_error_and_is_not_retried() {
    let server = tls_server(&pki("server"), None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(InstantClock::default());
    let mut options = options_for(&server, &clock);
    options.ca_certs_path = Some(write(&dir, "ca.pem", &pki("stranger").ca_pem));

    let error = connect(options, &dir).await.expect_err("refused");
    assert!(matches!(error, ReapiError::Tls { .. }), "{error:?}");
    assert!(
        error.to_string().contains("remote_ca_certs_path"),
        "{error}"
    );
    assert!(clock.sleeps().is_empty(), "{:?}", clock.sleeps());
}

#[tokio::test]
async fn mutual_tls_presents_the_client_certificate() {
    let server_pki = pki("server");
    let client_pki = pki("client");
    let server = tls_server(&server_pki, Some(&client_pki)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(InstantClock::default());
    let mut options = options_for(&server, &clock);
    options.ca_certs_path = Some(write(&dir, "ca.pem", &server_pki.ca_pem));

    let error = connect(options.clone(), &dir)
        .await
        .expect_err("no client certificate");
    assert!(
        error.code().is_some() || matches!(error, ReapiError::Tls { .. }),
        "{error:?}"
    );

    options.client_certs_path = Some(write(&dir, "client.pem", &client_pki.cert_pem));
    options.client_key_path = Some(write(&dir, "client.key", &client_pki.key_pem));
    connect(options, &dir)
        .await
        .expect("connects with its certificate");
}

#[tokio::test]
async fn a_ca_file_that_is_not_pem_names_the_option() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = RemoteOptions::new("grpcs://127.0.0.1:1");
    options.ca_certs_path = Some(write(&dir, "ca.pem", "not a certificate"));
    let error = connect(options, &dir).await.expect_err("refused");
    assert!(
        error.to_string().contains("`remote_ca_certs_path`"),
        "{error}"
    );
}
