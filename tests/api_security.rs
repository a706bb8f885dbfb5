//! The local API against a hostile web page and a flood of clients, on a real agent
//! started with the default settings (a cluster key and a data dir, no token file): the
//! attacks of issue #15, each refused, with the agent still a member afterwards and the
//! CLI's changes still working with the token it generated.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use muster::transport::ClusterKey;
use support::{Agent, DEADLINE, POLL, command, eventually, free_port, now};

/// Starts a keyed agent (not `--dev`) with its data dir in `dir`, its API on a free
/// loopback port, no DNS, and `extra` arguments; `wrapper` runs it under another program
/// (e.g. `prlimit`). Returns it with its API address.
fn start_keyed(
    name: &str,
    dir: &Path,
    extra: &[&str],
    wrapper: &[&str],
) -> Result<(Agent, SocketAddr)> {
    let key = dir.join("cluster.key");
    if !key.exists() {
        std::fs::write(&key, format!("{}\n", ClusterKey::generate()?))?;
    }
    let port = free_port();
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut cmd = Command::new(program);
            cmd.args(args).arg(support::BIN);
            for (var, _) in std::env::vars_os() {
                if var.to_string_lossy().starts_with("MUSTER_") {
                    cmd.env_remove(var);
                }
            }
            cmd
        }
        None => command(),
    };
    cmd.args(["agent", "--profile", "local", "--log-format", "json"])
        .args(["--name", name, "--bind", &format!("127.0.0.1:{port}")])
        .args(["--cluster-key", &key.display().to_string()])
        .args(["--data-dir", &dir.join("data").display().to_string()])
        .args(["--api-addr", "127.0.0.1:0", "--dns-addr", "off"])
        .args(extra);
    let agent = Agent::spawn(name, port, cmd)?;
    eventually("the agent serves its API", &[&agent], || {
        agent.first_field("HTTP API listening", "api").is_some()
    })?;
    let api = agent
        .first_field("HTTP API listening", "api")
        .and_then(|v| v.as_str()?.parse().ok())
        .context("the API address parses")?;
    Ok((agent, api))
}

/// Sends `request` as written and reads the answer: its status and body.
fn raw(addr: SocketAddr, request: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request.as_bytes())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("an HTTP answer: {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// A request with `headers` (each ending in CRLF) and `body`.
fn request(method: &str, path: &str, headers: &str, body: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// This agent's own status as it reports it.
fn own_status(api: SocketAddr) -> Result<String> {
    let (status, body) = raw(
        api,
        &request("GET", "/v1/self", &format!("Host: {api}\r\n"), ""),
    )?;
    anyhow::ensure!(status == 200, "GET /v1/self: {status} {body}");
    let value: serde_json::Value = serde_json::from_str(&body)?;
    Ok(value["status"].as_str().unwrap_or_default().to_owned())
}

#[test]
fn a_web_pages_requests_are_refused_and_the_clis_changes_work_with_the_generated_token()
-> Result<()> {
    let dir = tempfile::tempdir()?;
    let (mut agent, api) = start_keyed("sec-a", dir.path(), &[], &[])?;
    let data = dir.path().join("data");
    let token_file = data.join("api.token");
    let token = std::fs::read_to_string(&token_file)?.trim().to_owned();
    assert_eq!(token.len(), 64, "a generated token: {token:?}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file)?.permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the token file is private");
    }
    // The cluster key was written with the default umask (readable by others): warned
    // about; the token file is private: not.
    eventually("a warning about the readable key file", &[&agent], || {
        agent.count_where(
            "a secret file is readable by other users of this host: chmod 600 it",
            "field",
            "cluster_key_file",
        ) == 1
    })?;
    assert_eq!(
        agent.count_where(
            "a secret file is readable by other users of this host: chmod 600 it",
            "field",
            "api_token_file",
        ),
        0,
        "{}",
        agent.tail()
    );
    let host = format!("Host: {api}\r\n");
    let evil_host = format!("Host: attacker.example:{}\r\n", api.port());
    let pwn = r#"{"port": 1, "checks": [{"exec": ["id"]}]}"#;
    let json = "Content-Type: application/json\r\n";
    let bearer = format!("Authorization: Bearer {token}\r\n");
    let foreign = "Origin: http://attacker.example\r\n";
    let cases: Vec<(&str, String, u16)> = vec![
        (
            "DNS rebinding: an exec check under a foreign Host",
            request(
                "PUT",
                "/v1/services/pwn",
                &format!("{evil_host}{foreign}{json}"),
                pwn,
            ),
            421,
        ),
        (
            "DNS rebinding: a read under a foreign Host",
            request("GET", "/v1/members", &evil_host, ""),
            421,
        ),
        (
            "an exec check from a page on the right Host, no token",
            request("PUT", "/v1/services/pwn", &format!("{host}{json}"), pwn),
            401,
        ),
        (
            "an exec check with the token",
            request(
                "PUT",
                "/v1/services/pwn",
                &format!("{host}{json}{bearer}"),
                pwn,
            ),
            403,
        ),
        (
            "a form-encoded leave with a foreign Origin",
            request(
                "POST",
                "/v1/leave",
                &format!("{host}{foreign}Content-Type: application/x-www-form-urlencoded\r\n"),
                "a=b",
            ),
            403,
        ),
        (
            "a leave marked Sec-Fetch-Site: cross-site",
            request(
                "POST",
                "/v1/leave",
                &format!("{host}Sec-Fetch-Site: cross-site\r\n"),
                "",
            ),
            403,
        ),
        (
            "a leave with no Origin and no token",
            request("POST", "/v1/leave", &host, ""),
            401,
        ),
        (
            "a form-encoded leave with the token",
            request(
                "POST",
                "/v1/leave",
                &format!("{host}{bearer}Content-Type: application/x-www-form-urlencoded\r\n"),
                "a=b",
            ),
            415,
        ),
        (
            "a text/plain tag change with the token",
            request(
                "PUT",
                "/v1/self/tags",
                &format!("{host}{bearer}Content-Type: text/plain\r\n"),
                r#"{"set": {"pwned": "1"}}"#,
            ),
            415,
        ),
    ];
    for (what, text, expected) in &cases {
        let (status, body) = raw(api, text)?;
        assert_eq!(status, *expected, "{what}: {body}");
        let error: serde_json::Value = serde_json::from_str(&body)
            .with_context(|| format!("{what}: a JSON error body: {body:?}"))?;
        assert!(error["error"].is_string(), "{what}: {body}");
    }
    // Still a member, still running, nothing registered.
    assert_eq!(own_status(api)?, "alive");
    assert!(agent.child.try_wait()?.is_none(), "the agent still runs");
    let (status, _) = raw(api, &request("GET", "/v1/services/pwn", &host, ""))?;
    assert_eq!(status, 404, "no service pwn");

    // The CLI finds the token in the data dir (`--data-dir`, or MUSTER_DATA_DIR).
    let api_arg = api.to_string();
    let without = command()
        .args(["tags", "set", "role=web", "--api-addr", &api_arg])
        .output()?;
    assert!(
        !without.status.success(),
        "a change without a token is refused"
    );
    let stderr = String::from_utf8_lossy(&without.stderr);
    assert!(stderr.contains("token"), "{stderr}");
    let tags = command()
        .args(["tags", "set", "role=web", "--api-addr", &api_arg])
        .env("MUSTER_DATA_DIR", &data)
        .output()?;
    assert!(
        tags.status.success(),
        "{}",
        String::from_utf8_lossy(&tags.stderr)
    );
    let members = command()
        .args(["members", "--json", "--api-addr", &api_arg])
        .output()?;
    let listed = String::from_utf8_lossy(&members.stdout);
    assert!(
        listed.contains(r#""role":"web""#) || listed.contains(r#""role": "web""#),
        "{listed}"
    );
    let leave = command()
        .args(["leave", "--api-addr", &api_arg])
        .args(["--data-dir", &data.display().to_string()])
        .output()?;
    assert!(
        leave.status.success(),
        "{}",
        String::from_utf8_lossy(&leave.stderr)
    );
    let exit = agent.wait_exit()?;
    assert!(exit.success(), "the agent left and exited: {exit}");
    Ok(())
}

#[test]
fn reads_need_the_token_with_api_read_token_except_health() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, "api_read_token = true\n")?;
    let (_agent, api) = start_keyed(
        "sec-r",
        dir.path(),
        &["--config", &config.display().to_string()],
        &[],
    )?;
    let host = format!("Host: {api}\r\n");
    let (status, body) = raw(api, &request("GET", "/v1/members", &host, ""))?;
    assert_eq!(status, 401, "{body}");
    let (status, body) = raw(api, &request("GET", "/v1/health", &host, ""))?;
    assert_eq!(status, 200, "health stays open: {body}");
    let token = std::fs::read_to_string(dir.path().join("data/api.token"))?;
    let bearer = format!("Authorization: Bearer {}\r\n", token.trim());
    let (status, body) = raw(
        api,
        &request("GET", "/v1/members", &format!("{host}{bearer}"), ""),
    )?;
    assert_eq!(status, 200, "{body}");
    // The CLI sends the token it finds on reads too.
    let members = command()
        .args(["members", "--api-addr", &api.to_string()])
        .args(["--data-dir", &dir.path().join("data").display().to_string()])
        .output()?;
    assert!(
        members.status.success(),
        "{}",
        String::from_utf8_lossy(&members.stderr)
    );
    Ok(())
}

/// The config of an agent with one service whose `exec` check runs every 200 ms.
const EXEC_SERVICE: &str = r#"
[[services]]
name = "job"
port = 9090

[[services.checks]]
exec = ["/bin/true"]
interval = "200ms"
timeout = "200ms"
success_threshold = 1
failure_threshold = 1
"#;

/// The local `job` instance's check, as `GET /v1/services/job` shows it.
fn job_check(api: SocketAddr) -> Result<serde_json::Value> {
    let (status, body) = raw(
        api,
        &request("GET", "/v1/services/job", &format!("Host: {api}\r\n"), ""),
    )?;
    anyhow::ensure!(status == 200, "GET /v1/services/job: {status} {body}");
    let value: serde_json::Value = serde_json::from_str(&body)?;
    Ok(value["local"]["health"]["checks"][0].clone())
}

#[test]
fn three_hundred_half_sent_requests_under_256_descriptors_are_closed_and_checks_keep_passing()
-> Result<()> {
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("SKIPPED: prlimit (util-linux) is not installed");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, EXEC_SERVICE)?;
    let (agent, api) = start_keyed(
        "sec-fd",
        dir.path(),
        &["--config", &config.display().to_string()],
        &["prlimit", "--nofile=256:256", "--"],
    )?;
    let limit = agent
        .first_field("HTTP API listening", "fd_limit")
        .and_then(|v| v.as_u64());
    assert_eq!(limit, Some(256), "{}", agent.tail());
    eventually("the exec check passes", &[&agent], || {
        job_check(api).is_ok_and(|c| c["status"] == "passing")
    })?;
    let before = job_check(api)?;

    // Three hundred connections that each send half a request head and stall.
    let started = now();
    let mut stalled = Vec::new();
    for _ in 0..300 {
        let mut stream = TcpStream::connect_timeout(&api, Duration::from_secs(5))?;
        // Some are refused at once (503 and closed): the write may fail then.
        let _ = stream.write_all(b"GET /v1/members HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Sl");
        stream.set_read_timeout(Some(POLL))?;
        stalled.push(stream);
    }
    // Every one is closed by the agent: refused at once, or at the header timeout.
    let mut open: Vec<TcpStream> = stalled;
    let mut buf = [0u8; 512];
    while !open.is_empty() {
        anyhow::ensure!(
            started.elapsed() < DEADLINE,
            "{} of 300 stalled connections still open after {DEADLINE:?}",
            open.len()
        );
        open.retain_mut(|s| {
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break false,
                    Ok(_) => continue,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        break true;
                    }
                    Err(_) => break false,
                }
            }
        });
    }
    let closed_after = started.elapsed();
    eprintln!("all 300 stalled connections closed after {closed_after:?}");

    // The check never failed meanwhile (its status changed once, pending to passing),
    // and it kept running.
    eventually("the API answers again", &[&agent], || {
        job_check(api).is_ok()
    })?;
    let after = job_check(api)?;
    assert_eq!(after["status"], "passing", "{after}");
    let changes = agent.count_where("health check status changed", "service", "job");
    assert_eq!(changes, 1, "{}", agent.tail());
    let ran = |c: &serde_json::Value| c["last_run_ms"].as_u64().unwrap_or(0);
    assert!(
        ran(&after) > ran(&before),
        "the check kept running: {before} then {after}"
    );
    // The limit was reached and counted.
    let (status, metrics) = raw(
        api,
        &request("GET", "/metrics", &format!("Host: {api}\r\n"), ""),
    )?;
    assert_eq!(status, 200);
    let refused = metrics
        .lines()
        .find_map(|l| l.strip_prefix("muster_api_connections_refused_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .context("the refused counter")?;
    assert!(refused > 0.0, "{metrics}");
    Ok(())
}

/// `GET path` over TLS to `api`, trusting `ca_pem`, with SNI and `Host` `localhost`.
fn https_get(api: SocketAddr, ca_pem: &str, path: &str) -> Result<(u16, String)> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes())?)?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connection = rustls::ClientConnection::new(
        std::sync::Arc::new(config),
        ServerName::try_from("localhost")?,
    )?;
    let tcp = TcpStream::connect_timeout(&api, Duration::from_secs(5))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    tls.write_all(
        request(
            "GET",
            path,
            &format!("Host: localhost:{}\r\n", api.port()),
            "",
        )
        .as_bytes(),
    )?;
    let mut answer = Vec::new();
    // A server that closes without close_notify is an error here; keep what came.
    let _ = tls.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("an HTTP answer: {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

#[test]
fn the_api_speaks_https_with_api_tls_cert_and_key() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let cert_pem = certified.cert.pem();
    let cert = dir.path().join("api.crt");
    let key = dir.path().join("api.key");
    std::fs::write(&cert, &cert_pem)?;
    std::fs::write(&key, certified.signing_key.serialize_pem())?;
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "api_tls_cert = {:?}\napi_tls_key = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        ),
    )?;
    let (agent, api) = start_keyed(
        "sec-tls",
        dir.path(),
        &["--config", &config.display().to_string()],
        &[],
    )?;
    assert_eq!(
        agent
            .first_field("HTTP API listening", "tls")
            .and_then(|v| v.as_bool()),
        Some(true)
    );
    let (status, body) = https_get(api, &cert_pem, "/v1/health")?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = https_get(api, &cert_pem, "/v1/self")?;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"sec-tls\""), "{body}");
    // Plain HTTP to the same port gets no HTTP answer.
    let plain = raw(
        api,
        &request("GET", "/v1/health", &format!("Host: {api}\r\n"), ""),
    );
    assert!(plain.is_err(), "{plain:?}");
    Ok(())
}
