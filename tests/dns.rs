//! The DNS interface, asked by a real resolver client (hickory-resolver) and by raw
//! sockets, against in-process agents on loopback.
//!
//! The main cluster has four agents in three regions, each on its own loopback address
//! (127.0.0.2 to 127.0.0.5), so A answers tell instances apart; `eu-a` serves DNS. The
//! `web` instances in `eu` have TCP health checks against listeners the test holds:
//! closing them fails `eu` over, and the DNS answers follow the route answers. An IPv6
//! cluster on ::1 covers AAAA (skipped with a message where ::1 cannot be bound).
//!
//! Every wait polls with a generous deadline; nothing asserts that something happened
//! within a time (the flood test bounds answers by the time it took: a slower machine
//! only loosens the bound).

mod support;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RecordType};
use hickory_resolver::{Resolver, TokioResolver};
use muster::agent::Mesh;
use muster::dns::{DnsServer, DnsSockets, DnsStats, RateLimit};
use muster::metrics::{Exposition, MetricsSource};
use muster::routing::router::RouteQuery;
use muster::routing::rule::{Failback, FailoverRule};
use muster::routing::services::Services;
use muster::routing::spec::{CheckSpec, ServiceMode, ServiceSpec};
use muster::wire::MemberState;
use support::DEADLINE;
use support::meshes::describe;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

/// The TTL the tests' servers give every record.
const TTL: Duration = Duration::from_secs(5);

/// A dev-key mesh bound to `ip` (port 0) in `cluster`, in `region`/`zone`.
async fn mesh_at(
    cluster: &str,
    name: &str,
    ip: &str,
    place: (&str, &str),
    seeds: Vec<SocketAddr>,
) -> Mesh {
    let bind = SocketAddr::new(ip.parse().expect("a test address"), 0);
    support::meshes::start_at(cluster, name, bind, place, &[], seeds).await
}

/// A resolver that asks only `server`, over UDP then TCP, and caches nothing it is
/// asked twice (every `ask` clears the cache).
fn resolver(server: SocketAddr) -> TokioResolver {
    let mut ns = NameServerConfig::udp_and_tcp(server.ip());
    for c in &mut ns.connections {
        c.port = server.port();
    }
    let mut builder = Resolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![ns]),
        TokioRuntimeProvider::default(),
    );
    let options = builder.options_mut();
    options.timeout = Duration::from_secs(2);
    options.attempts = 3;
    builder.build().expect("a resolver with one name server")
}

/// What a query got, as a test compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// NOERROR with records: the answer section's data, then the additional section's
    /// owner and data.
    Records(Vec<String>, Vec<String>),
    /// NOERROR, no records, the zone's SOA in the authority section.
    NoData,
    /// NXDOMAIN with the SOA.
    NxDomain,
    /// Another response code.
    Code(ResponseCode),
    /// Anything else (timeouts ...).
    Failed(String),
}

fn records(answers: &[String]) -> Answer {
    Answer::Records(answers.to_vec(), Vec::new())
}

async fn ask(resolver: &TokioResolver, name: &str, rtype: RecordType) -> Answer {
    // `from_ascii` keeps the case as written (`from_str` would lowercase it).
    let name = Name::from_ascii(name).expect("a valid test name");
    resolver.clear_cache();
    match resolver.lookup(name, rtype).await {
        Ok(lookup) => {
            for r in lookup.answers() {
                assert_eq!(r.ttl, TTL.as_secs() as u32, "every record has the TTL: {r}");
            }
            Answer::Records(
                lookup
                    .answers()
                    .iter()
                    .map(|r| r.data.to_string())
                    .collect(),
                lookup
                    .additionals()
                    .iter()
                    .map(|r| format!("{} {}", r.name, r.data))
                    .collect(),
            )
        }
        Err(NetError::Dns(DnsError::NoRecordsFound(no))) => {
            let soa = no.soa.expect("negative answers carry the SOA");
            assert_eq!(soa.data.minimum, TTL.as_secs() as u32, "negative TTL");
            match no.response_code {
                ResponseCode::NoError => Answer::NoData,
                ResponseCode::NXDomain => Answer::NxDomain,
                code => Answer::Code(code),
            }
        }
        Err(NetError::Dns(DnsError::ResponseCode(code))) => Answer::Code(code),
        Err(e) => Answer::Failed(e.to_string()),
    }
}

/// Polls `check` until it holds, panicking with `describe()` after [`DEADLINE`].
async fn until<F, Fut>(what: &str, mut check: F) -> Answer
where
    F: FnMut() -> Fut,
    Fut: Future<Output = (bool, Answer)>,
{
    let start = tokio::time::Instant::now();
    loop {
        let (ok, last) = check().await;
        if ok {
            return last;
        }
        if start.elapsed() > DEADLINE {
            panic!("{what}: not within {DEADLINE:?}; last answer: {last:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A TCP listener the `web` check of one agent connects to, accepting until closed.
struct CheckTarget {
    addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl CheckTarget {
    async fn open() -> CheckTarget {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound");
        CheckTarget {
            addr,
            task: Some(accept_forever(listener)),
        }
    }

    /// Closes the listener: the check fails (connection refused).
    async fn close(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same address: the check passes.
    async fn reopen(&mut self) {
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("rebind the check port");
        self.task = Some(accept_forever(listener));
    }
}

fn accept_forever(listener: TcpListener) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    })
}

/// `name` on `port` with `weight`, checked by a TCP connect to `check` when given.
fn service(name: &str, port: u16, weight: u32, check: Option<SocketAddr>) -> ServiceSpec {
    let mut spec = ServiceSpec::new(name, port);
    spec.weight = weight;
    if let Some(addr) = check {
        let mut check = CheckSpec::tcp(&addr.to_string());
        check.interval = Duration::from_millis(200);
        check.timeout = Duration::from_millis(150);
        check.success_threshold = 2;
        check.failure_threshold = 2;
        spec.checks = vec![check];
    }
    // A short rule so the test runs in seconds.
    spec.failover = Some(FailoverRule {
        timeout: Duration::from_secs(1),
        retry: Duration::from_millis(200),
        failback: Failback::After(Duration::from_secs(2)),
        ..FailoverRule::default()
    });
    spec
}

struct Agent {
    mesh: Mesh,
    services: Services,
}

/// The addresses of the route answer `eu-a` gives for `web`, in order, each once.
fn route_addresses(services: &Services, query: &RouteQuery) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Ok(answer) = services.route("web", None, query) {
        for i in answer.instances {
            let a = i.address.to_string();
            if !out.contains(&a) {
                out.push(a);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_answers_follow_the_route_answers_of_a_three_region_cluster() {
    let cluster = "dns-regions";
    let mut checks = [CheckTarget::open().await, CheckTarget::open().await];
    let places = [
        ("eu-a", "127.0.0.2", ("eu", "eu-1")),
        ("eu-b", "127.0.0.3", ("eu", "eu-2")),
        ("us-a", "127.0.0.4", ("us", "us-1")),
        ("ap-a", "127.0.0.5", ("ap", "ap-1")),
    ];
    let mut agents: Vec<Agent> = Vec::new();
    for (i, (name, ip, place)) in places.into_iter().enumerate() {
        let seeds = agents
            .first()
            .map(|a| vec![a.mesh.local_addr()])
            .unwrap_or_default();
        let mesh = mesh_at(cluster, name, ip, place, seeds).await;
        let check = checks.get(i).map(|c| c.addr);
        let weight = [1, 3, 1, 2][i];
        let mut specs = vec![service("web", 8080 + i as u16, weight, check)];
        // `db` in primary mode on eu-b and us-a: us-a, of higher priority, holds it.
        let db = |priority| ServiceSpec {
            mode: ServiceMode::Primary,
            priority,
            ..service("db", 5432, 1, None)
        };
        match name {
            "eu-b" => specs.push(db(5)),
            "us-a" => specs.extend([service("api", 9000, 1, None), db(10)]),
            "ap-a" => specs.push(service("idle", 9100, 1, None)),
            _ => {}
        }
        let services = Services::start(&mesh, &specs).expect("valid services");
        agents.push(Agent { mesh, services });
    }
    agents[3]
        .services
        .drain(Some("idle"))
        .expect("ap-a runs idle");
    let meshes: Vec<&Mesh> = agents.iter().map(|a| &a.mesh).collect();
    support::eventually_async(
        "four agents see four alive members",
        || {
            meshes.iter().all(|m| {
                let members = m.members();
                members.len() == 4 && members.iter().all(|x| x.state == MemberState::Alive)
            })
        },
        || describe(&meshes),
    )
    .await;

    let home = agents[0].services.clone();
    let sockets = DnsSockets::bind("127.0.0.1:0".parse().unwrap())
        .await
        .expect("bind DNS");
    let dns = DnsServer::start(sockets, &agents[0].mesh.view(), home.clone(), TTL).expect("serve");
    let r = resolver(dns.local_addr());

    // Everything known and healthy: web answers eu's instances, same zone first.
    let eu = records(&["127.0.0.2".into(), "127.0.0.3".into()]);
    until("web answers eu's two instances", || async {
        let a = ask(&r, "web.service.muster.", RecordType::A).await;
        let known = home.catalog().services.contains_key("idle")
            && home.catalog().services.contains_key("api");
        (a == eu && known, a)
    })
    .await;
    assert_eq!(
        route_addresses(&home, &RouteQuery::default()),
        ["127.0.0.2", "127.0.0.3"],
        "the same order as the route answer"
    );
    assert_eq!(
        ask(&r, "WeB.SeRvIcE.MuStEr.", RecordType::A).await,
        eu,
        "case-insensitive"
    );
    assert_eq!(
        ask(&r, "web.service.muster.", RecordType::SRV).await,
        Answer::Records(
            vec![
                "1 1 8080 eu-a.node.muster.".into(),
                "2 3 8081 eu-b.node.muster.".into()
            ],
            vec![
                "eu-a.node.muster. 127.0.0.2".into(),
                "eu-b.node.muster. 127.0.0.3".into()
            ],
        ),
        "SRV: the caller's zone first, weights, ports, target addresses"
    );
    assert_eq!(
        ask(&r, "web.service.muster.", RecordType::AAAA).await,
        Answer::NoData
    );

    // RFC 2782's form of the same name answers the same SRV records.
    let srv = ask(&r, "web.service.muster.", RecordType::SRV).await;
    assert_eq!(
        ask(&r, "_web._tcp.service.muster.", RecordType::SRV).await,
        srv,
        "_SERVICE._tcp names are the service's"
    );

    // The primary of a primary-mode service: us-a alone, whatever region asks.
    let primary = until("primary.db answers us-a alone", || async {
        let a = ask(&r, "primary.db.service.muster.", RecordType::A).await;
        (a == records(&["127.0.0.4".into()]), a)
    })
    .await;
    assert_eq!(primary, records(&["127.0.0.4".into()]));
    assert_eq!(
        ask(&r, "primary.db.service.muster.", RecordType::SRV).await,
        Answer::Records(
            vec!["1 1 5432 us-a.node.muster.".into()],
            vec!["us-a.node.muster. 127.0.0.4".into()]
        )
    );
    assert_eq!(
        ask(&r, "primary.web.service.muster.", RecordType::A).await,
        Answer::NxDomain,
        "web is not in primary mode"
    );

    // Region-scoped names.
    assert_eq!(
        ask(&r, "web.service.us.muster.", RecordType::A).await,
        records(&["127.0.0.4".into()])
    );
    assert_eq!(
        ask(&r, "web.service.AP.muster.", RecordType::SRV).await,
        Answer::Records(
            vec!["1 2 8083 ap-a.node.muster.".into()],
            vec!["ap-a.node.muster. 127.0.0.5".into()]
        )
    );
    assert_eq!(
        ask(&r, "web.service.mars.muster.", RecordType::A).await,
        Answer::NxDomain
    );
    assert_eq!(
        ask(&r, "api.service.eu.muster.", RecordType::A).await,
        Answer::NoData
    );
    // A service with no instance in the caller's region is remote.
    assert_eq!(
        ask(&r, "api.service.muster.", RecordType::A).await,
        records(&["127.0.0.4".into()])
    );
    // Registered but drained everywhere: the name exists, nothing to send traffic to.
    assert_eq!(
        ask(&r, "idle.service.muster.", RecordType::A).await,
        Answer::NoData
    );
    assert_eq!(
        ask(&r, "idle.service.muster.", RecordType::SRV).await,
        Answer::NoData
    );

    // Node names.
    assert_eq!(
        ask(&r, "us-a.node.muster.", RecordType::A).await,
        records(&["127.0.0.4".into()])
    );
    assert_eq!(
        ask(&r, "EU-B.Node.Muster.", RecordType::A).await,
        records(&["127.0.0.3".into()])
    );
    assert_eq!(
        ask(&r, "us-a.node.muster.", RecordType::AAAA).await,
        Answer::NoData
    );

    // Names that do not exist, and names that are not ours.
    for name in [
        "nope.service.muster.",
        "nobody.node.muster.",
        "www.muster.",
        "web.service.eu.more.muster.",
    ] {
        assert_eq!(
            ask(&r, name, RecordType::A).await,
            Answer::NxDomain,
            "{name}"
        );
    }
    assert_eq!(
        ask(&r, "service.muster.", RecordType::A).await,
        Answer::NoData
    );
    assert_eq!(
        ask(&r, "example.com.", RecordType::A).await,
        Answer::Code(ResponseCode::Refused)
    );

    // eu's checks fail: once the rule's timeout has passed, web answers the other
    // regions, in the route answer's order.
    for c in &mut checks {
        c.close().await;
    }
    let failed_over = until("web fails over away from eu", || async {
        let a = ask(&r, "web.service.muster.", RecordType::A).await;
        let route = route_addresses(&home, &RouteQuery::default());
        let away = route.len() == 2 && !route.iter().any(|x| x == "127.0.0.2" || x == "127.0.0.3");
        (away && a == records(&route), a)
    })
    .await;
    let Answer::Records(list, _) = &failed_over else {
        unreachable!()
    };
    let mut sorted = list.clone();
    sorted.sort();
    assert_eq!(sorted, ["127.0.0.4", "127.0.0.5"]);
    // The region-scoped name still answers eu only, now with nothing healthy.
    assert_eq!(
        ask(&r, "web.service.eu.muster.", RecordType::A).await,
        Answer::NoData
    );
    let srv = ask(&r, "web.service.muster.", RecordType::SRV).await;
    let Answer::Records(srv, _) = srv else {
        panic!("SRV after failover: {srv:?}")
    };
    assert!(
        srv.iter()
            .all(|s| s.starts_with("1 ") || s.starts_with("2 ")),
        "one tier per region: {srv:?}"
    );

    // eu heals: after the failback hold, web answers eu again.
    for c in &mut checks {
        c.reopen().await;
    }
    until("web fails back to eu", || async {
        let a = ask(&r, "web.service.muster.", RecordType::A).await;
        (a == eu, a)
    })
    .await;

    // A member that stops takes its node name and, its region's last, the region.
    let ap = agents.pop().expect("four agents");
    ap.services.shutdown();
    ap.mesh.shutdown().await;
    until("ap-a's node name is gone", || async {
        let a = ask(&r, "ap-a.node.muster.", RecordType::A).await;
        (a == Answer::NxDomain, a)
    })
    .await;
    assert_eq!(
        ask(&r, "web.service.ap.muster.", RecordType::A).await,
        Answer::NxDomain
    );

    dns.shutdown().await;
    for a in agents {
        a.services.shutdown();
        a.mesh.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aaaa_answers_the_addresses_of_ipv6_members() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("skipped: this machine cannot bind ::1");
        return;
    }
    let cluster = "dns-ipv6";
    let a = mesh_at(cluster, "v6-a", "::1", ("eu", "eu-1"), vec![]).await;
    let b = mesh_at(cluster, "v6-b", "::1", ("eu", "eu-2"), vec![a.local_addr()]).await;
    let sa = Services::start(&a, &[service("web", 8080, 1, None)]).expect("valid");
    let sb = Services::start(&b, &[service("web", 8081, 2, None)]).expect("valid");
    let sockets = DnsSockets::bind("[::1]:0".parse().unwrap())
        .await
        .expect("bind DNS on ::1");
    let dns = DnsServer::start(sockets, &a.view(), sa.clone(), TTL).expect("serve");
    let r = resolver(dns.local_addr());
    until(
        "web answers ::1 once (two instances, one address)",
        || async {
            let answer = ask(&r, "web.service.muster.", RecordType::AAAA).await;
            let both = sa
                .catalog()
                .services
                .get("web")
                .is_some_and(|v| v.len() == 2);
            (both && answer == records(&["::1".into()]), answer)
        },
    )
    .await;
    assert_eq!(
        ask(&r, "web.service.muster.", RecordType::A).await,
        Answer::NoData
    );
    assert_eq!(
        ask(&r, "web.service.muster.", RecordType::SRV).await,
        Answer::Records(
            vec![
                "1 1 8080 v6-a.node.muster.".into(),
                "2 2 8081 v6-b.node.muster.".into()
            ],
            vec![
                "v6-a.node.muster. ::1".into(),
                "v6-b.node.muster. ::1".into()
            ],
        )
    );
    assert_eq!(
        ask(&r, "v6-b.node.muster.", RecordType::AAAA).await,
        records(&["::1".into()])
    );
    assert_eq!(
        ask(&r, "v6-b.node.muster.", RecordType::A).await,
        Answer::NoData
    );
    dns.shutdown().await;
    for (s, m) in [(sa, a), (sb, b)] {
        s.shutdown();
        m.shutdown().await;
    }
}

/// A query for `name`/`rtype` with id `id`, as bytes.
fn query(id: u16, name: &str, rtype: RecordType) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    m.to_vec().unwrap()
}

/// Sends `bytes` and waits a little for one answer.
async fn exchange(socket: &UdpSocket, bytes: &[u8]) -> Option<Message> {
    socket.send(bytes).await.expect("send");
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(Duration::from_millis(500), socket.recv(&mut buf)).await {
        Ok(Ok(n)) => Some(Message::from_vec(&buf[..n]).expect("a well-formed response")),
        Ok(Err(e)) => panic!("receive: {e}"),
        Err(_) => None,
    }
}

async fn formerr(socket: &UdpSocket, bytes: &[u8]) {
    let m = exchange(socket, bytes)
        .await
        .unwrap_or_else(|| panic!("no answer to {bytes:02x?}"));
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr, "{m}");
    assert_eq!(m.metadata.id, u16::from_be_bytes([bytes[0], bytes[1]]));
    assert_eq!(m.metadata.message_type, MessageType::Response);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packets_get_formerr_and_the_server_keeps_answering() {
    let mesh = mesh_at("dns-malformed", "solo", "127.0.0.1", ("eu", "eu-1"), vec![]).await;
    let services = Services::start(&mesh, &[service("web", 8080, 1, None)]).expect("valid");
    let sockets = DnsSockets::bind("127.0.0.1:0".parse().unwrap())
        .await
        .expect("bind DNS");
    let dns = DnsServer::start(sockets, &mesh.view(), services.clone(), TTL).expect("serve");
    let addr = dns.local_addr();
    let r = resolver(addr);
    until("web is answered", || async {
        let a = ask(&r, "web.service.muster.", RecordType::A).await;
        (a == records(&["127.0.0.1".into()]), a)
    })
    .await;

    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind a client");
    socket.connect(addr).await.expect("connect");
    let good = query(0x4242, "web.service.muster.", RecordType::A);
    // A truncated header (the id and flags are there), a truncated question.
    formerr(&socket, &good[..5]).await;
    formerr(&socket, &good[..good.len() - 2]).await;
    // Garbage behind a query's flags byte.
    let mut garbage = vec![0x13, 0x37, 0x01];
    garbage.extend((0..61u8).map(|i| i.wrapping_mul(151).wrapping_add(7)));
    formerr(&socket, &garbage).await;
    // A bad label: a reserved label type (0x41), and a label running past the end.
    let mut bad_label = good.clone();
    bad_label[12] = 0x41;
    formerr(&socket, &bad_label).await;
    let mut long_label = good.clone();
    long_label[12] = 0x3f;
    formerr(&socket, &long_label).await;
    // Too short to carry an id, and a response: no answer at all.
    assert!(exchange(&socket, &[0x01]).await.is_none());
    let mut response = good.clone();
    response[2] |= 0x80;
    assert!(exchange(&socket, &response).await.is_none());

    // The server still answers, on the same socket and through the resolver.
    let m = exchange(&socket, &good)
        .await
        .expect("an answer to a good query");
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.metadata.id, 0x4242);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(
        ask(&r, "web.service.muster.", RecordType::A).await,
        records(&["127.0.0.1".into()])
    );

    // Over TCP: a malformed message is answered FORMERR, and the connection goes on.
    let mut tcp = TcpStream::connect(addr).await.expect("connect over TCP");
    for (bytes, rcode) in [
        (bad_label.clone(), ResponseCode::FormErr),
        (
            query(7, "web.service.muster.", RecordType::SRV),
            ResponseCode::NoError,
        ),
    ] {
        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        tcp.write_all(&framed).await.expect("write");
        let mut len = [0u8; 2];
        tcp.read_exact(&mut len).await.expect("read a length");
        let mut answer = vec![0u8; u16::from_be_bytes(len).into()];
        tcp.read_exact(&mut answer).await.expect("read an answer");
        let m = Message::from_vec(&answer).expect("well-formed");
        assert_eq!(m.metadata.response_code, rcode, "{m}");
    }

    let stats = dns.stats();
    assert!(stats.responses_with("FORMERR") >= 6, "FORMERR counted");
    assert!(stats.dropped() >= 2, "unanswerable packets counted");
    dns.shutdown().await;
    // Stopped: the port is free again, for UDP and TCP.
    DnsSockets::bind(addr)
        .await
        .expect("the port is free after shutdown");
    services.shutdown();
    mesh.shutdown().await;
}

/// One sample of `name` with `labels` from `stats`' exposition, parsed as Prometheus
/// text.
fn dns_metric(stats: &DnsStats, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut out = Exposition::default();
    stats.write_metrics(&mut out);
    let text = out.finish();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("the exposition parses");
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .and_then(|s| match s.value {
            prometheus_parse::Value::Counter(v) => Some(v),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no counter {name} {labels:?} in:\n{text}"))
}

/// Asks `query` from `socket` up to three times, a second each, as a resolver would;
/// the answer, or `None`.
async fn exchange_with_retries(socket: &UdpSocket, query: &[u8]) -> Option<Message> {
    for _ in 0..3 {
        socket.send(query).await.expect("send");
        let mut buf = vec![0u8; 4096];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        // Skip a late answer to an earlier try (its id is the same: fine) or to
        // nothing of ours.
        while let Ok(got) = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
            let n = got.expect("receive");
            let m = Message::from_vec(&buf[..n]).expect("a well-formed response");
            if m.metadata.id == u16::from_be_bytes([query[0], query[1]]) {
                return Some(m);
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_source_is_limited_while_another_source_gets_every_answer() {
    /// Queries the flood sends at least (unless the deadline stops it first), and more
    /// while the other source is still asking, up to `FLOOD_MAX`.
    const FLOOD: u64 = 5_000;
    const FLOOD_MAX: u64 = 100_000;
    /// The flood keeps at most this many queries unprocessed by the server, so the
    /// server's socket buffer never overflows and nearly every query reaches it.
    const IN_FLIGHT: u64 = 64;
    /// Queries the other source asks, one at a time, at its own pace.
    const NORMAL: u16 = 20;
    // 20 a second, a burst of 40: far below what the flood sends, whatever the speed
    // of this machine, and the other source's 20 queries fit its burst alone.
    let limit = RateLimit::per_second(20);
    let mesh = mesh_at("dns-flood", "solo", "127.0.0.1", ("eu", "eu-1"), vec![]).await;
    let services = Services::start(&mesh, &[service("web", 8080, 1, None)]).expect("valid");
    let sockets = DnsSockets::bind("127.0.0.1:0".parse().unwrap())
        .await
        .expect("bind DNS");
    let dns = DnsServer::start(sockets, &mesh.view(), services.clone(), TTL)
        .expect("serve")
        .with_rate_limit(limit);
    assert_eq!(dns.rate_limit(), limit);
    let addr = dns.local_addr();
    let r = resolver(addr);
    until("web is answered", || async {
        let a = ask(&r, "web.service.muster.", RecordType::A).await;
        (a == records(&["127.0.0.1".into()]), a)
    })
    .await;
    let stats = dns.stats();

    // Two sources: the flood from 127.0.0.2, the other client from 127.0.0.3.
    let flooder = std::sync::Arc::new(UdpSocket::bind("127.0.0.2:0").await.expect("bind"));
    flooder.connect(addr).await.expect("connect");
    let client = UdpSocket::bind("127.0.0.3:0").await.expect("bind");
    client.connect(addr).await.expect("connect");
    // Positive control: each source is answered while all is quiet.
    for socket in [&*flooder, &client] {
        let m = exchange_with_retries(socket, &query(1, "web.service.muster.", RecordType::A))
            .await
            .expect("an answer before the flood");
        assert_eq!(m.answers.len(), 1, "{m}");
    }
    assert_eq!(stats.limited(), 0, "nothing limited yet");

    let processed = {
        let stats = stats.clone();
        move || stats.responses() + stats.limited()
    };
    let started = tokio::time::Instant::now();
    let sent_all = std::sync::Arc::new(AtomicBool::new(false));
    let normal_done = std::sync::Arc::new(AtomicBool::new(false));
    let sender = tokio::spawn({
        let (flooder, processed, sent_all) = (flooder.clone(), processed.clone(), sent_all.clone());
        let normal_done = normal_done.clone();
        async move {
            let before = processed();
            let mut sent = 0u64;
            while (sent < FLOOD || !normal_done.load(Ordering::Relaxed))
                && sent < FLOOD_MAX
                && started.elapsed() < DEADLINE
            {
                // Wait for the server to catch up, but not for a query it never got.
                let stalled = tokio::time::Instant::now() + Duration::from_millis(200);
                while sent.saturating_sub(processed() - before) >= IN_FLIGHT
                    && tokio::time::Instant::now() < stalled
                {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                let id = 2 + (sent % 60_000) as u16;
                flooder
                    .send(&query(id, "web.service.muster.", RecordType::A))
                    .await
                    .expect("send");
                sent += 1;
            }
            sent_all.store(true, Ordering::Relaxed);
            sent
        }
    });
    // What the flood gets back: full answers and empty TC ones, until the sender is
    // done and a second passes without a datagram.
    let receiver = tokio::spawn({
        let (flooder, sent_all) = (flooder.clone(), sent_all.clone());
        async move {
            let (mut answered, mut truncated) = (0u64, 0u64);
            let mut buf = vec![0u8; 4096];
            loop {
                match tokio::time::timeout(Duration::from_secs(1), flooder.recv(&mut buf)).await {
                    Ok(got) => {
                        let n = got.expect("receive");
                        let m = Message::from_vec(&buf[..n]).expect("a well-formed response");
                        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m}");
                        if m.metadata.truncation {
                            assert!(m.answers.is_empty(), "a limited query gets no records");
                            assert_eq!(m.queries.len(), 1, "its question echoed: {m}");
                            truncated += 1;
                        } else {
                            assert_eq!(m.answers.len(), 1, "{m}");
                            answered += 1;
                        }
                    }
                    // A quiet second once everything is sent: all answers are in.
                    Err(_) if sent_all.load(Ordering::Relaxed) => break,
                    Err(_) => {}
                }
                if started.elapsed() > DEADLINE * 2 {
                    break;
                }
            }
            (answered, truncated)
        }
    });

    // The other source asks while the flood is being limited, and gets every answer.
    until("the flood is limited", || async {
        (stats.limited() > 0, Answer::Failed(format!("{stats:?}")))
    })
    .await;
    let before_normal = stats.limited();
    for i in 0..NORMAL {
        let id = 60_100 + i;
        let m = exchange_with_retries(&client, &query(id, "web.service.muster.", RecordType::A))
            .await
            .unwrap_or_else(|| panic!("query {i} of the other source unanswered; {stats:?}"));
        assert!(!m.metadata.truncation, "query {i} not limited: {m}");
        assert_eq!(m.answers.len(), 1, "query {i}: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after_normal = stats.limited();
    normal_done.store(true, Ordering::Relaxed);
    let sent = sender.await.expect("the flood ran");
    assert!(
        sent >= FLOOD,
        "the flood was sent within {DEADLINE:?}: {sent}"
    );
    assert!(
        after_normal > before_normal,
        "the flood was limited while the other source asked: {before_normal}, then \
         {after_normal} limited"
    );
    drop(flooder);
    let (answered, truncated) = receiver.await.expect("the flood's answers were read");
    let window = started.elapsed().as_secs_f64();
    println!(
        "flood: {sent} sent in {window:.1} s; {answered} answered, {truncated} answered TC; \
         server: {} limited ({} TC), {} responses",
        stats.limited(),
        stats.limited_truncated(),
        stats.responses()
    );

    // The flood got at most its burst and 20 a second of answers; the rest of what
    // reached the server (all but a few, at most IN_FLIGHT at once) was limited, every
    // second of those answered empty with TC.
    let burst = f64::from(limit.burst);
    let rate = f64::from(limit.per_second);
    assert!(
        answered as f64 <= burst + rate * window,
        "{answered} answers to the flood in {window:.1} s"
    );
    let limited = stats.limited();
    assert!(
        limited >= sent / 2,
        "the flood was limited: {answered} answered, {limited} limited of {sent}; {stats:?}"
    );
    assert!(limited >= after_normal);
    assert!(truncated > 0 && truncated <= stats.limited_truncated());
    let dropped = limited - stats.limited_truncated();
    assert!(
        dropped.abs_diff(stats.limited_truncated()) <= 1,
        "slip 2: every second limited query truncated"
    );
    // The same counts in the exposition.
    let metric = |action| {
        dns_metric(
            &stats,
            "muster_dns_queries_limited_total",
            &[("action", action)],
        )
    };
    assert_eq!(metric("dropped"), dropped as f64);
    assert_eq!(metric("truncated"), stats.limited_truncated() as f64);
    assert_eq!(
        dns_metric(
            &stats,
            "muster_dns_responses_total",
            &[("rcode", "NOERROR")]
        ),
        stats.responses_with("NOERROR") as f64,
        "limited queries are not counted as responses"
    );

    dns.shutdown().await;
    services.shutdown();
    mesh.shutdown().await;
}
