//! The agent's local HTTP API (axum), served by `muster agent` on `api_addr`.
//!
//! [`router`] builds the whole API over an [`ApiState`]; it needs no server, so tests call
//! it with `tower::ServiceExt::oneshot`. Handlers only read: the membership snapshot the
//! driver publishes (never a lock on the node) and the driver's clock. Every answer is
//! JSON, errors included (`{"error": ..., "field": ...}`); member lists are sorted by name.
//!
//! | file | holds |
//! |---|---|
//! | `mod` | [`ApiState`], [`router`] and the handlers |
//! | `view` | the JSON shapes: [`MemberView`], [`ClusterView`], [`HealthView`] |
//! | `filter` | the `GET /v1/members` filters and the name glob |
//! | `error` | [`ApiError`] and its JSON body |
//!
//! | endpoint | answers |
//! |---|---|
//! | `GET /v1/members` | every member (filters `status`, `region`, `zone`, `tag=key:value`, `name` glob) |
//! | `GET /v1/members/{name}` | one member, or 404 |
//! | `GET /v1/self` | this agent's own record |
//! | `GET /v1/cluster` | counts by status and region, the membership digest, the health score |
//! | `GET /v1/health` | 200 when joined and not leaving, else 503 |

pub mod availability;
pub mod client;
mod error;
mod filter;
pub mod journal;
mod view;

pub use error::{ApiError, ErrorBody};
pub use filter::{MemberFilter, glob_match};
pub use view::{ClusterView, HealthView, MemberView, Status, StatusCounts};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::routing::get;
use axum::{Json, Router};

use crate::agent::MeshView;

/// What the handlers read: the mesh's read-only view, and whether the agent is leaving.
/// Cheap to clone; clones share the leaving flag.
#[derive(Debug, Clone)]
pub struct ApiState {
    mesh: MeshView,
    leaving: Arc<AtomicBool>,
    expects_peers: Arc<AtomicBool>,
}

impl ApiState {
    /// State over a mesh's view ([`crate::Mesh::view`]).
    pub fn new(mesh: MeshView) -> ApiState {
        ApiState {
            mesh,
            leaving: Arc::new(AtomicBool::new(false)),
            expects_peers: Arc::new(AtomicBool::new(false)),
        }
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

    /// Why this agent is not healthy, or `None` when it is (see `GET /v1/health`).
    fn unhealthy(&self) -> Option<&'static str> {
        let members = self.mesh.members();
        let me = members.iter().find(|m| m.name == *self.mesh.name());
        if self.leaving.load(Ordering::Relaxed) || me.is_some_and(|m| !m.state.is_live()) {
            return Some("leaving");
        }
        let others_live = members
            .iter()
            .any(|m| m.name != *self.mesh.name() && m.state.is_live());
        let expects_peers =
            self.mesh.started_with_seeds() || self.expects_peers.load(Ordering::Relaxed);
        if expects_peers && !others_live {
            return Some("not joined: no other live member seen");
        }
        None
    }
}

/// The whole API over `state`. See the module docs for the endpoints.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/members", get(members))
        .route("/v1/members/{name}", get(member))
        .route("/v1/self", get(self_member))
        .route("/v1/cluster", get(cluster))
        .route("/v1/health", get(health))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// `GET /v1/members`: every member passing the filters, sorted by name.
async fn members(
    State(state): State<ApiState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    let Query(pairs) =
        query.map_err(|e| ApiError::bad_query("query", format!("bad query string: {e}")))?;
    let filter = MemberFilter::parse(&pairs)?;
    let now = state.mesh.now();
    // The snapshot is sorted by name already.
    let views = state
        .mesh
        .members()
        .iter()
        .filter(|m| filter.matches(m))
        .map(|m| MemberView::new(m, now))
        .collect();
    Ok(Json(views))
}

/// `GET /v1/members/{name}`.
async fn member(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<MemberView>, ApiError> {
    let now = state.mesh.now();
    state
        .mesh
        .members()
        .iter()
        .find(|m| m.name == name)
        .map(|m| Json(MemberView::new(m, now)))
        .ok_or(ApiError::UnknownMember(name))
}

/// `GET /v1/self`: this agent's own record.
async fn self_member(State(state): State<ApiState>) -> Result<Json<MemberView>, ApiError> {
    let name = state.mesh.name().to_string();
    member(State(state), Path(name)).await
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
    match state.unhealthy() {
        None => (
            StatusCode::OK,
            Json(HealthView {
                status: "ok",
                reason: None,
            }),
        ),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(HealthView {
                status: "unavailable",
                reason: Some(reason),
            }),
        ),
    }
}

async fn unknown_route(uri: Uri) -> ApiError {
    ApiError::UnknownRoute(uri.path().to_owned())
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}
