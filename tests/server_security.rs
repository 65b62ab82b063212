//! The embedded server over TLS, over mutual TLS, and behind a bearer token, with certificates
//! made in the test; once in-process and once through `remex serve`'s flags.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use remex_proto::reapi;
use remex_proto::reapi::capabilities_client::CapabilitiesClient;
use remex_server::TlsOptions;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::server_fixture::{ServeProcess, TestServer};

/// A CA, a server certificate for `localhost` and 127.0.0.1, and a client certificate.
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "remex test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("CA");

    let (server_cert, server_key) = leaf(
        &ca,
        vec!["localhost".into(), "127.0.0.1".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_cert, client_key) = leaf(
        &ca,
        vec!["client".into()],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    Pki {
        ca: ca.pem(),
        server_cert,
        server_key,
        client_cert,
        client_key,
    }
}

fn leaf(
    ca: &CertifiedIssuer<'_, KeyPair>,
    names: Vec<String>,
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(names).expect("params");
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, &**ca).expect("signed");
    (cert.pem(), key.serialize_pem())
}

fn tls_options(pki: &Pki, mutual: bool) -> TlsOptions {
    TlsOptions {
        certificate_pem: pki.server_cert.clone().into_bytes(),
        private_key_pem: pki.server_key.clone().into_bytes(),
        client_ca_pem: mutual.then(|| pki.ca.clone().into_bytes()),
    }
}

/// A TLS channel trusting the test CA, with the client certificate if `identity`.
async fn tls_channel(
    addr: std::net::SocketAddr,
    pki: &Pki,
    identity: bool,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca))
        .domain_name("localhost");
    if identity {
        tls = tls.identity(Identity::from_pem(&pki.client_cert, &pki.client_key));
    }
    Channel::from_shared(format!("https://{addr}"))
        .expect("url")
        .tls_config(tls)?
        .connect()
        .await
}

async fn capabilities(channel: Channel) -> Result<reapi::ServerCapabilities, tonic::Status> {
    let mut client = CapabilitiesClient::new(channel);
    let request = reapi::GetCapabilitiesRequest::default();
    Ok(client.get_capabilities(request).await?.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_over_tls() {
    let pki = pki();
    let server = TestServer::start_with(|b| b.tls(tls_options(&pki, false))).await;
    let channel = tls_channel(server.addr, &pki, false)
        .await
        .expect("TLS connects");
    capabilities(channel).await.expect("capabilities over TLS");

    let plaintext = server.channel().await;
    assert!(
        capabilities(plaintext).await.is_err(),
        "plaintext is not served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_clients_without_a_certificate() {
    let pki = pki();
    let server = TestServer::start_with(|b| b.tls(tls_options(&pki, true))).await;
    let channel = tls_channel(server.addr, &pki, true)
        .await
        .expect("mTLS connects");
    capabilities(channel)
        .await
        .expect("capabilities over mutual TLS");

    let refused = match tls_channel(server.addr, &pki, false).await {
        Ok(channel) => capabilities(channel).await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "a client without a certificate is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_the_bearer_token_are_unauthenticated() {
    let server = TestServer::start_with(|b| b.auth_token("s3cret-token")).await;
    let status = capabilities(server.channel().await)
        .await
        .expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated);

    let mut client = CapabilitiesClient::new(server.channel().await);
    let mut request = tonic::Request::new(reapi::GetCapabilitiesRequest::default());
    let header = MetadataValue::try_from("Bearer s3cret-token").expect("ascii");
    request.metadata_mut().insert("authorization", header);
    client
        .get_capabilities(request)
        .await
        .expect("with the token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remex_serve_takes_tls_client_ca_and_token_files() {
    let pki = pki();
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, content: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).expect("write");
        path.display().to_string()
    };
    let cert = write("server.pem", &pki.server_cert);
    let key = write("server.key", &pki.server_key);
    let ca = write("ca.pem", &pki.ca);
    let token = write("token", "from-a-file\n");
    let args = [
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--tls-client-ca",
        &ca,
        "--auth-token-file",
        &token,
        "--platform",
        "OSFamily=linux",
    ];
    let server = ServeProcess::spawn(&dir.path().join("store"), &args);

    let channel = tls_channel(server.addr, &pki, true)
        .await
        .expect("mTLS connects");
    let status = capabilities(channel.clone()).await.expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated);

    let mut client = CapabilitiesClient::new(channel);
    let mut request = tonic::Request::new(reapi::GetCapabilitiesRequest::default());
    let header = MetadataValue::try_from("Bearer from-a-file").expect("ascii");
    request.metadata_mut().insert("authorization", header);
    client
        .get_capabilities(request)
        .await
        .expect("token and certificate");
}
