//! Services, routing and failover over HTTP.
//!
//! | endpoint | does |
//! |---|---|
//! | `GET /v1/services` | every service in the cluster: instance counts by region and status |
//! | `GET /v1/services/{name}` | every instance (healthy or not), the local side, the rule in force |
//! | `PUT /v1/services/{name}` | registers a local service (the `[[services]]` shape, as JSON) |
//! | `DELETE /v1/services/{name}` | removes a local service |
//! | `PUT`/`DELETE /v1/services/{name}/drain` | drains one local service / ends it |
//! | `PUT`/`DELETE /v1/drain` | drains every local service / ends it |
//! | `GET /v1/services/{name}/primary` | the primary of a `primary`-mode service (404 unknown, 409 not primary mode, 503 none eligible) |
//! | `GET /v1/route/{service}` | healthy instances, best first (`region`, `zone`, `key`, `limit`, `warning`, `only_region`) |
//! | `POST /v1/failover/{service}` | `{"to": REGION}`: forces traffic there until reset |
//! | `DELETE /v1/failover/{service}` | ends a forced failover or a manual-failback wait |

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use crate::api::extract::{JsonBody, PathParam, body_error};
use crate::api::{Access, ApiError, ApiState};
use crate::routing::router::{Caller, InstanceView, RouteAnswer, RouteError, RouteQuery, RuleView};
use crate::routing::services::{LocalService, PrimaryError, PrimaryView, ServicesError};
use crate::routing::spec::{CheckTarget, ServiceSpec};

/// Most instances a route answer may be asked for.
pub const MAX_LIMIT: usize = 1000;

fn services_error(e: ServicesError) -> ApiError {
    match e {
        ServicesError::Invalid(e) => ApiError::bad_body(e.field, e.reason),
        ServicesError::NotLocal(n) => ApiError::NotLocalService(n),
        ServicesError::Route(e) => route_error(e),
        ServicesError::Agent(e) => ApiError::Conflict(e.to_string()),
        ServicesError::Config(e) => ApiError::bad_body("body", e.to_string()),
    }
}

fn route_error(e: RouteError) -> ApiError {
    match e {
        RouteError::UnknownService { service } => ApiError::UnknownService(service),
        e @ RouteError::NoInstancesInRegion { .. } => ApiError::bad_body("to", e.to_string()),
    }
}

/// Counts of one service's instances.
#[derive(Debug, Default, Serialize)]
pub struct Counts {
    /// Instances on live members.
    pub instances: usize,
    /// Of which passing.
    pub passing: usize,
    /// Of which warning.
    pub warning: usize,
    /// Of which critical.
    pub critical: usize,
    /// Of which draining.
    pub draining: usize,
}

/// One service in `GET /v1/services`.
#[derive(Debug, Serialize)]
pub struct ServiceSummary {
    /// All regions together.
    #[serde(flatten)]
    pub total: Counts,
    /// By region.
    pub regions: BTreeMap<String, Counts>,
    /// Whether this agent runs an instance.
    pub local: bool,
}

/// `GET /v1/services` answer.
#[derive(Debug, Serialize)]
pub struct ServicesView {
    /// Catalog generation (moves once per burst of changes).
    pub index: u64,
    /// Every service, by name.
    pub services: BTreeMap<String, ServiceSummary>,
}

fn count(c: &mut Counts, status: crate::routing::HealthStatus) {
    use crate::routing::HealthStatus::*;
    c.instances += 1;
    match status {
        Passing => c.passing += 1,
        Warning => c.warning += 1,
        Critical => c.critical += 1,
        Draining => c.draining += 1,
    }
}

/// `GET /v1/services`.
pub(super) async fn list(State(state): State<ApiState>) -> Json<ServicesView> {
    let catalog = state.services.catalog();
    let local = state.services.local();
    let mut services: BTreeMap<String, ServiceSummary> = BTreeMap::new();
    for (name, instances) in &catalog.services {
        let mut s = ServiceSummary {
            total: Counts::default(),
            regions: BTreeMap::new(),
            local: local.contains_key(name),
        };
        for i in instances {
            count(&mut s.total, i.status);
            count(s.regions.entry(i.region.clone()).or_default(), i.status);
        }
        services.insert(name.clone(), s);
    }
    for name in local.keys() {
        services
            .entry(name.clone())
            .or_insert_with(|| ServiceSummary {
                total: Counts::default(),
                regions: BTreeMap::new(),
                local: true,
            });
    }
    Json(ServicesView {
        index: state.services.index(),
        services,
    })
}

/// `GET /v1/services/{name}` answer.
#[derive(Debug, Serialize)]
pub struct ServiceDetail {
    /// The service.
    pub service: String,
    /// Every instance on a live member, healthy or not, by node name.
    pub instances: Vec<InstanceView>,
    /// The failover rule in force for this agent's region.
    pub rule: Option<RuleView>,
    /// This agent's own instance: definition, checks, drain state.
    pub local: Option<LocalService>,
}

/// `GET /v1/services/{name}`: 404 when no live member runs it and this agent does not.
pub(super) async fn detail(
    State(state): State<ApiState>,
    PathParam(name): PathParam,
) -> Result<Json<ServiceDetail>, ApiError> {
    let catalog = state.services.catalog();
    let local = state.services.local().remove(&name);
    let instances: Vec<InstanceView> = catalog
        .services
        .get(&name)
        .map(|v| v.iter().map(InstanceView::from).collect())
        .unwrap_or_default();
    if instances.is_empty() && local.is_none() {
        return Err(ApiError::UnknownService(name));
    }
    let rule = state
        .services
        .route(&name, None, &RouteQuery::default())
        .ok()
        .map(|a| a.rule);
    Ok(Json(ServiceDetail {
        service: name,
        instances,
        rule,
        local,
    }))
}

/// `GET /v1/services/{name}/primary`.
pub(super) async fn primary(
    State(state): State<ApiState>,
    PathParam(name): PathParam,
) -> Result<Json<PrimaryView>, ApiError> {
    state
        .services
        .primary(&name)
        .map(Json)
        .map_err(|e| match e {
            PrimaryError::UnknownService(n) => ApiError::UnknownService(n),
            e @ PrimaryError::NotPrimaryMode(_) => ApiError::Conflict(e.to_string()),
            e @ PrimaryError::NoPrimary(_) => ApiError::Unavailable(e.to_string()),
        })
}

/// `PUT /v1/services/{name}` answer.
#[derive(Debug, Serialize)]
pub struct RegisterAnswer {
    /// The service registered.
    pub service: String,
    /// Its definition as now in force.
    pub spec: ServiceSpec,
}

/// `PUT /v1/services/{name}`: the body is one `[[services]]` entry as JSON; `name` may
/// be left out (the path gives it) but must match if present.
pub(super) async fn register(
    State(state): State<ApiState>,
    PathParam(name): PathParam,
    JsonBody(mut body): JsonBody<serde_json::Value>,
) -> Result<Json<RegisterAnswer>, ApiError> {
    let Some(object) = body.as_object_mut() else {
        return Err(ApiError::bad_body("body", "expected a JSON object"));
    };
    match object.get("name") {
        None => {
            object.insert("name".into(), serde_json::Value::String(name.clone()));
        }
        Some(serde_json::Value::String(n)) if *n == name => {}
        Some(_) => {
            return Err(ApiError::bad_body(
                "name",
                format!("must be {name:?}, the name in the path"),
            ));
        }
    }
    // Through axum's JSON reader again, so a value of the wrong type names its field
    // (`checks[0].interval`) as every other JSON body's error does.
    let bytes = serde_json::to_vec(&body).expect("a JSON value serializes");
    let Json(spec) = Json::<ServiceSpec>::from_bytes(&bytes).map_err(|e| match body_error(&e) {
        // A position would point into the re-encoded body, not the one sent.
        ApiError::BadBody { field, reason } => {
            let reason = match reason.rsplit_once(" at line ") {
                Some((r, at)) if at.contains(" column ") => r.to_owned(),
                _ => reason,
            };
            ApiError::bad_body(field, reason)
        }
        other => other,
    })?;
    checks_allowed(state.access(), &spec)?;
    state
        .services
        .register(spec.clone())
        .map_err(services_error)?;
    Ok(Json(RegisterAnswer {
        service: name,
        spec,
    }))
}

/// Refuses the checks a service registered through the API may not have: `exec` checks
/// (a program run as the agent's user) unless `api_allow_exec_checks`, and `http` or
/// `tcp` checks of another host (a probe of the network behind the agent, whose output
/// the API shows) unless `api_allow_remote_checks`. The config file may have any.
/// Malformed checks pass here and are refused, naming their field, by the registration.
fn checks_allowed(access: &Access, spec: &ServiceSpec) -> Result<(), ApiError> {
    let this_host = |host: &str| {
        host.eq_ignore_ascii_case("localhost")
            || host.parse::<std::net::IpAddr>().is_ok_and(|ip| {
                ip.is_loopback() || ip.is_unspecified() || access.own_addrs.contains(&ip)
            })
    };
    for (i, check) in spec.checks.iter().enumerate() {
        let refused = match check.target() {
            Ok(CheckTarget::Exec(_)) if !access.allow_exec_checks => Some((
                "exec",
                "exec checks come only from the agent's config file, unless \
                 api_allow_exec_checks = true",
            )),
            Ok(CheckTarget::Http(url)) if !access.allow_remote_checks && !this_host(&url.host) => {
                Some((
                    "http",
                    "checks registered through the API may only probe this host (localhost, \
                     loopback or its own addresses), unless api_allow_remote_checks = true",
                ))
            }
            Ok(CheckTarget::Tcp { host, .. })
                if !access.allow_remote_checks && !this_host(&host) =>
            {
                Some((
                    "tcp",
                    "checks registered through the API may only probe this host (localhost, \
                     loopback or its own addresses), unless api_allow_remote_checks = true",
                ))
            }
            _ => None,
        };
        if let Some((key, reason)) = refused {
            return Err(ApiError::Forbidden {
                field: format!("checks[{i}].{key}"),
                reason: reason.to_owned(),
            });
        }
    }
    Ok(())
}

/// `DELETE /v1/services/{name}` and drain answers.
#[derive(Debug, Serialize)]
pub struct ChangedAnswer {
    /// The local services affected.
    pub services: Vec<String>,
}

/// `DELETE /v1/services/{name}`: 404 when this agent does not run it.
pub(super) async fn deregister(
    State(state): State<ApiState>,
    PathParam(name): PathParam,
) -> Result<Json<ChangedAnswer>, ApiError> {
    state.services.deregister(&name).map_err(services_error)?;
    Ok(Json(ChangedAnswer {
        services: vec![name],
    }))
}

/// `PUT /v1/services/{name}/drain`.
pub(super) async fn drain_one(
    State(state): State<ApiState>,
    PathParam(name): PathParam,
) -> Result<Json<ChangedAnswer>, ApiError> {
    let services = state.services.drain(Some(&name)).map_err(services_error)?;
    Ok(Json(ChangedAnswer { services }))
}

/// `DELETE /v1/services/{name}/drain`.
pub(super) async fn undrain_one(
    State(state): State<ApiState>,
    PathParam(name): PathParam,
) -> Result<Json<ChangedAnswer>, ApiError> {
    let services = state
        .services
        .undrain(Some(&name))
        .map_err(services_error)?;
    Ok(Json(ChangedAnswer { services }))
}

/// `PUT /v1/drain`: every local service.
pub(super) async fn drain_all(
    State(state): State<ApiState>,
) -> Result<Json<ChangedAnswer>, ApiError> {
    let services = state.services.drain(None).map_err(services_error)?;
    Ok(Json(ChangedAnswer { services }))
}

/// `DELETE /v1/drain`: every local service.
pub(super) async fn undrain_all(
    State(state): State<ApiState>,
) -> Result<Json<ChangedAnswer>, ApiError> {
    let services = state.services.undrain(None).map_err(services_error)?;
    Ok(Json(ChangedAnswer { services }))
}

/// The `GET /v1/route/{service}` parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteParams {
    /// The caller's region (default: this agent's).
    pub region: Option<String>,
    /// The caller's zone (default: this agent's when the region is too, else none).
    pub zone: Option<String>,
    /// Key for the weighted order (default: this agent's name).
    pub key: Option<String>,
    /// Most instances to return.
    pub limit: Option<usize>,
    /// Whether `warning` instances count as healthy (default false).
    pub warning: Option<bool>,
    /// Only this region's instances, no failover.
    pub only_region: Option<String>,
}

/// `GET /v1/route/{service}`.
pub(super) async fn route(
    State(state): State<ApiState>,
    PathParam(service): PathParam,
    query: Result<Query<RouteParams>, QueryRejection>,
) -> Result<Json<RouteAnswer>, ApiError> {
    let Query(p) = query.map_err(|e| {
        let text = e.body_text();
        // "Failed to deserialize query string: limit: invalid digit ...": the path before
        // the reason names the parameter (an unknown one too, whose reason lists the
        // known ones); without one, a known name in the text does.
        let detail = text
            .split_once("query string: ")
            .map_or(text.as_str(), |(_, d)| d);
        if let Some((field, reason)) = detail.split_once(": ")
            && !field.is_empty()
            && !field.contains(' ')
        {
            return ApiError::bad_query(field, reason);
        }
        let field = ["region", "zone", "key", "limit", "warning", "only_region"]
            .into_iter()
            .find(|f| detail.contains(&format!("`{f}`")))
            .unwrap_or("query");
        ApiError::bad_query(field, detail)
    })?;
    if p.limit == Some(0) || p.limit.is_some_and(|l| l > MAX_LIMIT) {
        return Err(ApiError::bad_query(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    for (field, value) in [
        ("region", &p.region),
        ("zone", &p.zone),
        ("only_region", &p.only_region),
    ] {
        if value.as_ref().is_some_and(|v| v.is_empty()) {
            return Err(ApiError::bad_query(field, "must not be empty"));
        }
    }
    let home = state.services.home().clone();
    let caller = if p.region.is_some() || p.zone.is_some() || p.key.is_some() {
        let region = p.region.clone().unwrap_or_else(|| home.region.clone());
        let zone = match (&p.zone, &p.region) {
            (Some(z), _) => z.clone(),
            (None, Some(r)) if *r != home.region => String::new(),
            _ => home.zone.clone(),
        };
        Some(Caller {
            region,
            zone,
            key: p.key.clone().unwrap_or(home.key),
        })
    } else {
        None
    };
    let query = RouteQuery {
        limit: p.limit,
        warning_ok: p.warning.unwrap_or(false),
        region: p.only_region,
    };
    state
        .services
        .route(&service, caller, &query)
        .map(Json)
        .map_err(route_error)
}

/// `POST /v1/failover/{service}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverRequest {
    /// The region to send the service's traffic to.
    pub to: String,
}

/// `POST`/`DELETE /v1/failover/{service}` answer.
#[derive(Debug, Serialize)]
pub struct FailoverAnswer {
    /// The service.
    pub service: String,
    /// The rule now in force for this agent's region (absent when no live member runs
    /// the service any more).
    pub rule: Option<RuleView>,
}

fn rule_now(state: &ApiState, service: &str) -> Result<RuleView, ApiError> {
    state
        .services
        .route(service, None, &RouteQuery::default())
        .map(|a| a.rule)
        .map_err(route_error)
}

/// `POST /v1/failover/{service}`: forces the service's traffic to a region.
pub(super) async fn force(
    State(state): State<ApiState>,
    PathParam(service): PathParam,
    JsonBody(body): JsonBody<FailoverRequest>,
) -> Result<Json<FailoverAnswer>, ApiError> {
    if body.to.is_empty() {
        return Err(ApiError::bad_body("to", "must not be empty"));
    }
    state
        .services
        .force(&service, &body.to)
        .map_err(services_error)?;
    let rule = Some(rule_now(&state, &service)?);
    Ok(Json(FailoverAnswer { service, rule }))
}

/// `DELETE /v1/failover/{service}`: back to the rule's own judgement.
pub(super) async fn reset(
    State(state): State<ApiState>,
    PathParam(service): PathParam,
) -> Result<Json<FailoverAnswer>, ApiError> {
    state.services.reset(&service).map_err(services_error)?;
    // The reset is done even if the service's last instance has just gone.
    let rule = rule_now(&state, &service).ok();
    Ok(Json(FailoverAnswer { service, rule }))
}
