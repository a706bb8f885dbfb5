//! Replicated member state over HTTP: `GET /v1/self/state`, `PUT` and `DELETE
//! /v1/self/state/{key}` (this agent's own map; the change spreads to every member),
//! and `GET /v1/members/{name}/state` (any member's map as this agent mirrors it).
//!
//! A value is the raw request body, UTF-8 text sent as `application/octet-stream` or
//! `application/json` (the types a browser form can send are refused before this, see
//! [`super::access`]). Keys under `muster/` are Muster's own (service records) and cannot be
//! written here.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde::Serialize;

use crate::agent::{AgentError, MemberKv};
use crate::api::extract::{MAX_BODY, PathParam};
use crate::api::{ApiError, ApiState};
use crate::proto::{CommandError, KvError};
use crate::routing::record::RESERVED_PREFIX;
use crate::wire::MAX_NAME_LEN;

/// One member's replicated state as the API shows it.
#[derive(Debug, Serialize)]
pub struct StateView {
    /// The member.
    pub node: String,
    /// Its map as this agent holds it (epoch, version, entries by key).
    #[serde(flatten)]
    pub state: MemberKv,
}

/// `PUT`/`DELETE /v1/self/state/{key}` answer.
#[derive(Debug, Serialize)]
pub struct WriteAnswer {
    /// The key written.
    pub key: String,
    /// Whether the key now holds a value (false after a delete).
    pub set: bool,
    /// The map's version after the write.
    pub version: u64,
}

fn view(state: &ApiState, name: &str) -> StateView {
    let maps = state.mesh.kv();
    StateView {
        node: name.to_owned(),
        state: maps.get(name).map(|m| (**m).clone()).unwrap_or_default(),
    }
}

/// `GET /v1/self/state`.
pub(super) async fn get_own(State(state): State<ApiState>) -> Json<StateView> {
    let name = state.mesh.name().to_string();
    Json(view(&state, &name))
}

/// `GET /v1/members/{name}/state`: 404 for a name not in the membership.
pub(super) async fn get_member(
    State(state): State<ApiState>,
    PathParam(name): PathParam,
) -> Result<Json<StateView>, ApiError> {
    if name.len() > MAX_NAME_LEN || !state.mesh.members().iter().any(|m| m.name == name) {
        return Err(ApiError::UnknownMember(name));
    }
    Ok(Json(view(&state, &name)))
}

fn check_key(key: &str) -> Result<(), ApiError> {
    if key.starts_with(RESERVED_PREFIX) {
        return Err(ApiError::bad_query(
            "key",
            format!("keys under {RESERVED_PREFIX:?} are written by Muster itself"),
        ));
    }
    Ok(())
}

async fn write(
    state: &ApiState,
    key: String,
    value: Option<String>,
) -> Result<WriteAnswer, ApiError> {
    check_key(&key)?;
    let set = value.is_some();
    match state.control.set_kv(key.clone(), value).await {
        Ok(()) => {}
        Err(AgentError::Command(CommandError::Kv(e))) => {
            return Err(match e {
                KvError::TooLarge { .. } => ApiError::bad_body("value", e.to_string()),
                KvError::EmptyKey | KvError::KeyTooLong { .. } => {
                    ApiError::bad_query("key", e.to_string())
                }
            });
        }
        Err(AgentError::Command(e @ CommandError::ControlCharacter { field })) => {
            return Err(ApiError::bad_query(field, e.to_string()));
        }
        Err(AgentError::Stopped) => return Err(ApiError::Stopped),
        Err(e) => return Err(ApiError::Conflict(e.to_string())),
    }
    let version = state
        .mesh
        .kv()
        .get(state.mesh.name())
        .map_or(0, |m| m.version);
    Ok(WriteAnswer { key, set, version })
}

/// `PUT /v1/self/state/{key}`: the body is the value (413 past the API's body limit).
pub(super) async fn put(
    State(state): State<ApiState>,
    PathParam(key): PathParam,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<WriteAnswer>, ApiError> {
    // Axum's own rejection is plain text; every answer of the API is JSON.
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(MAX_BODY),
        _ => ApiError::bad_body("value", e.body_text()),
    })?;
    let value = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_body("value", "the value must be UTF-8 text"))?;
    write(&state, key, Some(value)).await.map(Json)
}

/// `DELETE /v1/self/state/{key}`: deleting an absent key is not an error.
pub(super) async fn delete(
    State(state): State<ApiState>,
    PathParam(key): PathParam,
) -> Result<Json<WriteAnswer>, ApiError> {
    write(&state, key, None).await.map(Json)
}
