//! Seeds given as host names are resolved again at every join retry (and seed
//! re-contact), so an agent follows a name whose address changes: in two namespace
//! hosts, `seed` first names an address where no agent runs, so the second agent's join
//! fails and retries; once host2's `/etc/hosts` points `seed` at the first agent, a
//! following retry joins it, with no restart and no command.
//!
//! A seed written without a port is looked up as `_muster._udp.NAME` SRV records: the
//! second test serves those from its own DNS server inside a namespace and moves the
//! record's port from where nothing listens to the first agent's.
//!
//! Needs root and `ip`; without root it skips with a message.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};

use anyhow::{Result, ensure};
use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::SRV;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use support::netns::{self, is_root};
use support::{Agent, BIN, POLL, now};

/// Join retries back off up to 30 s: a generous bound for the one after the change.
const JOIN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(90);

/// Polls until `check` holds, or fails after [`JOIN_DEADLINE`] with `agents`' logs.
fn wait(what: &str, agents: &[&Agent], check: impl Fn() -> bool) -> Result<std::time::Duration> {
    let started = now();
    while !check() {
        if started.elapsed() > JOIN_DEADLINE {
            let tails: String = agents.iter().map(|a| a.tail()).collect();
            anyhow::bail!("{what}: not within {JOIN_DEADLINE:?}\n{tails}");
        }
        std::thread::sleep(POLL);
    }
    Ok(started.elapsed())
}

#[test]
fn a_seed_name_that_moves_is_followed_at_the_next_join_retry() -> Result<()> {
    if !is_root() {
        eprintln!("SKIPPED: the seed-name test needs root (ip netns)");
        return Ok(());
    }
    let net = netns::Lab::build("sn", &["10.205.0.1", "10.205.0.2"])?;
    // Nothing answers at 10.205.0.9.
    net.set_hosts(1, &[("10.205.0.9", "seed")])?;
    let dir = tempfile::tempdir()?;
    let key = dir.path().join("cluster.key");
    let generated = std::process::Command::new(BIN)
        .args(["keygen", "--out", &key.display().to_string()])
        .output()?;
    ensure!(generated.status.success(), "keygen");
    let start = |i: usize, name: &str, join: Option<&str>| -> Result<Agent> {
        let mut command = net.exec(i, BIN);
        command
            .arg("agent")
            .args(["--name", name, "--cluster-key", &key.display().to_string()])
            .args(["--bind", &format!("{}:7946", net.addr(i))])
            .args(["--profile", "local", "--log-format", "json"]);
        if let Some(seed) = join {
            command.args(["--join", seed]);
        }
        Agent::spawn(name, 7946, command)
    };
    let first = start(0, "first", None)?;
    let second = start(1, "second", Some("seed:7946"))?;
    wait(
        "the join through the dead address fails",
        &[&second],
        || second.said("join failed: no seed answered; retrying with backoff"),
    )?;
    ensure!(!second.saw("member joined", "first"), "{}", second.tail());
    // The name moves to the first agent.
    net.set_hosts(1, &[("10.205.0.1", "seed")])?;
    let took = wait(
        "the second agent follows the seed name",
        &[&second, &first],
        || second.saw("member joined", "first"),
    )?;
    eprintln!("joined {took:?} after the name moved");
    ensure!(
        second.said("seed names resolve to other addresses now; using them"),
        "{}",
        second.tail()
    );
    drop((first, second));
    Ok(())
}

/// A DNS server on `socket` answering `_muster._udp.seeds.test.` SRV with one record,
/// `first.test.` at the port in `port`, and NXDOMAIN for anything else, until `stop`.
fn serve_srv(socket: std::net::UdpSocket, port: Arc<AtomicU16>, stop: Arc<AtomicBool>) {
    socket
        .set_read_timeout(Some(std::time::Duration::from_millis(100)))
        .expect("a read timeout");
    let owner = Name::from_ascii("_muster._udp.seeds.test.").expect("a name");
    let target = Name::from_ascii("first.test.").expect("a name");
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Ok(query) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        let mut answer = Message::response(query.metadata.id, OpCode::Query);
        answer.metadata.recursion_desired = query.metadata.recursion_desired;
        answer.metadata.recursion_available = true;
        answer.add_queries(query.queries.iter().cloned());
        match query.queries.first() {
            Some(q) if q.name() == &owner && q.query_type() == RecordType::SRV => {
                let srv = SRV::new(1, 1, port.load(Ordering::Relaxed), target.clone());
                answer.add_answer(Record::from_rdata(owner.clone(), 1, RData::SRV(srv)));
            }
            _ => answer.metadata.response_code = ResponseCode::NXDomain,
        }
        if let Ok(bytes) = answer.to_vec() {
            let _ = socket.send_to(&bytes, from);
        }
    }
}

#[test]
fn an_srv_seed_follows_its_records_at_the_next_join_retry() -> Result<()> {
    if !is_root() {
        eprintln!("SKIPPED: the SRV seed test needs root (ip netns)");
        return Ok(());
    }
    let net = netns::Lab::build("ss", &["10.206.0.1", "10.206.0.2"])?;
    // Host 2 asks its own DNS server, which the test runs inside host 2.
    net.set_hosts(1, &[("10.206.0.1", "first.test")])?;
    net.set_nameserver(1, "127.0.0.1")?;
    let port = Arc::new(AtomicU16::new(7999));
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let socket = net.udp_socket(1, "127.0.0.1:53")?;
        let (port, stop) = (port.clone(), stop.clone());
        std::thread::spawn(move || serve_srv(socket, port, stop))
    };
    let dir = tempfile::tempdir()?;
    let key = dir.path().join("cluster.key");
    let generated = std::process::Command::new(BIN)
        .args(["keygen", "--out", &key.display().to_string()])
        .output()?;
    ensure!(generated.status.success(), "keygen");
    let start = |i: usize, name: &str, join: Option<&str>| -> Result<Agent> {
        let mut command = net.exec(i, BIN);
        command
            .arg("agent")
            .args(["--name", name, "--cluster-key", &key.display().to_string()])
            .args(["--bind", &format!("{}:7946", net.addr(i))])
            .args(["--profile", "local", "--log-format", "json"]);
        if let Some(seed) = join {
            command.args(["--join", seed]);
        }
        Agent::spawn(name, 7946, command)
    };
    let first = start(0, "first", None)?;
    // No port: the seed is the SRV name, which points at port 7999 first.
    let second = start(1, "second", Some("seeds.test"))?;
    wait(
        "the join through the SRV record's dead port fails",
        &[&second],
        || second.said("join failed: no seed answered; retrying with backoff"),
    )?;
    ensure!(!second.saw("member joined", "first"), "{}", second.tail());
    port.store(7946, Ordering::Relaxed);
    let took = wait(
        "the second agent follows the SRV record",
        &[&second, &first],
        || second.saw("member joined", "first"),
    )?;
    eprintln!("joined {took:?} after the SRV record moved");
    ensure!(
        second.said("seed names resolve to other addresses now; using them"),
        "{}",
        second.tail()
    );
    stop.store(true, Ordering::Relaxed);
    let _ = server.join();
    drop((first, second));
    Ok(())
}
