//! [`Mesh`]: the library API of a running agent.
//!
//! `Mesh::start` binds the QUIC endpoint, builds the node and spawns its driver; the
//! handle then reads the membership (an immutable snapshot, never a lock on the node),
//! subscribes to events, and sends requests to the driver. Dropping the handle stops the
//! driver and closes the endpoint without leaving, like [`Mesh::shutdown`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::agent::AgentError;
use crate::agent::clock::Clock;
use crate::agent::driver::{self, Driver, Followers, Members, Request};
use crate::agent::join::JoinRetry;
use crate::agent::kv_view::{self, KvMaps};
use crate::agent::mesh_config::{MeshConfig, TlsSource};
use crate::proto::member::digest_of;
use crate::proto::{Event, MemberInfo, Node, NodeOptions, NodeSigner, Stats, Time, Verifier, rng};
use crate::stable_hash::StableHasher;
use crate::transport::{
    Identity, IdentityError, Transport, TransportOptions, TransportStats, peer_cert,
};
use crate::wire::{Name, Profile, Tags};

/// Events buffered per subscriber; one that falls further behind sees `Lagged`.
const EVENT_BUFFER: usize = 1024;

/// Requests queued for the driver.
const REQUEST_BUFFER: usize = 64;

/// How long closing connections may take to tell peers before the endpoint is dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// A running member of a cluster. See the module docs.
#[derive(Debug)]
pub struct Mesh {
    name: Name,
    advertise: SocketAddr,
    transport: Transport,
    requests: mpsc::Sender<Request>,
    events: broadcast::Sender<Event>,
    followers: Followers,
    members: watch::Receiver<Members>,
    kv: watch::Receiver<KvMaps>,
    driver: Option<JoinHandle<Option<String>>>,
    leave_wait: Duration,
    clock: Clock,
    seeded: bool,
    health: Arc<AtomicU32>,
    /// The highest health score (`awareness_max - 1`).
    health_max: u32,
    input_delay: Arc<AtomicU64>,
}

/// Why a mesh's driver stopped by itself ([`Mesh::driver_ended`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverEnd {
    /// The node's name is held by another live member (another node key): a
    /// configuration problem, not a bug. The text says where and what to do.
    NameTaken(String),
    /// A bug: the driver panicked or returned.
    Failed(String),
}

impl std::fmt::Display for DriverEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DriverEnd::NameTaken(why) | DriverEnd::Failed(why) => f.write_str(why),
        }
    }
}

impl Mesh {
    /// Validates the config, builds the TLS identity, binds the endpoint and starts the
    /// driver; if seeds are given, joins through them, retrying with backoff until one
    /// answers. Returns once the endpoint is bound, not once joined: watch
    /// [`Mesh::subscribe`] for [`Event::Joined`].
    pub async fn start(config: MeshConfig) -> Result<Mesh, AgentError> {
        config.validate()?;
        let MeshConfig {
            name,
            bind,
            advertise,
            region,
            zone,
            tags,
            cluster,
            swim,
            tls,
            seeds,
            seed_names,
            incarnation,
            node_key,
        } = config;
        let identity = match &tls {
            TlsSource::ClusterKey(key) => Identity::from_cluster_key(key, &name)?,
            TlsSource::Pki { ca, cert, key } => Identity::from_pem_files(ca, cert, key)?,
        };
        // What survives a restart: the cluster key (made this node's own with its
        // name, so no two members share a reset key), or the node's own key file.
        let reset_secret: [u8; 32] = match &tls {
            TlsSource::ClusterKey(key) => {
                let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
                let tag =
                    ring::hmac::sign(&k, format!("muster node reset secret {name}").as_bytes());
                tag.as_ref().try_into().expect("HMAC-SHA256 is 32 bytes")
            }
            TlsSource::Pki { .. } => {
                let digest = ring::digest::digest(&ring::digest::SHA256, identity.key.secret_der());
                digest.as_ref().try_into().expect("SHA-256 is 32 bytes")
            }
        };
        // In PKI mode the node key is the certificate's key, and peers bind names by
        // certificate (proto::certified); with a cluster key, the node's own key.
        let (signer, certified_names) = match &tls {
            TlsSource::Pki { .. } => {
                let signer = peer_cert::node_signer(&identity, &name)?;
                if node_key.as_ref().is_some_and(|k| k.key() != signer.key()) {
                    return Err(IdentityError::NodeCertificate(
                        "a node key was given apart from the certificate: in PKI mode the \
                         node key is the certificate's key"
                            .into(),
                    )
                    .into());
                }
                (Arc::new(signer), true)
            }
            TlsSource::ClusterKey(_) => (
                node_key.unwrap_or_else(|| Arc::new(NodeSigner::generate().0)),
                false,
            ),
        };
        let options = TransportOptions {
            reset_secret: Some(reset_secret),
            certified_names,
            ..TransportOptions::default()
        };
        let (transport, incoming) = Transport::bind(bind, &identity, &cluster, options)?;
        let advertise = advertise.unwrap_or_else(|| transport.local_addr());
        let seed = node_seed(&name, advertise);
        let seeded = seeds.iter().any(|s| *s != advertise);
        let health_max = swim.awareness_max.saturating_sub(1);
        let leave_wait = swim.leave_timeout * 2 + Duration::from_secs(1);
        let clock = Clock::start();
        let options = NodeOptions {
            config: swim,
            profile: Profile {
                name: name.clone(),
                addr: advertise,
                region,
                zone,
                tags,
            },
            cluster,
            incarnation,
            signer,
            verifier: Verifier::new(),
            seed,
            // Microseconds since the Unix epoch: above every version of a previous run
            // as long as the clock did not go back (and if it did, the node finds out
            // from its peers and moves above its old state).
            kv_epoch: crate::wall_clock::unix_micros().max(1),
            proven: false,
        };
        let node = match Node::new(options, clock.now()) {
            Ok(node) => node,
            Err(e) => {
                transport.close();
                return Err(e.into());
            }
        };
        let (node_digest, node_len) = (node.digest(), node.members().len());
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let followers = Followers::default();
        let (members_tx, members) = watch::channel(driver::snapshot(&node));
        let (kv_tx, kv) = watch::channel(kv_view::snapshot(&node));
        let (requests, requests_rx) = mpsc::channel(REQUEST_BUFFER);
        let health = Arc::new(AtomicU32::new(0));
        let input_delay = Arc::new(AtomicU64::new(0));
        let driver = Driver {
            health: health.clone(),
            input_delay: input_delay.clone(),
            delayed: std::collections::VecDeque::new(),
            node,
            clock,
            transport: transport.clone(),
            incoming,
            requests: requests_rx,
            events: events.clone(),
            followers: followers.clone(),
            members: members_tx,
            kv: kv_tx,
            rng: rng::node_rng(seed ^ 0x9e37_79b9_7f4a_7c15),
            join: JoinRetry::default(),
            leave_done: Vec::new(),
            fatal: None,
            published: (node_digest, node_len),
            rtt_published: 0,
            rtt_checked_at: tokio::time::Instant::now(),
            seeds: Vec::new(),
            seed_names,
            name_addrs: Vec::new(),
            pending: driver::PendingSeedUse::default(),
            resolving: None,
            peak_live: 1,
            recontact_at: tokio::time::Instant::now() + driver::SEED_RECONTACT,
        };
        tracing::info!(%name, %advertise, bound = %transport.local_addr(), "mesh started");
        let driver = tokio::spawn(driver.run(seeds));
        Ok(Mesh {
            name,
            advertise,
            transport,
            requests,
            events,
            followers,
            members,
            kv,
            driver: Some(driver),
            leave_wait,
            clock,
            seeded,
            health,
            health_max,
            input_delay,
        })
    }

    /// This node's name.
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The address the endpoint is bound to (the actual port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.transport.local_addr()
    }

    /// The address announced to peers.
    pub fn advertise_addr(&self) -> SocketAddr {
        self.advertise
    }

    /// The current membership snapshot, this node included, sorted by name. Refreshed
    /// whenever the membership changes, and every couple of seconds when round-trip
    /// times moved.
    pub fn members(&self) -> Members {
        self.members.borrow().clone()
    }

    /// A cheap, cloneable, read-only handle on this mesh's membership (for the HTTP API),
    /// usable while [`Mesh::leave`] holds the mesh itself. Once the mesh has stopped it
    /// keeps showing the last snapshot.
    pub fn view(&self) -> MeshView {
        MeshView {
            name: self.name.clone(),
            advertise: self.advertise,
            members: self.members.clone(),
            kv: self.kv.clone(),
            clock: self.clock,
            seeded: self.seeded,
            health: self.health.clone(),
            health_max: self.health_max,
        }
    }

    /// A receiver of membership snapshots, for waiting on changes.
    pub fn watch(&self) -> watch::Receiver<Members> {
        self.members.clone()
    }

    /// Every member's replicated key-value state held here (this node's own included).
    pub fn kv(&self) -> KvMaps {
        self.kv.borrow().clone()
    }

    /// A receiver of replicated-state snapshots, for waiting on changes.
    pub fn watch_kv(&self) -> watch::Receiver<KvMaps> {
        self.kv.clone()
    }

    /// Writes one key of this node's replicated state (`None` deletes it); the change
    /// spreads to every member. Errors name a bad key or a state over its size bound.
    pub async fn set_kv(&self, key: String, value: Option<String>) -> Result<(), AgentError> {
        self.control().set_kv(key, value).await
    }

    /// Membership events from now on, in order. A subscriber more than 1,024 events
    /// behind gets `RecvError::Lagged` and should re-read [`Mesh::members`].
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Every membership event from now on, in order, none dropped: for a consumer that
    /// must see each one (the API's event journal, which numbers them for streams and
    /// hooks). The queue is unbounded, so it absorbs a burst (a join into a cluster of
    /// thousands is one `MemberJoined` each, at once) that would overrun
    /// [`Mesh::subscribe`]'s buffer; the consumer must keep up on average. Dropping the
    /// receiver unsubscribes.
    pub fn follow(&self) -> mpsc::UnboundedReceiver<Event> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.followers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tx);
        rx
    }

    /// A cloneable handle that sends this mesh requests (join, tags, force-leave,
    /// leave, counters): for the HTTP API, usable while [`Mesh::leave`] holds the mesh.
    pub fn control(&self) -> MeshControl {
        MeshControl {
            requests: self.requests.clone(),
            transport: self.transport.clone(),
            events: self.events.clone(),
            leave_wait: self.leave_wait,
        }
    }

    /// Joins through `seeds`, retrying with backoff until one answers. Errors if the node
    /// refuses (no seed but itself, or it has left).
    pub async fn join(&self, seeds: Vec<SocketAddr>) -> Result<(), AgentError> {
        self.control().join(seeds).await
    }

    /// Replaces this node's tags; the change spreads with a higher incarnation.
    pub async fn set_tags(&self, tags: Tags) -> Result<(), AgentError> {
        self.control().set_tags(tags).await
    }

    /// Marks a failed member as left, so it is no longer re-contacted and its departure
    /// spreads (Serf's force-leave). Errors if the member is unknown or not failed.
    pub async fn force_leave(&self, name: Name) -> Result<(), AgentError> {
        self.control().force_leave(name).await
    }

    /// A copy of the protocol core's counters.
    pub async fn node_stats(&self) -> Result<Stats, AgentError> {
        self.control().node_stats().await
    }

    /// A copy of the transport's counters (handshakes, connections, traffic, drops).
    pub fn transport_stats(&self) -> TransportStats {
        self.transport.stats()
    }

    /// Drops this share (0.0–1.0) of outgoing UDP packets on purpose, as a lossy or cut
    /// link would: for tests and benchmarks.
    pub fn set_loss(&self, loss: f64) {
        self.transport.set_loss(loss);
    }

    /// Handles every message from peers this late (zero: at once), as a CPU-starved or
    /// paused host would: for tests and benchmarks. The node's own timers keep time.
    pub fn set_input_delay(&self, delay: Duration) {
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        self.input_delay.store(nanos, Ordering::Relaxed);
    }

    /// Leaves gracefully: the others will see this node as left, not failed. Waits for
    /// the departure to spread (bounded by twice the leave timeout plus a second), then
    /// closes the endpoint. The endpoint is closed even when this returns an error.
    pub async fn leave(mut self) -> Result<(), AgentError> {
        let outcome = self.control().leave().await;
        self.stop().await;
        outcome
    }

    /// Stops at once without leaving, as a crash would: the driver stops and the
    /// endpoint closes, so peers hear nothing more and mark this node failed.
    pub async fn shutdown(mut self) {
        self.stop().await;
    }

    /// Waits until the driver task ends by itself, which it never does while the mesh
    /// runs: only a bug (a panic) ends it. Answers why; pending forever once the mesh is
    /// stopped. Whoever runs a mesh for others should stop when this answers, rather
    /// than serve a membership that no longer moves.
    pub async fn driver_ended(&mut self) -> DriverEnd {
        let Some(handle) = self.driver.as_mut() else {
            return std::future::pending().await;
        };
        let outcome = handle.await;
        self.driver = None;
        match outcome {
            Ok(Some(reason)) => DriverEnd::NameTaken(reason),
            Ok(None) => DriverEnd::Failed("the driver returned".to_owned()),
            Err(e) if e.is_panic() => {
                let payload = e.into_panic();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".to_owned());
                DriverEnd::Failed(format!("the driver panicked: {message}"))
            }
            Err(e) => DriverEnd::Failed(format!("the driver ended: {e}")),
        }
    }

    async fn stop(&mut self) {
        if let Some(driver) = self.driver.take() {
            driver.abort();
            // Cancelled (or panicked): either way it is over.
            let _ = driver.await;
        }
        self.transport.close();
        self.transport.wait_idle(CLOSE_WAIT).await;
        tracing::info!(name = %self.name, "mesh stopped");
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        if let Some(driver) = self.driver.take() {
            driver.abort();
        }
        self.transport.close();
    }
}

/// Sends requests to a running mesh's driver; see [`Mesh::control`]. Once the mesh has
/// stopped, every request answers [`AgentError::Stopped`].
#[derive(Debug, Clone)]
pub struct MeshControl {
    requests: mpsc::Sender<Request>,
    transport: Transport,
    events: broadcast::Sender<Event>,
    leave_wait: Duration,
}

impl MeshControl {
    async fn request(&self, request: Request) -> Result<(), AgentError> {
        self.requests
            .send(request)
            .await
            .map_err(|_| AgentError::Stopped)
    }

    /// As [`Mesh::join`].
    pub async fn join(&self, seeds: Vec<SocketAddr>) -> Result<(), AgentError> {
        let (reply, answer) = oneshot::channel();
        self.request(Request::Join { seeds, reply }).await?;
        Ok(answer.await.map_err(|_| AgentError::Stopped)??)
    }

    /// As [`Mesh::set_tags`].
    pub async fn set_tags(&self, tags: Tags) -> Result<(), AgentError> {
        let (reply, answer) = oneshot::channel();
        self.request(Request::SetTags { tags, reply }).await?;
        Ok(answer.await.map_err(|_| AgentError::Stopped)??)
    }

    /// Sets the tags in `set` and removes those in `delete`, keeping the others; the
    /// change spreads with a higher incarnation. Answers the tags now in force.
    pub async fn update_tags(
        &self,
        set: Vec<(String, String)>,
        delete: Vec<String>,
    ) -> Result<Tags, AgentError> {
        let (reply, answer) = oneshot::channel();
        self.request(Request::UpdateTags { set, delete, reply })
            .await?;
        Ok(answer.await.map_err(|_| AgentError::Stopped)??)
    }

    /// As [`Mesh::set_kv`].
    pub async fn set_kv(&self, key: String, value: Option<String>) -> Result<(), AgentError> {
        let (reply, answer) = oneshot::channel();
        self.request(Request::SetKv { key, value, reply }).await?;
        Ok(answer.await.map_err(|_| AgentError::Stopped)??)
    }

    /// As [`Mesh::subscribe`].
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// As [`Mesh::force_leave`].
    pub async fn force_leave(&self, name: Name) -> Result<(), AgentError> {
        let (reply, answer) = oneshot::channel();
        self.request(Request::ForceLeave { name, reply }).await?;
        Ok(answer.await.map_err(|_| AgentError::Stopped)??)
    }

    /// As [`Mesh::node_stats`].
    pub async fn node_stats(&self) -> Result<Stats, AgentError> {
        let (reply, answer) = oneshot::channel();
        self.request(Request::Stats { reply }).await?;
        answer.await.map_err(|_| AgentError::Stopped)
    }

    /// As [`Mesh::transport_stats`].
    pub fn transport_stats(&self) -> TransportStats {
        self.transport.stats()
    }

    /// Makes the driver panic, as a bug would (debug builds only): tests check that
    /// [`Mesh::driver_ended`] and the agent notice.
    #[cfg(debug_assertions)]
    #[doc(hidden)]
    pub async fn crash_driver(&self) -> Result<(), AgentError> {
        self.request(Request::Crash).await
    }

    /// Starts a graceful leave and waits for it to spread (bounded by twice the leave
    /// timeout plus a second). The mesh keeps running, inert, until its owner stops it:
    /// [`Mesh::leave`] does both.
    pub async fn leave(&self) -> Result<(), AgentError> {
        let wait = self.leave_wait;
        let (reply, answer) = oneshot::channel();
        let (done, completed) = oneshot::channel();
        self.request(Request::Leave { reply, done }).await?;
        answer.await.map_err(|_| AgentError::Stopped)??;
        match tokio::time::timeout(wait, completed).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(AgentError::Stopped),
            Err(_) => Err(AgentError::LeaveTimeout(wait)),
        }
    }
}

/// A read-only handle on a running mesh: its name and address, the membership snapshot,
/// and the driver's clock (to tell how long ago a member's state changed). See
/// [`Mesh::view`].
#[derive(Debug, Clone)]
pub struct MeshView {
    name: Name,
    advertise: SocketAddr,
    members: watch::Receiver<Members>,
    kv: watch::Receiver<KvMaps>,
    clock: Clock,
    seeded: bool,
    health: Arc<AtomicU32>,
    /// The highest health score (`awareness_max - 1`).
    health_max: u32,
}

impl MeshView {
    /// This node's Lifeguard health score (0 is healthy), as of the driver's last step.
    pub fn health_score(&self) -> u32 {
        self.health.load(Ordering::Relaxed)
    }

    /// The highest health score this node's configuration allows (`awareness_max - 1`):
    /// at it, the node has missed so many answers that it most likely is the problem.
    pub fn health_max(&self) -> u32 {
        self.health_max
    }

    /// This node's name.
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The address announced to peers.
    pub fn advertise_addr(&self) -> SocketAddr {
        self.advertise
    }

    /// The current membership snapshot, as [`Mesh::members`].
    pub fn members(&self) -> Members {
        self.members.borrow().clone()
    }

    /// The replicated state held here, as [`Mesh::kv`].
    pub fn kv(&self) -> KvMaps {
        self.kv.borrow().clone()
    }

    /// A receiver of membership snapshots, as [`Mesh::watch`].
    pub fn watch(&self) -> watch::Receiver<Members> {
        self.members.clone()
    }

    /// A receiver of replicated-state snapshots, as [`Mesh::watch_kv`].
    pub fn watch_kv(&self) -> watch::Receiver<KvMaps> {
        self.kv.clone()
    }

    /// Now, on the driver's clock (the clock of [`MemberInfo::state_changed`]).
    pub fn now(&self) -> Time {
        self.clock.now()
    }

    /// The membership digest of a snapshot: the node's digest when the snapshot was
    /// published, so two nodes whose latest snapshots agree on who is live at which
    /// incarnation show the same value.
    pub fn digest(members: &[MemberInfo]) -> u64 {
        digest_of(members)
    }

    /// Whether the mesh was started with seeds to join through (as opposed to starting
    /// a new cluster on its own).
    pub fn started_with_seeds(&self) -> bool {
        self.seeded
    }
}

/// The node's RNG seed: from the operating system, or, if it has none to give, from the
/// node's name and address (unique in a cluster, which is all the seed must be).
fn node_seed(name: &str, addr: SocketAddr) -> u64 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    match ring::rand::SystemRandom::new().fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => StableHasher::default()
            .write_str(name)
            .write_str(&addr.to_string())
            .finish(),
    }
}
