//! The client against loopback servers: statuses, failures, TLS trust, body framing,
//! limits and deadlines.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

#[tokio::test]
async fn a_non_2xx_answer_and_a_closed_port_are_failures() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for answer in ["HTTP/1.1 503 Busy\r\n\r\n", "HTTP/1.1 202 Accepted\r\n\r\n"] {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            s.write_all(answer.as_bytes()).await.unwrap();
        }
    });
    let url = HttpUrl::parse(&format!("http://{addr}/x")).unwrap();
    let t = Duration::from_secs(20);
    let err = post(&url, &[], b"{}", None, t).await.unwrap_err();
    assert!(matches!(err, HttpError::Status { status: 503 }), "{err}");
    post(&url, &[], b"{}", None, t).await.unwrap();
    // The listener is gone now.
    let err = post(&url, &[], b"{}", None, t).await.unwrap_err();
    assert!(matches!(err, HttpError::Connect { .. }), "{err}");
}

#[tokio::test]
async fn an_https_hook_refuses_a_server_without_a_trusted_certificate() {
    // A plain-TCP server that answers the ClientHello with garbage: the handshake
    // must fail as a TLS error, not hang or pass.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    });
    let url = HttpUrl::parse(&format!("https://localhost:{}/x", addr.port())).unwrap();
    let client = TlsClient::new();
    let err = post(&url, &[], b"{}", Some(&client), Duration::from_secs(20))
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::Tls { .. }), "{err}");
}

#[tokio::test]
async fn an_https_hook_trusts_a_ca_given_to_it_and_refuses_it_otherwise() {
    use crate::transport::pki;
    let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_083_200);
    // A private CA, as an operator's internal one, and a server certificate from it.
    let ca = pki::create_ca("internal CA", now, 30).unwrap();
    let server = pki::issue_node(&ca, "localhost", now, 10).unwrap();
    let chain = crate::transport::identity::parse_certificates(
        std::path::Path::new("server"),
        server.cert.as_bytes(),
    )
    .unwrap();
    use rustls::pki_types::pem::PemObject;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(server.key.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    let url = HttpUrl::parse(&format!("https://localhost:{}/x", addr.port())).unwrap();
    let t = Duration::from_secs(20);
    // Only Mozilla's and the system's roots: the private CA is unknown.
    let err = post(&url, &[], b"{}", Some(&TlsClient::trusting(&[])), t)
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::Tls { .. }), "{err}");
    // With the CA added (what https_ca_file does), the same server is trusted.
    let ca_certs = crate::transport::identity::parse_certificates(
        std::path::Path::new("ca"),
        ca.cert.as_bytes(),
    )
    .unwrap();
    post(&url, &[], b"{}", Some(&TlsClient::trusting(&ca_certs)), t)
        .await
        .unwrap();
}

/// Serves each of `answers` to one connection, then holds that connection open, so
/// a client that waits for the end of the stream waits forever.
async fn serve_and_hold(answers: Vec<Vec<u8>>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        for answer in answers {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            s.write_all(&answer).await.unwrap();
            held.push(s);
        }
        std::future::pending::<()>().await;
    });
    addr
}

#[tokio::test]
async fn a_get_reads_a_sized_or_chunked_body_without_waiting_for_the_close() {
    let addr = serve_and_hold(vec![
        b"HTTP/1.1 500 Oops\r\nContent-Length: 5\r\n\r\nhello, and more".to_vec(),
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n"
            .to_vec(),
    ])
    .await;
    let url = HttpUrl::parse(&format!("http://{addr}/health")).unwrap();
    // The request's own timeout is far past the test's: reaching it is a failure.
    let get = |limit| {
        tokio::time::timeout(
            Duration::from_secs(30),
            get(&url, None, Duration::from_secs(300), limit),
        )
    };
    let answer = get(4096).await.expect("the Content-Length ends the body");
    assert_eq!(
        answer.unwrap(),
        Answer {
            status: 500,
            body: b"hello".to_vec()
        }
    );
    let answer = get(4096).await.expect("the last chunk ends the body");
    assert_eq!(answer.unwrap().body, b"hello world");
}

#[tokio::test]
async fn a_get_keeps_at_most_the_limit_and_what_came_before_the_deadline() {
    let mut long = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
    long.extend(std::iter::repeat_n(b'x', 10_000));
    let addr = serve_and_hold(vec![
        long,
        b"HTTP/1.1 429 Slow Down\r\n\r\npartial".to_vec(),
        b"HTTP/1.1 200 OK\r\nContent-Le".to_vec(),
    ])
    .await;
    let url = HttpUrl::parse(&format!("http://{addr}/")).unwrap();
    let answer = get(&url, None, Duration::from_secs(20), 4096)
        .await
        .unwrap();
    assert_eq!((answer.status, answer.body.len()), (200, 4096));
    // No length and the connection held open: the deadline ends the body.
    let t = Duration::from_millis(300);
    let answer = get(&url, None, t, 4096).await.unwrap();
    assert_eq!(
        (answer.status, answer.body.as_slice()),
        (429, &b"partial"[..])
    );
    // Cut off inside the head and held open: no answer, so a timeout.
    let err = get(&url, None, t, 4096).await.unwrap_err();
    assert!(matches!(err, HttpError::Timeout(_)), "{err}");
}

#[tokio::test]
async fn a_get_without_a_status_line_in_time_is_a_timeout() {
    let addr = serve_and_hold(vec![Vec::new()]).await;
    let url = HttpUrl::parse(&format!("http://{addr}/")).unwrap();
    let t = Duration::from_millis(200);
    let err = get(&url, None, t, 4096).await.unwrap_err();
    assert!(matches!(err, HttpError::Timeout(_)), "{err}");
}

/// Accepts one connection, reads the request until its body is in (or the client
/// closes), answers 204 and hands back what the client sent.
async fn capture_one() -> (std::net::SocketAddr, tokio::task::JoinHandle<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&got).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |n| n.parse::<usize>().unwrap());
                if body.len() >= length {
                    break;
                }
            }
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let _ = s
            .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            .await;
        String::from_utf8(got).unwrap()
    });
    (addr, seen)
}

#[tokio::test]
async fn a_post_carries_json_its_headers_and_the_body() {
    let (addr, seen) = capture_one().await;
    let url = HttpUrl::parse(&format!("http://{addr}/a?b=1")).unwrap();
    let headers = [("X-Team".to_owned(), "ops".to_owned())];
    post(&url, &headers, b"{\"a\":1}", None, Duration::from_secs(20))
        .await
        .unwrap();
    let text = seen.await.unwrap();
    assert!(text.starts_with("POST /a?b=1 HTTP/1.1\r\n"), "{text}");
    for line in [
        format!("host: {addr}"),
        format!("user-agent: {USER_AGENT}"),
        "content-type: application/json".into(),
        "content-length: 7".into(),
        "connection: close".into(),
        "x-team: ops".into(),
    ] {
        assert!(text.contains(&format!("{line}\r\n")), "{line}: {text}");
    }
    assert!(text.ends_with("\r\n\r\n{\"a\":1}"), "{text}");
}

#[tokio::test]
async fn a_get_asks_for_anything_and_sends_no_body() {
    let (addr, seen) = capture_one().await;
    let url = HttpUrl::parse(&format!("http://{addr}/health")).unwrap();
    let answer = get(&url, None, Duration::from_secs(20), 64).await.unwrap();
    assert_eq!(answer.status, 204);
    let text = seen.await.unwrap();
    assert!(text.starts_with("GET /health HTTP/1.1\r\n"), "{text}");
    assert!(text.contains("accept: */*\r\n"), "{text}");
    assert!(!text.contains("content-length"), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "{text}");
}

#[tokio::test]
async fn a_header_that_is_not_one_is_refused_before_connecting() {
    let url = HttpUrl::parse("http://127.0.0.1:9/").unwrap();
    let headers = [("X-Bad".to_owned(), "a\r\nInjected: 1".to_owned())];
    let err = post(&url, &headers, b"{}", None, Duration::from_secs(20))
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::Header { .. }), "{err}");
}

#[tokio::test]
async fn an_answer_that_is_not_http_is_a_bad_response() {
    let addr = serve_and_hold(vec![b"SSH-2.0-OpenSSH_9.6\r\n".to_vec()]).await;
    let url = HttpUrl::parse(&format!("http://{addr}/")).unwrap();
    let err = get(&url, None, Duration::from_secs(20), 64)
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::Response(_)), "{err}");
}
