//! The endpoints that change something: `POST /v1/join`, `POST /v1/leave`,
//! `POST /v1/force-leave/{name}`, `PUT /v1/self/tags`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::agent::AgentError;
use crate::api::extract::{JsonBody, PathParam};
use crate::api::{ApiError, ApiState};
use crate::proto::{CommandError, Event};
use crate::wire::{MAX_NAME_LEN, Tags};

/// How long `POST /v1/join` waits for a seed's answer before saying the join goes on in
/// the background.
pub const JOIN_WAIT: Duration = Duration::from_secs(10);

/// Most seed addresses one join request may name.
pub const MAX_JOIN_ADDRESSES: usize = 64;

/// An [`AgentError`] from a request as an API error.
fn agent_error(e: AgentError) -> ApiError {
    match e {
        AgentError::Command(CommandError::UnknownMember(name)) => {
            ApiError::UnknownMember(name.to_string())
        }
        AgentError::Command(CommandError::Tags(e)) => ApiError::bad_body("set", e.to_string()),
        AgentError::Command(CommandError::NoSeeds) => {
            ApiError::bad_body("addresses", "no seed addresses other than this agent's own")
        }
        AgentError::Command(e) => ApiError::Conflict(e.to_string()),
        AgentError::Stopped => ApiError::Stopped,
        other => ApiError::Conflict(other.to_string()),
    }
}

/// `POST /v1/join` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// Seeds: `ip:port` or `host:port`.
    pub addresses: Vec<String>,
}

/// `POST /v1/join` answer.
#[derive(Debug, Serialize)]
pub struct JoinAnswer {
    /// Always true: a join that got no answer is an error.
    pub joined: bool,
    /// The seed that answered.
    pub via: String,
    /// Live members known once its state was merged.
    pub members: usize,
}

impl JoinAnswer {
    /// The answer for a join `via` a seed, with `members` live.
    fn via(via: SocketAddr, members: usize) -> JoinAnswer {
        JoinAnswer {
            joined: true,
            via: via.to_string(),
            members,
        }
    }
}

/// Resolves one seed; the error names its position.
async fn resolve(i: usize, text: &str) -> Result<Vec<SocketAddr>, ApiError> {
    let field = format!("addresses[{i}]");
    // `lookup_host` takes `ip:port` as it is, without a DNS query.
    if !text.contains(':') {
        return Err(ApiError::bad_body(
            field,
            format!("{text:?} is not host:port"),
        ));
    }
    match tokio::net::lookup_host(text).await {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Err(ApiError::bad_body(
                    field,
                    format!("{text:?} resolves to no address"),
                ))
            } else {
                Ok(addrs)
            }
        }
        Err(e) => Err(ApiError::bad_body(
            field,
            format!("cannot resolve {text:?}: {e}"),
        )),
    }
}

/// `POST /v1/join`: joins through the addresses; answers once a seed has answered, or
/// 504 after [`JOIN_WAIT`] (the join keeps retrying with backoff in the background).
pub(super) async fn join(
    State(state): State<ApiState>,
    JsonBody(body): JsonBody<JoinRequest>,
) -> Result<Json<JoinAnswer>, ApiError> {
    if body.addresses.is_empty() {
        return Err(ApiError::bad_body(
            "addresses",
            "give at least one seed address",
        ));
    }
    if body.addresses.len() > MAX_JOIN_ADDRESSES {
        return Err(ApiError::bad_body(
            "addresses",
            format!("at most {MAX_JOIN_ADDRESSES} addresses"),
        ));
    }
    let mut seeds = Vec::new();
    for (i, text) in body.addresses.iter().enumerate() {
        for addr in resolve(i, text).await? {
            if !seeds.contains(&addr) {
                seeds.push(addr);
            }
        }
    }
    // Subscribed before the request, so the answer cannot be missed.
    let mut events = state.control.subscribe();
    state
        .control
        .join(seeds.clone())
        .await
        .map_err(agent_error)?;
    // Told to be in a cluster: from now on, alone is not healthy.
    state.expect_peers();
    // What was queued by the time the driver took the request came before it (or with
    // it): a failure there is an earlier attempt's, but a join still counts.
    loop {
        match events.try_recv() {
            Ok(Event::Joined { via, members }) => {
                return Ok(Json(JoinAnswer::via(via, members)));
            }
            Ok(_) | Err(TryRecvError::Lagged(_)) => {}
            Err(TryRecvError::Empty | TryRecvError::Closed) => break,
        }
    }
    let wait = async {
        loop {
            match events.recv().await {
                Ok(Event::Joined { via, members }) => {
                    return Ok(JoinAnswer::via(via, members));
                }
                // This attempt's seeds (the agent's own address left out) all failed
                // to answer within the join timeout: say so now, not after JOIN_WAIT.
                Ok(Event::JoinFailed { seeds: tried })
                    if tried.iter().all(|s| seeds.contains(s)) =>
                {
                    return Err(ApiError::JoinTimeout(format!(
                        "no seed answered ({}); the agent keeps retrying in the background",
                        tried
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return Err(ApiError::Stopped),
            }
        }
    };
    match tokio::time::timeout(JOIN_WAIT, wait).await {
        Ok(answer) => answer.map(Json),
        Err(_) => Err(ApiError::JoinTimeout(format!(
            "no seed answered within {} s; the agent keeps retrying in the background",
            JOIN_WAIT.as_secs()
        ))),
    }
}

/// `POST /v1/leave` answer.
#[derive(Debug, Serialize)]
pub struct LeaveAnswer {
    /// True once the departure has spread (or its time ran out).
    pub left: bool,
}

/// `POST /v1/leave`: leaves gracefully; answers once the departure has spread. Served by
/// `muster agent`, the agent then exits, as on SIGTERM.
pub(super) async fn leave(State(state): State<ApiState>) -> Result<Json<LeaveAnswer>, ApiError> {
    state.set_leaving();
    let outcome = match &state.leave_via {
        Some(owner) => {
            let (reply, answer) = tokio::sync::oneshot::channel();
            owner.send(reply).await.map_err(|_| ApiError::Stopped)?;
            answer.await.map_err(|_| ApiError::Stopped)?
        }
        None => state.control.leave().await,
    };
    match outcome {
        Ok(()) | Err(AgentError::LeaveTimeout(_)) => Ok(Json(LeaveAnswer { left: true })),
        Err(e) => Err(agent_error(e)),
    }
}

/// `POST /v1/force-leave/{name}` answer.
#[derive(Debug, Serialize)]
pub struct ForceLeaveAnswer {
    /// The member.
    pub name: String,
    /// Its status now: `left`.
    pub status: &'static str,
}

/// `POST /v1/force-leave/{name}`: marks a failed member left, so it stops being
/// re-contacted and its departure spreads. 404 if unknown, 409 if it is not failed.
pub(super) async fn force_leave(
    State(state): State<ApiState>,
    PathParam(name): PathParam,
) -> Result<Json<ForceLeaveAnswer>, ApiError> {
    if name.len() > MAX_NAME_LEN {
        return Err(ApiError::UnknownMember(name));
    }
    state
        .control
        .force_leave(name.as_str().into())
        .await
        .map_err(agent_error)?;
    Ok(Json(ForceLeaveAnswer {
        name,
        status: "left",
    }))
}

/// `PUT /v1/self/tags` body: tags to set and tags to remove; the others stay.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagsRequest {
    /// Tags to set (added or replaced).
    #[serde(default)]
    pub set: std::collections::BTreeMap<String, String>,
    /// Tag keys to remove (absent keys are fine).
    #[serde(default)]
    pub delete: Vec<String>,
}

/// `PUT /v1/self/tags` answer.
#[derive(Debug, Serialize)]
pub struct TagsAnswer {
    /// This agent's tags now.
    pub tags: Tags,
}

/// `PUT /v1/self/tags`: sets and removes tags; the change spreads to the cluster.
pub(super) async fn put_tags(
    State(state): State<ApiState>,
    JsonBody(body): JsonBody<TagsRequest>,
) -> Result<Json<TagsAnswer>, ApiError> {
    if let Some(key) = body.delete.iter().find(|k| body.set.contains_key(*k)) {
        return Err(ApiError::bad_body(
            "delete",
            format!("tag {key:?} is both set and deleted"),
        ));
    }
    let tags = state
        .control
        .update_tags(body.set.into_iter().collect(), body.delete)
        .await
        .map_err(agent_error)?;
    Ok(Json(TagsAnswer { tags }))
}
