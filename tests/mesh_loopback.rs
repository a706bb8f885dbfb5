//! Real agents on loopback: QUIC with mutual TLS on `127.0.0.1:0`, `SwimConfig::local()`
//! timing, in one process.
//!
//! Every wait polls with a generous deadline (the machine may be loaded); nothing
//! asserts on a fixed sleep. Each scenario prints how long its waits took.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;
use muster::agent::{Mesh, MeshConfig, TlsSource};
use muster::proto::{Channel, Event, SwimConfig};
use muster::transport::{
    CLUSTER_SERVER_NAME, ClusterKey, Identity, Incoming, Transport, TransportError,
    TransportOptions,
};
use muster::wire::{MemberState, Tags};
use support::{DEADLINE, eventually_async as eventually};
use tokio::sync::mpsc;
use tokio::time::Instant;

const CLUSTER: &str = "loopback";

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("a valid address")
}

fn config(name: &str, tls: TlsSource, cluster: &str, seeds: Vec<SocketAddr>) -> MeshConfig {
    MeshConfig {
        swim: SwimConfig::local(),
        cluster: cluster.into(),
        seeds,
        region: "local".into(),
        zone: "local-1".into(),
        ..MeshConfig::new(name, loopback(), tls)
    }
}

fn dev() -> TlsSource {
    TlsSource::ClusterKey(ClusterKey::dev())
}

async fn start(name: &str, tls: TlsSource, cluster: &str, seeds: Vec<SocketAddr>) -> Mesh {
    support::meshes::start_config(config(name, tls, cluster, seeds)).await
}

/// What a mesh sees, as `(name, incarnation, state)` sorted by name.
fn view(mesh: &Mesh) -> Vec<(String, u64, MemberState)> {
    mesh.members()
        .iter()
        .map(|m| (m.name.to_string(), m.incarnation, m.state))
        .collect()
}

fn state_of(mesh: &Mesh, name: &str) -> Option<MemberState> {
    mesh.members()
        .iter()
        .find(|m| m.name == name)
        .map(|m| m.state)
}

fn describe(meshes: &[Mesh]) -> String {
    meshes
        .iter()
        .map(|m| format!("\n  {} sees {:?}", m.name(), view(m)))
        .collect()
}

/// All of `meshes` see exactly the same `n` alive members.
fn agree_on_alive(meshes: &[Mesh], n: usize) -> bool {
    let first = view(&meshes[0]);
    first.len() == n
        && first.iter().all(|(_, _, s)| *s == MemberState::Alive)
        && meshes.iter().all(|m| view(m) == first)
}

async fn start_cluster(prefix: &str, n: usize) -> Vec<Mesh> {
    let seed = start(&format!("{prefix}0"), dev(), CLUSTER, vec![]).await;
    let seeds = vec![seed.local_addr()];
    let mut meshes = vec![seed];
    for i in 1..n {
        meshes.push(start(&format!("{prefix}{i}"), dev(), CLUSTER, seeds.clone()).await);
    }
    meshes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_meshes_agree_then_see_a_crash_as_dead_and_a_leave_as_left() {
    let mut meshes = start_cluster("n", 8).await;
    let took = eventually(
        "8 meshes agree on 8 alive members",
        || agree_on_alive(&meshes, 8),
        || describe(&meshes),
    )
    .await;
    println!("8 meshes joined through one seed and agreed in {took:?}");

    // A crash: the mesh stops without a word.
    let crashed = meshes.pop().expect("8 meshes");
    let crashed_name = crashed.name().to_string();
    crashed.shutdown().await;
    let took = eventually(
        "the other 7 mark the crashed mesh dead",
        || {
            meshes
                .iter()
                .all(|m| state_of(m, &crashed_name) == Some(MemberState::Dead))
        },
        || describe(&meshes),
    )
    .await;
    println!("7 meshes marked the crashed one dead in {took:?}");

    // A graceful leave.
    let leaving = meshes.pop().expect("7 meshes");
    let leaving_name = leaving.name().to_string();
    leaving.leave().await.expect("leave completes");
    let took = eventually(
        "the other 6 mark the departed mesh left",
        || {
            meshes
                .iter()
                .all(|m| state_of(m, &leaving_name) == Some(MemberState::Left))
        },
        || describe(&meshes),
    )
    .await;
    println!("6 meshes marked the departed one left in {took:?}");
    for m in &meshes {
        let alive = m
            .members()
            .iter()
            .filter(|i| i.state == MemberState::Alive)
            .count();
        assert_eq!(alive, 6, "{} sees {:?}", m.name(), view(m));
    }
    for m in meshes {
        m.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_set_on_one_mesh_reach_the_others() {
    let meshes = start_cluster("t", 3).await;
    eventually(
        "3 meshes agree",
        || agree_on_alive(&meshes, 3),
        || describe(&meshes),
    )
    .await;
    let tags = Tags::from_pairs([("role", "db")]).expect("small tags");
    meshes[1]
        .set_tags(tags.clone())
        .await
        .expect("tags accepted");
    eventually(
        "every mesh sees t1's new tags",
        || {
            meshes
                .iter()
                .all(|m| m.members().iter().any(|i| i.name == "t1" && i.tags == tags))
        },
        || describe(&meshes),
    )
    .await;
    for m in meshes {
        m.shutdown().await;
    }
}

/// Starts a 3-member cluster and an `intruder` that tries to join it; checks the
/// intruder is refused at the handshake on both sides and never becomes a member.
async fn intruder_is_refused(intruder_tls: TlsSource, intruder_cluster: &str) {
    let meshes = start_cluster("m", 3).await;
    eventually(
        "3 meshes agree",
        || agree_on_alive(&meshes, 3),
        || describe(&meshes),
    )
    .await;
    let seed_addr = meshes[0].local_addr();
    let intruder = start("intruder", intruder_tls, intruder_cluster, vec![seed_addr]).await;
    let mut events = intruder.subscribe();

    // Two failed join attempts: the second comes after a backoff retry, so the intruder
    // has been turned away more than once by then.
    let mut failures = 0;
    let started = Instant::now();
    while failures < 2 {
        let left = DEADLINE.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Ok(Event::JoinFailed { .. })) => failures += 1,
            Ok(Ok(Event::Joined { via, .. })) => panic!("the intruder joined via {via}"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("event stream: {e}"),
            Err(_) => panic!("the intruder did not fail to join twice within {DEADLINE:?}"),
        }
        for m in &meshes {
            assert_eq!(
                state_of(m, "intruder"),
                None,
                "{} lists the intruder",
                m.name()
            );
        }
    }
    let theirs = intruder.transport_stats();
    let seed = meshes[0].transport_stats();
    assert!(theirs.handshakes_refused >= 1, "intruder stats: {theirs:?}");
    assert_eq!(theirs.handshakes_ok, 0, "intruder stats: {theirs:?}");
    assert!(seed.handshakes_refused >= 1, "seed stats: {seed:?}");
    assert_eq!(
        view(&intruder).len(),
        1,
        "intruder sees {:?}",
        view(&intruder)
    );
    // The cluster is unaffected.
    assert!(agree_on_alive(&meshes, 3), "{}", describe(&meshes));
    intruder.shutdown().await;
    for m in meshes {
        m.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mesh_with_another_cluster_key_is_refused() {
    let other = ClusterKey::generate().expect("system randomness");
    intruder_is_refused(TlsSource::ClusterKey(other), CLUSTER).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mesh_with_the_same_key_but_another_cluster_name_is_refused() {
    intruder_is_refused(dev(), "another-cluster").await;
}

/// Receives the next message or fails after [`DEADLINE`].
async fn next(rx: &mut mpsc::Receiver<Incoming>) -> Incoming {
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("a message within the deadline")
        .expect("the transport is open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_messages_carry_the_peers_listening_address() {
    let identity = |name| Identity::from_cluster_key(&ClusterKey::dev(), name).expect("identity");
    let (a, mut a_rx) = Transport::bind(
        loopback(),
        &identity("a"),
        CLUSTER,
        TransportOptions::default(),
    )
    .expect("bind a");
    let (b, mut b_rx) = Transport::bind(
        loopback(),
        &identity("b"),
        CLUSTER,
        TransportOptions::default(),
    )
    .expect("bind b");

    // a dials b: b sees a's listening address, not some other port.
    a.send_datagram(b.local_addr(), Bytes::from_static(b"ping"))
        .await
        .expect("datagram to b");
    let got = next(&mut b_rx).await;
    assert_eq!(
        (got.from, &got.bytes[..], got.channel),
        (a.local_addr(), &b"ping"[..], Channel::Datagram)
    );

    // b answers to that address over the connection a opened: no second handshake.
    b.send_datagram(got.from, Bytes::from_static(b"ack"))
        .await
        .expect("datagram to a");
    let got = next(&mut a_rx).await;
    assert_eq!((got.from, &got.bytes[..]), (b.local_addr(), &b"ack"[..]));
    assert_eq!(b.stats().dials, 0, "b stats: {:?}", b.stats());
    assert_eq!(a.stats().dials, 1, "a stats: {:?}", a.stats());

    // A stream message arrives whole, from the same address.
    let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    a.send_stream(b.local_addr(), big.clone())
        .await
        .expect("stream to b");
    let got = next(&mut b_rx).await;
    assert_eq!((got.from, got.channel), (a.local_addr(), Channel::Stream));
    assert_eq!(&got.bytes[..], &big[..]);

    // A datagram over the path's limit is dropped and counted, not sent.
    let err = a
        .send_datagram(b.local_addr(), Bytes::from(vec![0u8; 4000]))
        .await
        .expect_err("too large");
    assert!(
        matches!(err, TransportError::DatagramTooLarge { .. }),
        "{err}"
    );
    assert_eq!(a.stats().datagrams_too_large, 1);
    assert_eq!(a.stats().handshakes_ok + b.stats().handshakes_ok, 2);
    a.close();
    b.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_from_another_ca_is_refused_after_the_handshake() {
    let member = Identity::from_cluster_key(&ClusterKey::dev(), "member").expect("identity");
    let other = ClusterKey::generate().expect("system randomness");
    // The intruder trusts the cluster's CA, so the member's certificate checks out on its
    // side, but presents a certificate from a CA of its own.
    let intruder = Identity {
        ca_certs: member.ca_certs.clone(),
        ..Identity::from_cluster_key(&other, "intruder").expect("identity")
    };
    let (m, mut m_rx) = Transport::bind(loopback(), &member, CLUSTER, TransportOptions::default())
        .expect("bind member");
    let (i, _i_rx) = Transport::bind(loopback(), &intruder, CLUSTER, TransportOptions::default())
        .expect("bind intruder");
    // TLS 1.3 checks the client's certificate last: the intruder's dial may look fine...
    let _ = i
        .send_datagram(m.local_addr(), Bytes::from_static(b"let me in"))
        .await;
    // ...and the refusal follows at once; both sides count it.
    eventually(
        "both sides count the refusal",
        || i.stats().handshakes_refused >= 1 && m.stats().handshakes_refused >= 1,
        || format!("intruder {:?}\nmember {:?}", i.stats(), m.stats()),
    )
    .await;
    assert!(m_rx.try_recv().is_err(), "the member received something");
    assert_eq!(m.stats().handshakes_ok, 0, "member stats: {:?}", m.stats());
    assert_eq!(
        i.cached_connections(),
        0,
        "the refused connection is not kept"
    );
    i.close();
    m.close();
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("muster-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes an operator CA and two node certificates as PEM files; returns each node's
/// TLS source.
fn write_pki(dir: &TempDir) -> Vec<TlsSource> {
    write_pki_for(dir, &[("p0", true), ("p1", true)])
}

/// Writes an operator CA and one certificate per `(name, for_cluster)`: issued for
/// `muster.cluster` and the name, or (when `for_cluster` is false) for the name alone,
/// like any other certificate the same CA may have issued.
fn write_pki_for(dir: &TempDir, nodes: &[(&str, bool)]) -> Vec<TlsSource> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "operator CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let ca_path = dir.0.join("ca.pem");
    std::fs::write(&ca_path, ca_cert.pem()).expect("write ca");
    nodes
        .iter()
        .map(|&(name, for_cluster)| {
            // Ed25519: in PKI mode the certificate's key is the node key.
            let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("node key");
            let mut names = vec![name.to_string()];
            if for_cluster {
                names.push(CLUSTER_SERVER_NAME.to_string());
            }
            let mut params = CertificateParams::new(names).expect("node params");
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let cert = params.signed_by(&key, &issuer).expect("node cert");
            let (cert_path, key_path) = (
                dir.0.join(format!("{name}.pem")),
                dir.0.join(format!("{name}.key")),
            );
            std::fs::write(&cert_path, cert.pem()).expect("write cert");
            std::fs::write(&key_path, key.serialize_pem()).expect("write key");
            TlsSource::Pki {
                ca: ca_path.clone(),
                cert: cert_path,
                key: key_path,
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meshes_with_pki_files_join_each_other() {
    let dir = TempDir::new("pki");
    let mut sources = write_pki(&dir).into_iter();
    let (s0, s1) = (sources.next().expect("p0"), sources.next().expect("p1"));
    let p0 = start("p0", s0, CLUSTER, vec![]).await;
    let p1 = start("p1", s1, CLUSTER, vec![p0.local_addr()]).await;
    let meshes = [p0, p1];
    eventually(
        "2 PKI meshes agree",
        || agree_on_alive(&meshes, 2),
        || describe(&meshes),
    )
    .await;
    for m in meshes {
        m.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_the_cluster_ca_but_not_for_the_cluster_is_refused() {
    let dir = TempDir::new("pki-name");
    let mut sources = write_pki_for(&dir, &[("p0", true), ("intruder", false)]).into_iter();
    let (s0, intruder_tls) = (
        sources.next().expect("p0"),
        sources.next().expect("intruder"),
    );
    let p0 = start("p0", s0, CLUSTER, vec![]).await;
    // The intruder's own check of p0 passes (p0's certificate is for the cluster); p0's
    // check of the intruder's client certificate must not.
    let intruder = start("intruder", intruder_tls, CLUSTER, vec![p0.local_addr()]).await;
    eventually(
        "p0 refuses the intruder's handshake",
        || p0.transport_stats().handshakes_refused > 0,
        || format!("{:?}", p0.transport_stats()),
    )
    .await;
    assert!(
        p0.members().iter().all(|m| m.name != "intruder"),
        "{:?}",
        p0.members()
    );
    intruder.shutdown().await;
    p0.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_is_refused_with_its_field_named() {
    let mut c = config("x", dev(), CLUSTER, vec![]);
    c.bind = "0.0.0.0:0".parse().expect("address");
    let err = Mesh::start(c).await.expect_err("no advertise").to_string();
    assert!(err.contains("advertise"), "{err}");
    let c = config(&"x".repeat(500), dev(), CLUSTER, vec![]);
    let err = Mesh::start(c).await.expect_err("name too long").to_string();
    assert!(err.contains("name"), "{err}");
    let missing = TlsSource::Pki {
        ca: "/nonexistent/ca.pem".into(),
        cert: "/nonexistent/cert.pem".into(),
        key: "/nonexistent/key.pem".into(),
    };
    let err = Mesh::start(config("x", missing, CLUSTER, vec![]))
        .await
        .expect_err("missing files")
        .to_string();
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
}

/// A peer with the cluster key opens `streams` unidirectional streams on each of
/// `connections` connections (each from its own port) to `target`, writes a few bytes
/// on each and never finishes them. Returns the endpoints and streams, which must be
/// kept alive for the stall to last.
async fn stall_streams(
    target: SocketAddr,
    connections: usize,
    streams: usize,
) -> Vec<(quinn::Endpoint, quinn::Connection, Vec<quinn::SendStream>)> {
    let identity = Identity::from_cluster_key(&ClusterKey::dev(), "staller").expect("identity");
    let (_, client) = muster::transport::tls::quic_configs(&identity, CLUSTER).expect("configs");
    let mut held = Vec::new();
    for _ in 0..connections {
        let mut endpoint = quinn::Endpoint::client(loopback()).expect("a client endpoint");
        endpoint.set_default_client_config(client.clone());
        let conn = endpoint
            .connect(target, CLUSTER_SERVER_NAME)
            .expect("connect")
            .await
            .expect("the handshake with the cluster key succeeds");
        let mut open = Vec::new();
        for _ in 0..streams {
            let mut send = conn.open_uni().await.expect("a stream");
            send.write_all(b"muster, but slowly")
                .await
                .expect("a few bytes");
            open.push(send);
        }
        held.push((endpoint, conn, open));
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_stalling_its_streams_does_not_stop_another_from_joining() {
    let a = start("stall-a", dev(), CLUSTER, vec![]).await;
    // Two connections × eight streams: as many stalled reads as the node reads at once.
    let held = stall_streams(a.local_addr(), 2, 8).await;
    let b = start("stall-b", dev(), CLUSTER, vec![a.local_addr()]).await;
    // Joins and their retries travel on streams: were every read slot held by the
    // staller, b would never be read and never join.
    let both = [a, b];
    let took = eventually(
        "b joins a while a peer stalls 16 streams",
        || agree_on_alive(&both, 2),
        || describe(&both),
    )
    .await;
    println!(
        "joined in {took:?} with 2 connections × 8 streams stalled (join timeout {:?})",
        SwimConfig::local().join_timeout
    );
    // Positive control: the stalled streams were being read, and the read deadline
    // drops them (every one the node took up).
    let [a, _b] = &both;
    eventually(
        "a drops the stalled streams at their read deadline",
        || a.transport_stats().streams_dropped >= 8,
        || format!("{:?}", a.transport_stats()),
    )
    .await;
    drop(held);
}
