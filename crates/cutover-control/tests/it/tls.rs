//! TLS between the agent and the control plane: a throwaway CA and server certificate made here
//! (rcgen), a real control plane serving https on loopback, and the agent's client trusting that CA
//! through a CA file; a client trusting another CA, or only the system's roots, is refused.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cutover_agent::client::{Client, ClientError, ControlUrl};
use cutover_agent::protocol::Register;
use cutover_control::{ControlError, ControlState};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio::sync::oneshot;

use super::{TOKEN, artifacts_dir, assignment, put_artifact, setup};

/// A CA (its certificate in `<dir>/<name>-ca.pem`) that signed a server certificate for
/// `localhost` and 127.0.0.1 (`<name>-server.pem`, key `<name>-server.key`).
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn make_pki(dir: &Path, name: &str, server_names: &[&str]) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("cutover test CA {name}"));
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let names: Vec<String> = server_names.iter().map(|s| (*s).to_owned()).collect();
    let server_cert = CertificateParams::new(names)
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let pki = Pki {
        ca: dir.join(format!("{name}-ca.pem")),
        cert: dir.join(format!("{name}-server.pem")),
        key: dir.join(format!("{name}-server.key")),
    };
    std::fs::write(&pki.ca, ca_cert.pem()).unwrap();
    std::fs::write(&pki.cert, server_cert.pem()).unwrap();
    std::fs::write(&pki.key, server_key.serialize_pem()).unwrap();
    pki
}

struct TlsPlane {
    addr: SocketAddr,
    state: ControlState,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), ControlError>>,
}

async fn serve_tls(
    dir: &Path,
    store: std::sync::Arc<dyn cutover_store::Store>,
    pki: &Pki,
) -> TlsPlane {
    let state = ControlState::with_timing(
        store,
        artifacts_dir(dir),
        Duration::from_millis(200),
        Duration::from_millis(50),
    );
    let config = cutover_control::tls_config(&pki.cert, &pki.key).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(cutover_control::serve_tls_on(
        listener,
        config,
        state.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    TlsPlane {
        addr,
        state,
        stop,
        task,
    }
}

fn register() -> Register {
    Register {
        name: "web-1".into(),
        agent_version: "1.2.3".into(),
        hostname: "h".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_registers_polls_and_downloads_over_tls() {
    let (dir, store) = setup().await;
    let pki = make_pki(dir.path(), "good", &["localhost", "127.0.0.1"]);
    let plane = serve_tls(dir.path(), store.clone(), &pki).await;
    let port = plane.addr.port();
    // By name (resolved, checked against the certificate's DNS name) and by IP address.
    for url in [
        format!("https://localhost:{port}"),
        format!("https://127.0.0.1:{port}/"),
    ] {
        let c = Client::new(ControlUrl::parse(&url, false).unwrap(), "web-1", TOKEN)
            .with_ca_file(&pki.ca)
            .unwrap();
        let registered = c.register(&register()).await.unwrap();
        assert_eq!(registered.poll_timeout, Duration::from_millis(200), "{url}");
    }
    let c = Client::new(
        ControlUrl::parse(&format!("https://localhost:{port}"), false).unwrap(),
        "web-1",
        TOKEN,
    )
    .with_ca_file(&pki.ca)
    .unwrap();
    let digest = put_artifact(dir.path());
    plane
        .state
        .put_assignment("web-1", &assignment(1, "1.0.0", &digest), "test")
        .await
        .unwrap();
    let polled = c.poll(0).await.unwrap();
    assert_eq!(polled.generation, 1);
    assert_eq!(
        polled.services["hello"].slots[&cutover_agent::Slot::Blue].artifact_sha256,
        digest
    );
    let dest = dir.path().join("dl/a.tar.zst");
    c.download_artifact(&digest, &dest).await.unwrap();
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(artifacts_dir(dir.path()).join(&digest)).unwrap()
    );
    // The token is checked over TLS as over any transport.
    let intruder = Client::new(
        ControlUrl::parse(&format!("https://localhost:{port}"), false).unwrap(),
        "web-1",
        "not-the-token",
    )
    .with_ca_file(&pki.ca)
    .unwrap();
    assert!(intruder.poll(0).await.unwrap_err().is_unauthorized());
    assert_eq!(
        store
            .get_host("web-1")
            .await
            .unwrap()
            .unwrap()
            .agent_version
            .as_deref(),
        Some("1.2.3")
    );
    let _ = plane.stop.send(());
    plane.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_or_for_another_name_is_refused() {
    let (dir, store) = setup().await;
    let good = make_pki(dir.path(), "good", &["localhost", "127.0.0.1"]);
    let other = make_pki(dir.path(), "other", &["localhost"]);
    let plane = serve_tls(dir.path(), store.clone(), &good).await;
    let url =
        ControlUrl::parse(&format!("https://localhost:{}", plane.addr.port()), false).unwrap();

    // Another CA: the handshake fails, and the error says which roots were trusted.
    let wrong_ca = Client::new(url.clone(), "web-1", TOKEN)
        .with_ca_file(&other.ca)
        .unwrap();
    let err = wrong_ca.register(&register()).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ClientError::Tls { .. }), "{msg}");
    assert!(msg.contains("UnknownIssuer"), "{msg}");
    assert!(msg.contains("other-ca.pem"), "{msg}");
    assert!(!msg.contains(TOKEN), "{msg}");

    // The system's roots do not know a throwaway CA either.
    let system = Client::new(url, "web-1", TOKEN);
    let err = system.register(&register()).await.unwrap_err();
    assert!(matches!(err, ClientError::Tls { .. }), "{err}");

    // The right CA, but the certificate does not name the host the URL names.
    let misnamed = make_pki(dir.path(), "misnamed", &["control.example.test"]);
    let plane2 = serve_tls(dir.path(), store.clone(), &misnamed).await;
    let c = Client::new(
        ControlUrl::parse(&format!("https://127.0.0.1:{}", plane2.addr.port()), false).unwrap(),
        "web-1",
        TOKEN,
    )
    .with_ca_file(&misnamed.ca)
    .unwrap();
    let err = c.register(&register()).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Tls { .. }) && err.to_string().contains("not valid for name"),
        "{err}"
    );

    // Nothing was registered by the refused clients.
    assert_eq!(
        store
            .get_host("web-1")
            .await
            .unwrap()
            .unwrap()
            .agent_version,
        None
    );
    for p in [plane, plane2] {
        let _ = p.stop.send(());
        p.task.await.unwrap().unwrap();
    }
}

#[test]
fn plain_http_to_a_remote_address_stays_refused_without_the_flag() {
    // Parsing only: no traffic leaves loopback.
    let err = ControlUrl::parse("http://192.0.2.7:7000", false).unwrap_err();
    assert!(matches!(err, ClientError::RemoteHttp { .. }), "{err}");
    assert!(err.to_string().contains("use https"), "{err}");
    assert!(ControlUrl::parse("http://192.0.2.7:7000", true).is_ok());
    assert!(ControlUrl::parse("https://192.0.2.7:7000", false).is_ok());
    assert!(ControlUrl::parse("http://127.0.0.1:7000", false).is_ok());
}

#[test]
fn bad_certificate_and_key_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let a = make_pki(dir.path(), "a", &["localhost"]);
    let b = make_pki(dir.path(), "b", &["localhost"]);
    let missing = dir.path().join("missing.pem");
    let err = cutover_control::tls_config(&missing, &a.key).unwrap_err();
    assert!(
        matches!(&err, ControlError::Tls { path, .. } if path == &missing),
        "{err}"
    );
    // A key that is not the certificate's.
    let err = cutover_control::tls_config(&a.cert, &b.key).unwrap_err();
    assert!(
        matches!(&err, ControlError::Tls { path, .. } if path == &b.key),
        "{err}"
    );
    // A certificate file with no certificate in it.
    let err = cutover_control::tls_config(&a.key, &a.key).unwrap_err();
    assert!(err.to_string().contains("no certificate"), "{err}");
    // The agent's CA file is checked the same way.
    let url = ControlUrl::parse("https://localhost:1", false).unwrap();
    let err = Client::new(url, "web-1", TOKEN)
        .with_ca_file(&a.key)
        .unwrap_err();
    assert!(matches!(err, ClientError::CaFile { .. }), "{err}");
    assert!(cutover_control::tls_config(&a.cert, &a.key).is_ok());
}
