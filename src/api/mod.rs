//! The agent's local HTTP API (axum), served by `muster agent` on `api_addr`.
//!
//! [`router`] builds the whole API over an [`ApiState`]; it needs no server, so tests call
//! it with `tower::ServiceExt::oneshot`. Reads never lock the node: they use the
//! membership snapshot the driver publishes and the event journal; changes go to the
//! driver as requests. Every answer is JSON (errors: `{"error": ..., "field": ...}`),
//! except the event stream (SSE) and `/metrics` (Prometheus text). Member lists are
//! sorted by name.
//!
//! | file | holds |
//! |---|---|
//! | `mod` | [`ApiState`], [`router`] and the read handlers |
//! | `filter` | the `GET /v1/members` filters and the name glob |
//! | `events` | `GET /v1/events` (SSE, `Last-Event-ID`) |
//! | `mutate` | join, leave, force-leave, tags |
//! | `extract` | the JSON body and path extractors, whose refusals are JSON errors |
//! | `access` | [`Access`]: the Host, Origin, token and content-type checks on every request |
//! | `auth` | the bearer token, generated into the data dir on first start |
//! | `server` | [`server::serve`]: connection limits, header and idle timeouts, TLS |
//! | `metrics` | `GET /metrics` |
//! | `state` | replicated member state: `/v1/self/state/{key}`, `/v1/members/{name}/state` |
//! | `services` | services, drain, route answers and manual failover |
//! | `error` | [`ApiError`] and its JSON body |
//! | `client` | the small blocking client the CLI uses |
//!
//! | endpoint | answers |
//! |---|---|
//! | `GET /v1/members` | every member (filters `status`, `region`, `zone`, `tag=key:value`, `name` glob) |
//! | `GET /v1/members/{name}` | one member, or 404 |
//! | `GET /v1/self` | this agent's own record |
//! | `GET /v1/cluster` | counts by status and region, the membership digest, the health score |
//! | `GET /v1/health` | 200 when joined, not leaving and not degraded (health score at its maximum, until back to half), else 503 |
//! | `GET /v1/events` | the event stream (SSE) |
//! | `POST /v1/join` | join through `{"addresses": [...]}` |
//! | `POST /v1/leave` | leave gracefully (the agent then exits) |
//! | `POST /v1/force-leave/{name}` | mark a failed member left |
//! | `PUT /v1/self/tags` | `{"set": {...}, "delete": [...]}` |
//! | `GET /v1/self/state` | this agent's replicated key-value state |
//! | `PUT`/`DELETE /v1/self/state/{key}` | writes (the body is the value) or deletes one key; spreads to all |
//! | `GET /v1/members/{name}/state` | a member's replicated state as mirrored here |
//! | `GET /v1/services`, `GET /v1/services/{name}` | the service catalog |
//! | `PUT`/`DELETE /v1/services/{name}` | registers / removes a local service |
//! | `PUT`/`DELETE /v1/services/{name}/drain`, `/v1/drain` | drains local services / ends it |
//! | `GET /v1/services/{name}/primary` | the primary of a `primary`-mode service |
//! | `GET /v1/route/{service}` | healthy instances, best first, with the failover rule in force |
//! | `POST`/`DELETE /v1/failover/{service}` | forces a region / resets |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /v1/openapi.yaml` | this table as OpenAPI 3.1 (`docs/openapi.yaml`) |

pub mod access;
mod auth;
pub mod client;
mod error;
mod events;
pub mod extract;
mod filter;
pub mod metrics;
pub mod mutate;
pub mod server;
pub mod services;
pub mod state;

pub use crate::events::Status;
pub use crate::events::view::{ClusterView, HealthView, MemberRow, MemberView, StatusCounts};
pub use access::{Access, ConnAddrs};
pub use auth::{ApiToken, MIN_TOKEN_LEN, TOKEN_FILE, TokenError, TokenFileError};
pub use error::{ApiError, ErrorBody};
pub use filter::{MemberFilter, glob_match};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};

use crate::routing::services::Services;
use axum::{Json, Router};
use tokio::sync::{mpsc, oneshot, watch};

use crate::agent::{AgentError, Mesh, MeshControl, MeshView};
use crate::api::extract::PathParam;
use crate::events::journal::Journal;
use crate::metrics::MetricsSource;

/// How the owner of a mesh is asked to leave: the sender gets the outcome once done.
pub type LeaveRequest = oneshot::Sender<Result<(), AgentError>>;

/// What the handlers use: the mesh's read-only view and its request handle, the event
/// journal, whether the agent is leaving, the token, and extra metrics. Cheap to clone;
/// clones share everything.
#[derive(Debug, Clone)]
pub struct ApiState {
    mesh: MeshView,
    control: MeshControl,
    journal: Journal,
    leaving: Arc<AtomicBool>,
    expects_peers: Arc<AtomicBool>,
    /// The last `/v1/health` found the agent degraded (see [`health_verdict`]).
    degraded: Arc<AtomicBool>,
    access: Arc<Access>,
    leave_via: Option<mpsc::Sender<LeaveRequest>>,
    closing: Arc<watch::Sender<bool>>,
    metrics: Vec<Arc<dyn MetricsSource>>,
    services: Services,
    /// Places for open event streams: each `GET /v1/events` holds one while it runs.
    streams: Arc<tokio::sync::Semaphore>,
}

/// Event streams open at once by default: far more than the local programs that follow
/// an agent, few enough that they cannot take the descriptors its checks need.
pub const DEFAULT_MAX_STREAMS: usize = 128;

impl ApiState {
    /// State over a running mesh with no local services; starts its event journal and
    /// the routing tasks (on the current runtime). Route answers still cover every
    /// service other members run.
    pub fn new(mesh: &Mesh) -> ApiState {
        let services = Services::start(mesh, &[]).expect("no services to refuse");
        ApiState::with_services(mesh, services)
    }

    /// State over a running mesh and its services; starts its event journal.
    pub fn with_services(mesh: &Mesh, services: Services) -> ApiState {
        let journal = Journal::start(mesh);
        journal.follow_primaries(services.subscribe_primaries());
        journal.follow_failovers(services.subscribe_rule_changes());
        ApiState {
            journal,
            metrics: vec![Arc::new(services.clone()) as Arc<dyn MetricsSource>],
            services,
            mesh: mesh.view(),
            control: mesh.control(),
            leaving: Arc::new(AtomicBool::new(false)),
            expects_peers: Arc::new(AtomicBool::new(false)),
            degraded: Arc::new(AtomicBool::new(false)),
            access: Arc::new(Access::default()),
            leave_via: None,
            closing: Arc::new(watch::channel(false).0),
            streams: Arc::new(tokio::sync::Semaphore::new(DEFAULT_MAX_STREAMS)),
        }
    }

    /// At most `max` event streams open at once; more are answered 503.
    pub fn with_stream_limit(mut self, max: usize) -> ApiState {
        self.streams = Arc::new(tokio::sync::Semaphore::new(max));
        self
    }

    /// Requires `token` on mutating requests (keeping the rest of the [`Access`]).
    pub fn with_token(mut self, token: ApiToken) -> ApiState {
        Arc::make_mut(&mut self.access).token = Some(token);
        self
    }

    /// Applies `access` to every request (see [`access`]).
    pub fn with_access(mut self, access: Access) -> ApiState {
        self.access = Arc::new(access);
        self
    }

    /// What the API lets through.
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// Hands `POST /v1/leave` to the mesh's owner (who then stops the mesh, as on a
    /// signal) instead of leaving through the request handle and staying up, inert.
    pub fn leave_via(mut self, owner: mpsc::Sender<LeaveRequest>) -> ApiState {
        self.leave_via = Some(owner);
        self
    }

    /// Adds a source of metrics to `GET /metrics` (e.g. the event hooks).
    pub fn with_metrics(mut self, source: Arc<dyn MetricsSource>) -> ApiState {
        self.metrics.push(source);
        self
    }

    /// The event journal (for the hooks).
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The agent's services.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Ends every open event stream, so a graceful shutdown of the server is not held
    /// up by clients that would otherwise stay connected forever.
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
    }

    /// Marks this agent as meant to be in a cluster even though its mesh started with
    /// no seed (its seed names did not resolve yet): `/v1/health` answers 503 until it
    /// sees another live member, instead of reporting a cluster of one as healthy.
    pub fn expect_peers(&self) {
        self.expects_peers.store(true, Ordering::Relaxed);
    }

    /// Marks the agent as leaving: `/v1/health` answers 503 from now on, so load
    /// balancers stop sending work while the departure spreads.
    pub fn set_leaving(&self) {
        self.leaving.store(true, Ordering::Relaxed);
    }

    /// Why this agent is not healthy, or `None` when it is, judged at health score
    /// `score` (see `GET /v1/health`).
    fn unhealthy(&self, score: u32) -> Option<String> {
        let members = self.mesh.members();
        let me = members.iter().find(|m| m.name == *self.mesh.name());
        let verdict = health_verdict(&HealthInputs {
            leaving: self.leaving.load(Ordering::Relaxed) || me.is_some_and(|m| !m.state.is_live()),
            expects_peers: self.mesh.started_with_seeds()
                || self.expects_peers.load(Ordering::Relaxed),
            others_live: members
                .iter()
                .any(|m| m.name != *self.mesh.name() && m.state.is_live()),
            score,
            max: self.mesh.health_max(),
            was_degraded: self.degraded.load(Ordering::Relaxed),
        });
        self.degraded.store(verdict.degraded, Ordering::Relaxed);
        verdict.reason
    }
}

/// What `GET /v1/health` decides on.
#[derive(Debug, Clone, Copy)]
struct HealthInputs {
    /// The agent is leaving or has left (or the cluster holds it failed).
    leaving: bool,
    /// It was started with seeds, or told to join: alone is not healthy.
    expects_peers: bool,
    /// It sees another live member.
    others_live: bool,
    /// Its Lifeguard health score, and the highest one possible.
    score: u32,
    max: u32,
    /// The previous answer found it degraded.
    was_degraded: bool,
}

/// The answer to `GET /v1/health`, and whether the agent counts as degraded now.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HealthVerdict {
    reason: Option<String>,
    degraded: bool,
}

/// Why an agent in `inputs` is unhealthy (`reason`), or not. A node at the highest
/// health score has missed so many answers that it, not its peers, is most likely the
/// problem (an overloaded host, a broken network): load balancers should stop sending it
/// work until it recovers. Recovering means coming down to half the maximum, not one
/// step below it: one answered probe lowers the score by one and the next miss raises
/// it again, which would flap the answer. Without a live peer the score cannot move (only
/// live members are probed), so it says nothing then. A node alone is healthy only if it
/// was never meant to join (the first member of a new cluster).
fn health_verdict(inputs: &HealthInputs) -> HealthVerdict {
    let degraded = inputs.others_live
        && inputs.max > 0
        && (inputs.score >= inputs.max || (inputs.was_degraded && inputs.score > inputs.max / 2));
    let reason = if inputs.leaving {
        Some("leaving".into())
    } else if inputs.expects_peers && !inputs.others_live {
        Some("not joined: no other live member seen".into())
    } else if degraded {
        Some(format!(
            "degraded: health score {} (maximum {}; healthy again at {}): this agent misses its peers' answers",
            inputs.score,
            inputs.max,
            inputs.max / 2
        ))
    } else {
        None
    };
    HealthVerdict { reason, degraded }
}

/// The whole API over `state`. See the module docs for the endpoints.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/members", get(members))
        .route("/v1/members/{name}", get(member))
        .route("/v1/self", get(self_member))
        .route("/v1/self/tags", put(mutate::put_tags))
        .route("/v1/cluster", get(cluster))
        .route("/v1/health", get(health))
        .route("/v1/events", get(events::events))
        .route("/v1/join", post(mutate::join))
        .route("/v1/leave", post(mutate::leave))
        .route("/v1/force-leave/{name}", post(mutate::force_leave))
        .route("/v1/self/state", get(state::get_own))
        .route(
            "/v1/self/state/{key}",
            put(state::put).delete(state::delete),
        )
        .route("/v1/members/{name}/state", get(state::get_member))
        .route("/v1/services", get(services::list))
        .route(
            "/v1/services/{name}",
            get(services::detail)
                .put(services::register)
                .delete(services::deregister),
        )
        .route("/v1/services/{name}/primary", get(services::primary))
        .route(
            "/v1/services/{name}/drain",
            put(services::drain_one).delete(services::undrain_one),
        )
        .route(
            "/v1/drain",
            put(services::drain_all).delete(services::undrain_all),
        )
        .route("/v1/route/{service}", get(services::route))
        .route(
            "/v1/failover/{service}",
            post(services::force).delete(services::reset),
        )
        .route("/metrics", get(metrics))
        .route("/v1/openapi.yaml", get(openapi))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(extract::MAX_BODY))
        .layer(axum::middleware::from_fn(extract::refuse_large_bodies))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::guard,
        ))
        .with_state(state)
}

/// Room reserved per member when writing a member list: a typical record with its
/// availability is about 300 bytes, so a list of thousands is written without regrowing
/// (and recopying) its buffer.
const MEMBER_JSON_BYTES: usize = 384;

/// `GET /v1/members`: every member passing the filters, sorted by name.
async fn members(
    State(state): State<ApiState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(pairs) =
        query.map_err(|e| ApiError::bad_query("query", format!("bad query string: {e}")))?;
    let filter = MemberFilter::parse(&pairs)?;
    let now = state.mesh.now();
    let members = state.mesh.members();
    // The snapshot is sorted by name already.
    let rows: Vec<MemberRow<'_>> = state.journal.with_availability(|history| {
        members
            .iter()
            .filter(|m| filter.matches(m))
            .map(|m| MemberRow::new(m, now, history.view(&m.name, now)))
            .collect()
    });
    let mut body = Vec::with_capacity(rows.len() * MEMBER_JSON_BYTES + 2);
    serde_json::to_writer(&mut body, &rows).expect("member rows serialize");
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `GET /v1/members/{name}`.
async fn member(
    State(state): State<ApiState>,
    PathParam(name): PathParam,
) -> Result<Json<MemberView>, ApiError> {
    let now = state.mesh.now();
    state
        .mesh
        .members()
        .iter()
        .find(|m| m.name == name)
        .map(|m| Json(MemberView::new(m, now).with_availability(state.journal.availability(&name))))
        .ok_or(ApiError::UnknownMember(name))
}

/// `GET /v1/self`: this agent's own record.
async fn self_member(State(state): State<ApiState>) -> Result<Json<MemberView>, ApiError> {
    let name = state.mesh.name().to_string();
    member(State(state), PathParam(name)).await
}

/// `GET /v1/cluster`.
async fn cluster(State(state): State<ApiState>) -> Json<ClusterView> {
    let members = state.mesh.members();
    let digest = MeshView::digest(&members);
    Json(ClusterView::new(
        state.mesh.name(),
        &members,
        digest,
        state.mesh.health_score(),
    ))
}

/// `GET /v1/health`: 200 `{"status":"ok"}` when this agent has joined (it sees another
/// live member, or it was started with no seeds, as the first member of a cluster) and
/// is not leaving; 503 with a reason otherwise.
async fn health(State(state): State<ApiState>) -> (StatusCode, Json<HealthView>) {
    let health_score = state.mesh.health_score();
    match state.unhealthy(health_score) {
        None => (
            StatusCode::OK,
            Json(HealthView {
                status: "ok",
                reason: None,
                health_score,
            }),
        ),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(HealthView {
                status: "unavailable",
                reason: Some(reason),
                health_score,
            }),
        ),
    }
}

/// How long `GET /metrics` waits for the protocol core's counters.
const NODE_STATS_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// `GET /metrics`: Prometheus text exposition (see [`metrics`]).
async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    // A driver too busy to answer within a scrape's usual timeout leaves its families
    // out of this scrape rather than holding the scraper.
    let node = tokio::time::timeout(NODE_STATS_WAIT, state.control.node_stats())
        .await
        .ok()
        .and_then(Result::ok);
    let transport = state.control.transport_stats();
    let members = state.mesh.members();
    let events = state.journal.counts();
    let text = metrics::render(
        &metrics::Scrape {
            name: state.mesh.name(),
            members: &members,
            health_score: state.mesh.health_score(),
            node: node.as_ref(),
            transport: &transport,
            events: &events,
        },
        &state.metrics,
    );
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text)
}

/// This API's OpenAPI description (`docs/openapi.yaml`), built into the binary.
pub const OPENAPI_YAML: &str = include_str!("../../docs/openapi.yaml");

/// `GET /v1/openapi.yaml`: [`OPENAPI_YAML`].
async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI_YAML)
}

async fn unknown_route(uri: Uri) -> ApiError {
    ApiError::UnknownRoute(uri.path().to_owned())
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_needs_peers_when_expected_no_leave_and_a_score_below_the_maximum() {
        let reason = |inputs: &HealthInputs| health_verdict(inputs).reason;
        let ok = HealthInputs {
            leaving: false,
            expects_peers: true,
            others_live: true,
            score: 6,
            max: 7,
            was_degraded: false,
        };
        assert_eq!(
            health_verdict(&ok),
            HealthVerdict {
                reason: None,
                degraded: false
            }
        );
        let alone = HealthInputs {
            others_live: false,
            ..ok
        };
        assert!(reason(&alone).is_some_and(|r| r.starts_with("not joined")));
        // The first member of a new cluster is healthy alone, whatever its score (with
        // nobody to probe it cannot come down).
        let founder = HealthInputs {
            expects_peers: false,
            score: 7,
            ..alone
        };
        assert_eq!(
            health_verdict(&founder),
            HealthVerdict {
                reason: None,
                degraded: false
            }
        );
        let degraded = HealthInputs { score: 7, ..ok };
        assert_eq!(
            health_verdict(&degraded),
            HealthVerdict {
                reason: Some(
                    "degraded: health score 7 (maximum 7; healthy again at 3): this agent \
                     misses its peers' answers"
                        .into()
                ),
                degraded: true
            }
        );
        let leaving = HealthInputs {
            leaving: true,
            ..degraded
        };
        assert_eq!(reason(&leaving).as_deref(), Some("leaving"));
    }

    #[test]
    fn a_degraded_agent_is_healthy_again_only_at_half_the_maximum_score() {
        let at = |score, was_degraded| {
            health_verdict(&HealthInputs {
                leaving: false,
                expects_peers: true,
                others_live: true,
                score,
                max: 7,
                was_degraded,
            })
            .degraded
        };
        // Climbing: degraded only at the maximum.
        assert!(!at(6, false));
        assert!(at(7, false));
        // Coming down: still degraded until half of it.
        assert!(at(6, true));
        assert!(at(4, true));
        assert!(!at(3, true));
    }
}
