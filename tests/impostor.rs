//! A member speaks only for itself (docs/protocol.md §17), over real QUIC on loopback.
//!
//! Three agents share the cluster key (or certificates of one CA); a fourth peer holds
//! the same key (or a certificate of that CA named `x`), so its handshakes succeed, and
//! uses the library's lower layers to forge, about `b`: an
//! `Alive` at another address and higher incarnations (signed with its own key), a
//! `Suspect` and a `Dead` at `u32::MAX` and `u64::MAX`, a `Leave` (unsigned, and signed
//! with its own key), and writes into `b`'s replicated state (`muster/svc/web`), by
//! datagram and by a push-pull table. Once every forged record has reached the other
//! agents and been refused (their refusal counters show it), `b`'s address, state,
//! incarnation and state entry are unchanged everywhere.

mod support;

use std::net::SocketAddr;

use bytes::Bytes;
use muster::agent::{Mesh, MeshConfig, TlsSource};
use muster::proto::{NodeSigner, Refusal};
use muster::transport::{ClusterKey, Identity, Transport, TransportOptions};
use muster::wire::{
    self, ClusterId, DatagramBuilder, KvChange, MemberState, Message, Profile, SyncPhase, Tags,
};
use support::eventually_async as eventually;
use support::meshes::{self, loopback};

const CLUSTER: &str = "impostor";
const KEY: &str = "muster/svc/web";

async fn start(name: &str, tls: TlsSource, seeds: Vec<SocketAddr>) -> Mesh {
    meshes::start_config(MeshConfig {
        seeds,
        ..meshes::config(CLUSTER, name, tls)
    })
    .await
}

/// `b` as `mesh` holds it: (address, incarnation, state, its state entry).
fn b_seen_by(mesh: &Mesh) -> Option<(SocketAddr, u64, MemberState, Option<String>)> {
    let m = mesh.members().iter().find(|m| m.name == "b")?.clone();
    let entry = mesh
        .kv()
        .get("b")
        .and_then(|kv| kv.get(KEY).map(str::to_owned));
    Some((m.addr, m.incarnation, m.state, entry))
}

fn datagram(msgs: &[Message]) -> Bytes {
    let mut d = DatagramBuilder::new(wire::MAX_DATAGRAM_LEN);
    for m in msgs {
        assert!(d.push(m).expect("encodes"), "fits");
    }
    Bytes::from(d.finish())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_the_cluster_key_cannot_speak_for_another_member() {
    let tls = |_: &str| TlsSource::ClusterKey(ClusterKey::dev());
    let forger = Identity::from_cluster_key(&ClusterKey::dev(), "forger").expect("identity");
    forge_for_b(tls, forger).await;
}

/// A CA (as `muster tls ca create` makes one) in a temporary directory, issuing node
/// certificates (as `muster tls cert create` does).
struct TestCa {
    dir: tempfile::TempDir,
    ca: muster::transport::pki::PemPair,
    ca_path: std::path::PathBuf,
}

impl TestCa {
    fn new() -> TestCa {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ca =
            muster::transport::pki::create_ca("impostor test CA", Self::now(), 1).expect("a CA");
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, &ca.cert).expect("write the CA");
        TestCa { dir, ca, ca_path }
    }

    /// Certificate validity is wall-clock time, as `muster tls` reads it.
    #[allow(clippy::disallowed_methods)]
    fn now() -> std::time::SystemTime {
        std::time::SystemTime::now()
    }

    /// A certificate and key for `name`, written to files.
    fn files(&self, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let pair = muster::transport::pki::issue_node(&self.ca, name, Self::now(), 1)
            .expect("a node certificate");
        let (cert, key) = (
            self.dir.path().join(format!("{name}.pem")),
            self.dir.path().join(format!("{name}.key")),
        );
        std::fs::write(&cert, &pair.cert).expect("write the certificate");
        std::fs::write(&key, &pair.key).expect("write the key");
        (cert, key)
    }

    fn source(&self, name: &str) -> TlsSource {
        let (cert, key) = self.files(name);
        TlsSource::Pki {
            ca: self.ca_path.clone(),
            cert,
            key,
        }
    }

    fn identity(&self, name: &str) -> Identity {
        let (cert, key) = self.files(name);
        Identity::from_pem_files(&self.ca_path, &cert, &key).expect("an identity")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_a_certificate_named_x_cannot_speak_for_b() {
    let ca = TestCa::new();
    let sources: std::collections::HashMap<String, TlsSource> = ["a", "b", "c"]
        .iter()
        .map(|name| ((*name).to_owned(), ca.source(name)))
        .collect();
    let forger = ca.identity("x");
    forge_for_b(move |name: &str| sources[name].clone(), forger).await;
}

/// In PKI mode a name belongs to the certificate that names it: a key that claimed the
/// name first (relayed, from an address nobody has a certificate for yet) loses it when
/// the certified node turns up, which then joins instead of being told its name is
/// taken; and from then on no other key speaks for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_takes_back_a_name_that_another_key_claimed_first() {
    let ca = TestCa::new();
    let a = start("a", ca.source("a"), vec![]).await;
    let x = ca.identity("x");
    let (forger, _incoming) = Transport::bind(loopback(), &x, CLUSTER, TransportOptions::default())
        .expect("the forger binds");
    let cluster = ClusterId::from_name(CLUSTER);
    let squatter = NodeSigner::from_seed([77; 32]);
    let profile = |addr| Profile {
        name: "y".into(),
        addr,
        region: String::new().into(),
        zone: String::new().into(),
        tags: Tags::new(),
    };
    // From its own address the forger is refused at once: the certificate there names x.
    let own = muster::transport::peer_cert::node_signer(&x, "x").expect("x's key");
    send(
        &forger,
        a.local_addr(),
        own.alive(cluster, profile(forger.local_addr()), 1, 0),
    )
    .await;
    // Relayed, for an address a has no certificate for: first come, believed for now.
    // (A port of this host's that answers nothing: only loopback traffic in tests.)
    let nowhere: SocketAddr = "127.0.0.1:9".parse().expect("an address");
    send(
        &forger,
        a.local_addr(),
        squatter.alive(cluster, profile(nowhere), 5, 0),
    )
    .await;
    eventually(
        "a holds the squatter's y, and refused x's own claim",
        || {
            let refused = block_on(a.node_stats()).map(|s| s.refused.of(Refusal::NotCertified));
            a.members()
                .iter()
                .any(|m| m.name == "y" && m.key == squatter.key())
                && refused.is_ok_and(|n| n >= 1)
        },
        || format!("{:?}", a.members()),
    )
    .await;
    // The real y, with its certificate: it joins, and a holds it at its own address.
    let y = start("y", ca.source("y"), vec![a.local_addr()]).await;
    let y_key = y
        .members()
        .iter()
        .find(|m| m.name == "y")
        .expect("y holds itself")
        .key;
    eventually(
        "y joins (its name not refused), and a holds the certified y at y's address",
        || {
            y.members()
                .iter()
                .any(|m| m.name == "a" && m.state == MemberState::Alive)
                && a.members().iter().any(|m| {
                    m.name == "y"
                        && m.state == MemberState::Alive
                        && m.addr == y.local_addr()
                        && m.key == y_key
                })
        },
        || format!("a: {:?}\ny: {:?}", a.members(), y.members()),
    )
    .await;
    // The squatter again, at any incarnation: refused, y unchanged. (The count is read
    // before the send, so a refusal that lands at once is not missed.)
    let before = block_on(a.node_stats())
        .expect("stats")
        .refused
        .of(Refusal::NotCertified);
    send(
        &forger,
        a.local_addr(),
        squatter.alive(cluster, profile(nowhere), u64::MAX, 0),
    )
    .await;
    eventually(
        "a refuses the squatter once y is certified",
        || block_on(a.node_stats()).is_ok_and(|s| s.refused.of(Refusal::NotCertified) > before),
        || format!("{:?}", block_on(a.node_stats()).map(|s| s.refused)),
    )
    .await;
    let members = a.members();
    let held = members.iter().find(|m| m.name == "y").expect("a holds y");
    assert_eq!((held.addr, held.key), (y.local_addr(), y_key));
    forger.close();
}

async fn send(from: &Transport, to: SocketAddr, msg: Message) {
    from.send_datagram(to, datagram(&[msg]))
        .await
        .expect("the forger sends");
}

async fn forge_for_b(tls: impl Fn(&str) -> TlsSource, identity: Identity) {
    let a = start("a", tls("a"), vec![]).await;
    let b = start("b", tls("b"), vec![a.local_addr()]).await;
    let c = start("c", tls("c"), vec![a.local_addr()]).await;
    b.set_kv(KEY.into(), Some("passing".into()))
        .await
        .expect("b writes its state");
    let meshes = [a, b, c];
    eventually(
        "three agents agree, and hold b's state",
        || {
            meshes.iter().all(|m| {
                m.members()
                    .iter()
                    .filter(|x| x.state == MemberState::Alive)
                    .count()
                    == 3
                    && b_seen_by(m).is_some_and(|(_, _, _, e)| e.as_deref() == Some("passing"))
            })
            // b has announced itself proven healthy (its incarnation 1, protocol.md §8),
            // so its own incarnation stays put from here in a steady cluster.
            && meshes.iter().all(|m| b_seen_by(m).is_some_and(|(_, inc, _, _)| inc >= 1))
        },
        || format!("{:?}", meshes.iter().map(b_seen_by).collect::<Vec<_>>()),
    )
    .await;
    let [a, b, c] = &meshes;
    let before = b_seen_by(a).expect("a holds b");
    assert_eq!(b_seen_by(c), Some(before.clone()));
    let (b_addr, b_inc, _, _) = before.clone();
    let epoch = a.kv().get("b").expect("b's map").epoch;

    // The forger: a valid identity for the cluster, its own node key, a bare transport.
    let (forger, _incoming) =
        Transport::bind(loopback(), &identity, CLUSTER, TransportOptions::default())
            .expect("the forger binds");
    let key = NodeSigner::from_seed([66; 32]);
    let cluster = ClusterId::from_name(CLUSTER);
    let elsewhere = forger.local_addr();
    let profile = Profile {
        name: "b".into(),
        addr: elsewhere,
        region: String::new().into(),
        zone: String::new().into(),
        tags: Tags::new(),
    };
    let forged = [
        key.alive(cluster, profile.clone(), b_inc + 1, 0),
        key.alive(cluster, profile.clone(), u64::from(u32::MAX), 0),
        key.alive(cluster, profile.clone(), u64::MAX, 0),
        Message::Suspect {
            name: "b".into(),
            incarnation: u64::from(u32::MAX),
            from: "forger".into(),
        },
        Message::Dead {
            name: "b".into(),
            incarnation: u64::MAX,
            from: "forger".into(),
        },
        Message::Leave {
            name: "b".into(),
            incarnation: u64::MAX,
            sig: None,
        },
        Message::Leave {
            name: "b".into(),
            incarnation: b_inc,
            sig: Some(key.sign(&wire::signed::leave_statement(cluster, "b", b_inc))),
        },
        key.kv_update(
            cluster,
            "b",
            epoch,
            u64::MAX >> 3,
            KEY,
            KvChange::Set("pwned".into()),
        ),
        key.kv_update(cluster, "b", epoch + 1, epoch + 2, "", KvChange::Epoch),
    ];
    let table = Message::PushPull {
        phase: SyncPhase::Final,
        digest: 0,
        members: vec![key.record(cluster, profile, u64::MAX, 0)],
    };
    let stream = wire::encode_stream(&table, cluster).expect("encodes");
    for target in [a.local_addr(), c.local_addr()] {
        for msg in &forged {
            forger
                .send_datagram(target, datagram(std::slice::from_ref(msg)))
                .await
                .expect("the forger sends");
        }
        forger
            .send_stream(target, stream.clone())
            .await
            .expect("the forger sends its table");
    }

    // Every forged record reaches a and c and is refused, and counted by reason.
    for mesh in [a, c] {
        eventually(
            &format!("{} refuses every forged record", mesh.name()),
            || {
                let Ok(stats) = block_on(mesh.node_stats()) else {
                    return false;
                };
                // In PKI mode the certificate at the forger's address names x: its
                // Alive records of b are refused for that before the key is looked at.
                stats.refused.of(Refusal::NameTaken) + stats.refused.of(Refusal::NotCertified) >= 4
                    && stats.refused.of(Refusal::AccusationAhead) >= 3
                    && stats.refused.of(Refusal::BadSignature) >= 3
            },
            || format!("{:?}", block_on(mesh.node_stats()).map(|s| s.refused)),
        )
        .await;
        // Unchanged, except that b itself may have moved its incarnation (a refutation
        // if the loaded machine made a probe of it late): never past b's own.
        let (addr, inc, state, entry) = b_seen_by(mesh).expect("b is held");
        let own = b_seen_by(b).expect("b holds itself").1;
        assert_eq!(
            (addr, state, &entry),
            (before.0, before.2, &before.3),
            "{} after",
            mesh.name()
        );
        assert!(
            inc <= own,
            "{} holds b at {inc}, b itself at {own}",
            mesh.name()
        );
    }
    // And b is none the worse: its own view of itself, and in a while, nobody's view.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    for mesh in [a, c] {
        let (addr, inc, state, entry) = b_seen_by(mesh).expect("b is held");
        assert_eq!(addr, b_addr);
        assert_eq!(state, MemberState::Alive);
        assert_eq!(entry.as_deref(), Some("passing"));
        let own = b_seen_by(b).expect("b holds itself").1;
        assert!(
            inc <= own,
            "only b moves its incarnation: {inc}, b at {own}"
        );
    }
    assert_eq!(
        b.kv()
            .get("b")
            .and_then(|kv| kv.get(KEY).map(str::to_owned))
            .as_deref(),
        Some("passing")
    );
    forger.close();
}

/// Runs a future to completion from a synchronous check (the stats request is answered
/// by the driver at once).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}
