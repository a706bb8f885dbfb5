//! Who may do what through the API: [`Access`], and the middleware that applies it to
//! every request before a handler sees it.
//!
//! The threats are a web page in a browser on the agent's host (DNS rebinding, forms and
//! `fetch` sent cross-site) and other users and processes on that host. In order:
//!
//! 1. **Host.** A request whose `Host` (or absolute URI) names anything but the address
//!    the API listens on, a loopback name when it listens on loopback, or a name in
//!    `api_allowed_hosts`, is answered 421: a rebound DNS name reaches the agent's
//!    address but cannot make the browser send the agent's own name. A request with no
//!    `Host` at all comes from no browser and passes this step.
//! 2. **Origin** (mutations). An `Origin` that is not one of those hosts (or is `null`),
//!    or `Sec-Fetch-Site: cross-site`, is 403.
//! 3. **Token.** Mutations need `Authorization: Bearer <token>`; an agent without a token
//!    refuses them (403), unless it is a `--dev` agent on loopback ([`Access::open`]).
//!    Reads need it too with `api_read_token`, or when the client connects from another
//!    host; `GET /v1/health` is always open (load balancers).
//! 4. **Content type** (mutations). A body needs `Content-Type: application/json`
//!    (`application/octet-stream` too for a state value): the types a browser form or a
//!    CORS-free `fetch` can send (`text/plain`, `application/x-www-form-urlencoded`,
//!    `multipart/form-data`) are 415, so a page cannot forge a mutation whatever the
//!    other checks say.
//!
//! The peer and local addresses of a connection come from [`ConnAddrs`], which the
//! server ([`super::server`]) puts on every request; a request without them (the router
//! driven in-process, in tests or by an embedder) counts as coming from loopback.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::{ApiError, ApiState, ApiToken};

/// The addresses of the connection a request came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnAddrs {
    /// The client's address.
    pub peer: SocketAddr,
    /// The agent's address the client connected to.
    pub local: SocketAddr,
}

/// What the API lets through. [`Access::default`] suits a library embedding: no token
/// (mutations open, to whoever passes the browser checks), no `exec` or remote checks.
/// The agent builds its own from its config.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// The bearer token, if any.
    pub token: Option<ApiToken>,
    /// Mutations are refused when there is no token (the agent's default: a token is
    /// always generated, so none means the operator gave no data dir to keep it in).
    pub closed_without_token: bool,
    /// Reads need the token too (`api_read_token`).
    pub read_token: bool,
    /// Host names (lowercase, without port) the API answers to besides its own address
    /// and, on loopback, the loopback names (`api_allowed_hosts`).
    pub allowed_hosts: Vec<String>,
    /// Services registered through the API may have `exec` checks
    /// (`api_allow_exec_checks`).
    pub allow_exec_checks: bool,
    /// Services registered through the API may have `http` and `tcp` checks of other
    /// hosts (`api_allow_remote_checks`).
    pub allow_remote_checks: bool,
    /// This host's own addresses besides loopback (the mesh's bind and advertise
    /// addresses), which API-registered checks may always target.
    pub own_addrs: Vec<IpAddr>,
}

impl Access {
    /// Open mutations without a token: `--dev` on loopback.
    pub fn open() -> Access {
        Access::default()
    }

    /// Whether `host` (a `Host` header or URI authority: `name`, `name:port`,
    /// `1.2.3.4:port`, `[::1]:port`) names this API as reached through `conn`.
    fn host_allowed(&self, host: &str, conn: Option<&ConnAddrs>) -> bool {
        let Some((name, port)) = split_host(host) else {
            return false;
        };
        if let Some(conn) = conn
            && port.is_some_and(|p| p != conn.local.port())
        {
            return false;
        }
        if let Ok(ip) = name.parse::<IpAddr>() {
            // An address literal cannot be rebound: it names the agent itself when it is
            // the address the client reached (or loopback, reached in-process).
            return match conn {
                Some(conn) => {
                    ip == conn.local.ip() || (ip.is_loopback() && conn.local.ip().is_loopback())
                }
                None => ip.is_loopback(),
            };
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let on_loopback = conn.is_none_or(|c| c.local.ip().is_loopback());
        (on_loopback && (name == "localhost" || name.ends_with(".localhost")))
            || self.allowed_hosts.contains(&name)
    }
}

/// `host[:port]` split, the brackets of an IPv6 literal removed; `None` when malformed.
fn split_host(authority: &str) -> Option<(&str, Option<u16>)> {
    let authority = authority.trim();
    if authority.is_empty() || authority.contains(['/', '@', ' ']) {
        return None;
    }
    if let Some(rest) = authority.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        return match after {
            "" => Some((ip, None)),
            _ => Some((ip, Some(after.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match authority.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => Some((name, Some(port.parse().ok()?))),
        Some(_) => None,
        None => Some((authority, None)),
    }
}

/// Whether a method changes something.
fn mutates(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The authority the request names: its absolute URI's, else its `Host` header's.
fn named_host<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<Result<&'a str, ()>> {
    if let Some(authority) = uri.authority() {
        return Some(Ok(authority.as_str()));
    }
    headers
        .get(header::HOST)
        .map(|v| v.to_str().map_err(|_| ()))
}

/// Whether the request carries `token`.
fn carries(token: &ApiToken, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .is_some_and(|given| token.matches(given))
}

/// Whether a mutation's `Origin` and `Sec-Fetch-Site` say a browser sent it from
/// another site.
fn cross_site(access: &Access, headers: &HeaderMap, conn: Option<&ConnAddrs>) -> bool {
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"));
    let foreign_origin = headers.get(header::ORIGIN).is_some_and(|origin| {
        let Ok(origin) = origin.to_str() else {
            return true;
        };
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        !authority.is_some_and(|a| access.host_allowed(a.trim_end_matches('/'), conn))
    });
    fetch_site || foreign_origin
}

/// Whether a mutation's body (if any) has a type no browser form can send.
fn body_type_refused(request: &Request) -> Option<ApiError> {
    let headers = request.headers();
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("").to_ascii_lowercase());
    let essence = content_type
        .as_deref()
        .map(|t| t.split(';').next().unwrap_or("").trim().to_owned());
    let accepted = |essence: &str| {
        essence == "application/json"
            || (essence == "application/octet-stream"
                && request.uri().path().starts_with("/v1/self/state/"))
    };
    match essence {
        Some(essence) if !accepted(&essence) => Some(ApiError::NotJson),
        None if has_body => Some(ApiError::NotJson),
        _ => None,
    }
}

/// Middleware: applies the agent's [`Access`] (see the module docs) to every request.
pub(super) async fn guard(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let access = state.access();
    let conn = request.extensions().get::<ConnAddrs>().copied();
    match named_host(request.uri(), request.headers()) {
        Some(Ok(host)) if access.host_allowed(host, conn.as_ref()) => {}
        Some(Ok(host)) => return ApiError::MisdirectedHost(host.to_owned()).into_response(),
        Some(Err(())) => {
            return ApiError::MisdirectedHost("(not text)".into()).into_response();
        }
        None => {}
    }
    let remote = conn.is_some_and(|c| !c.peer.ip().is_loopback());
    if mutates(request.method()) {
        if cross_site(access, request.headers(), conn.as_ref()) {
            return ApiError::CrossSite.into_response();
        }
        match &access.token {
            Some(token) if !carries(token, request.headers()) => {
                return ApiError::Unauthorized.into_response();
            }
            None if access.closed_without_token => return ApiError::NoToken.into_response(),
            _ => {}
        }
        if let Some(refused) = body_type_refused(&request) {
            return refused.into_response();
        }
    } else if (access.read_token || remote) && request.uri().path() != "/v1/health" {
        let allowed = match &access.token {
            Some(token) => carries(token, request.headers()),
            None => !access.closed_without_token,
        };
        if !allowed {
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(local: &str) -> ConnAddrs {
        ConnAddrs {
            peer: "127.0.0.1:50000".parse().unwrap(),
            local: local.parse().unwrap(),
        }
    }

    #[test]
    fn authorities_split_into_host_and_port() {
        assert_eq!(split_host("localhost"), Some(("localhost", None)));
        assert_eq!(
            split_host("127.0.0.1:7947"),
            Some(("127.0.0.1", Some(7947)))
        );
        assert_eq!(split_host("[::1]:7947"), Some(("::1", Some(7947))));
        assert_eq!(split_host("[::1]"), Some(("::1", None)));
        assert_eq!(split_host("a:b:c"), None);
        assert_eq!(split_host("host:notaport"), None);
        assert_eq!(split_host("user@host"), None);
        assert_eq!(split_host(""), None);
    }

    #[test]
    fn a_loopback_api_answers_its_address_and_loopback_names_only() {
        let access = Access {
            allowed_hosts: vec!["muster.internal".into()],
            ..Access::default()
        };
        let c = conn("127.0.0.1:7947");
        for ok in [
            "127.0.0.1:7947",
            "127.0.0.1",
            "localhost:7947",
            "LOCALHOST.",
            "[::1]:7947",
            "agent.localhost:7947",
            "muster.internal:7947",
        ] {
            assert!(access.host_allowed(ok, Some(&c)), "{ok}");
        }
        for refused in [
            "evil.example",
            "evil.example:7947",
            "127.0.0.1:80",
            "localhost:8080",
            "10.0.0.5:7947",
            "localhost.evil.example",
        ] {
            assert!(!access.host_allowed(refused, Some(&c)), "{refused}");
        }
    }

    #[test]
    fn a_non_loopback_api_answers_the_address_reached_not_loopback_names() {
        let access = Access::default();
        let c = conn("10.0.0.5:7947");
        assert!(access.host_allowed("10.0.0.5:7947", Some(&c)));
        assert!(!access.host_allowed("localhost:7947", Some(&c)));
        assert!(!access.host_allowed("10.0.0.6:7947", Some(&c)));
    }
}
