//! Email over TLS: a real SMTP relay on loopback speaking implicit TLS (smtps) or STARTTLS with a
//! certificate from a throwaway CA (rcgen), trusted through `smtp.ca_file`; the mail arrives
//! with its subject and body. Without that CA (the system's roots), or with another CA, the
//! certificate is refused and nothing is sent.
#![allow(clippy::unwrap_used)] // Tests panic on purpose: a failure here is a failed test.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cutover_config::{Notify, Secret, SecretError, SecretValue};
use cutover_notify::{Channel, Event, Notification, NotifyError, RetryPolicy, deliver_with};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncWrite, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// A throwaway CA (PEM) and a server certificate for `localhost` it signed (DER, with its key).
struct Pki {
    ca_pem: String,
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

fn make_pki(name: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("cutover mail CA {name}"));
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        cert: server_cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(server_key.serialize_der()),
    }
}

fn acceptor(pki: &Pki) -> TlsAcceptor {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![pki.cert.clone()],
            PrivateKeyDer::Pkcs8(pki.key.clone_key()),
        )
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// TLS from the first byte (smtps, port 465).
    Implicit,
    /// Plain greeting, `STARTTLS`, then TLS (submission, port 587).
    Starttls,
}

/// A mail the relay accepted, and whether the session was encrypted when it was sent.
#[derive(Debug, Default, Clone)]
struct Mail {
    encrypted: bool,
    from: String,
    to: Vec<String>,
    data: String,
}

type Mails = Arc<Mutex<Vec<Mail>>>;

/// An SMTP relay on 127.0.0.1 speaking TLS in `mode` with `pki`'s certificate.
async fn tls_relay(mode: Mode, pki: &Pki) -> (u16, Mails) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mails: Mails = Arc::default();
    let acceptor = acceptor(pki);
    let sink = mails.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (acceptor, mails) = (acceptor.clone(), sink.clone());
            tokio::spawn(async move {
                // A client that gives up on the certificate ends the session: not an error here.
                let _ = session(stream, mode, acceptor, mails).await;
            });
        }
    });
    (port, mails)
}

async fn session(
    stream: TcpStream,
    mode: Mode,
    acceptor: TlsAcceptor,
    mails: Mails,
) -> std::io::Result<()> {
    let stream = match mode {
        Mode::Implicit => stream,
        Mode::Starttls => {
            let mut plain = BufReader::new(stream);
            plain.write_all(b"220 relay.test ESMTP\r\n").await?;
            let mut line = String::new();
            loop {
                line.clear();
                if plain.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                let upper = line.trim_end().to_ascii_uppercase();
                if upper.starts_with("EHLO") {
                    plain
                        .write_all(b"250-relay.test\r\n250 STARTTLS\r\n")
                        .await?;
                } else if upper == "STARTTLS" {
                    plain.write_all(b"220 go ahead\r\n").await?;
                    break;
                } else {
                    // Nothing but EHLO and STARTTLS in clear (RFC 3207: 530 first).
                    plain.write_all(b"530 STARTTLS first\r\n").await?;
                }
            }
            assert!(
                plain.buffer().is_empty(),
                "the client sent before the handshake"
            );
            plain.into_inner()
        }
    };
    let tls = acceptor.accept(stream).await?;
    converse(tls, mode == Mode::Implicit, mails).await
}

/// The SMTP conversation after the handshake (RFC 5321: EHLO, MAIL, RCPT, DATA with
/// dot-unstuffing, RSET, QUIT).
async fn converse(
    stream: impl AsyncRead + AsyncWrite + Unpin,
    greet: bool,
    mails: Mails,
) -> std::io::Result<()> {
    let mut s = BufReader::new(stream);
    if greet {
        s.write_all(b"220 relay.test ESMTP\r\n").await?;
    }
    let mut mail = Mail {
        encrypted: true,
        ..Mail::default()
    };
    let mut line = String::new();
    loop {
        line.clear();
        if s.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let upper = line.trim_end().to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-relay.test\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            mail.from = line.trim_end()[10..].trim().to_owned();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            mail.to.push(line.trim_end()[8..].trim().to_owned());
            b"250 OK\r\n"
        } else if upper == "DATA" {
            s.write_all(b"354 go ahead\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if s.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            // The CRLF before the final dot belongs to the terminator (RFC 5321 4.1.1.4).
            data.truncate(data.strip_suffix("\r\n").unwrap_or(&data).len());
            mail.data = data;
            mails.lock().unwrap().push(mail.clone());
            b"250 queued\r\n"
        } else if upper.starts_with("RSET") || upper.starts_with("NOOP") {
            b"250 OK\r\n"
        } else if upper == "QUIT" {
            s.write_all(b"221 bye\r\n").await?;
            s.shutdown().await?;
            return Ok(());
        } else {
            b"502 not implemented\r\n"
        };
        s.write_all(reply).await?;
        s.flush().await?;
    }
}

/// The email channel of `[notify.email]` with `smtp` (inline TOML), secrets and files resolved
/// in `dir` (the project directory).
fn email_channel(dir: &Path, smtp: &str) -> Result<Channel, String> {
    let src = format!(
        "[project]\nname = \"hello\"\n\n[notify]\nevents = [\"released\"]\n\n[notify.email]\nfrom = \"cutover@example.com\"\nto = [\"team@example.com\"]\nsmtp = {smtp}\n"
    );
    let notify: Notify =
        cutover_config::load_str(&src, Path::new("cutover.toml"), &[] as &[(&str, &str)])
            .unwrap()
            .notify
            .unwrap();
    let resolve =
        |s: &Secret| -> Result<SecretValue, SecretError> { s.resolve(dir, &|_: &str| None) };
    let (mut channels, errors) = cutover_notify::channels(&notify, &resolve);
    match errors.first() {
        Some(e) => Err(e.message.clone()),
        None => Ok(channels.remove(0)),
    }
}

fn released() -> Notification {
    Notification {
        seq: 42,
        at: chrono::Utc::now(),
        event: Event::Released,
        title: "2.0.0 released".to_owned(),
        summary: "Release 2.0.0 of hello, from commit 1a2b3c4.".to_owned(),
        url: None,
        payload: json!({ "version": "2.0.0", "notes": "- feat: sign in with passkeys" }),
    }
}

async fn send(channel: &Channel) -> Result<u32, NotifyError> {
    let once = RetryPolicy {
        attempts: 1,
        first_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(10),
        attempt_timeout: Duration::from_secs(20),
    };
    deliver_with(channel, &released(), &once, None).await
}

#[tokio::test]
async fn implicit_tls_and_starttls_deliver_to_a_relay_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki("a");
    std::fs::write(dir.path().join("mail-ca.pem"), &pki.ca_pem).unwrap();
    for (mode, tls) in [(Mode::Implicit, "tls"), (Mode::Starttls, "starttls")] {
        let (port, mails) = tls_relay(mode, &pki).await;
        // A relative ca_file: relative to the project directory.
        let channel = email_channel(
            dir.path(),
            &format!(
                "{{ host = \"localhost\", port = {port}, tls = \"{tls}\", ca_file = \"mail-ca.pem\" }}"
            ),
        )
        .unwrap();
        let attempts = send(&channel)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        assert_eq!(attempts, 1);
        let mails = mails.lock().unwrap().clone();
        assert_eq!(mails.len(), 1, "{mode:?}: {mails:#?}");
        let mail = &mails[0];
        assert!(mail.encrypted);
        assert_eq!(mail.from, "<cutover@example.com>");
        assert_eq!(mail.to, ["<team@example.com>"]);
        let (head, body) = mail.data.split_once("\r\n\r\n").unwrap();
        assert!(
            head.lines()
                .any(|l| l == "Subject: [cutover] 2.0.0 released"),
            "{mode:?}: {head}"
        );
        assert!(head.contains("To: team@example.com"), "{head}");
        assert_eq!(
            body.replace("\r\n", "\n"),
            "2.0.0 released\n\nRelease 2.0.0 of hello, from commit 1a2b3c4.\n\n- feat: sign in with passkeys\n",
            "{mode:?}"
        );
    }
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused_and_nothing_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki("relay");
    let other = make_pki("other");
    std::fs::write(dir.path().join("other-ca.pem"), &other.ca_pem).unwrap();
    for (mode, tls) in [(Mode::Implicit, "tls"), (Mode::Starttls, "starttls")] {
        for ca in ["", ", ca_file = \"other-ca.pem\""] {
            let (port, mails) = tls_relay(mode, &pki).await;
            let channel = email_channel(
                dir.path(),
                &format!("{{ host = \"localhost\", port = {port}, tls = \"{tls}\"{ca} }}"),
            )
            .unwrap();
            let error = send(&channel).await.unwrap_err().to_string();
            assert!(
                error.starts_with(&format!("email: smtp localhost:{port}: ")),
                "{mode:?} {ca:?}: {error}"
            );
            assert!(
                error.to_lowercase().contains("certificate"),
                "{mode:?} {ca:?}: {error}"
            );
            assert!(mails.lock().unwrap().is_empty(), "{mode:?} {ca:?}");
        }
    }
}

#[test]
fn a_ca_file_that_is_missing_or_holds_no_certificate_is_a_channel_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.pem"), "not a certificate\n").unwrap();
    let missing = email_channel(
        dir.path(),
        "{ host = \"localhost\", tls = \"tls\", ca_file = \"nowhere.pem\" }",
    )
    .unwrap_err();
    assert!(
        missing.starts_with("cannot read its smtp.ca_file: "),
        "{missing}"
    );
    assert!(missing.contains("nowhere.pem"), "{missing}");
    let empty = email_channel(
        dir.path(),
        "{ host = \"localhost\", tls = \"tls\", ca_file = \"empty.pem\" }",
    )
    .unwrap_err();
    assert!(
        empty.contains("empty.pem holds no PEM certificate"),
        "{empty}"
    );
}
