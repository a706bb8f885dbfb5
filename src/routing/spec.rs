//! One service this agent offers: [`ServiceSpec`], a `[[services]]` entry of the agent
//! config (and the same shape as JSON, for the API), with its health checks
//! ([`CheckSpec`]) and its optional failover rule.
//!
//! ```toml
//! [[services]]
//! name = "web"                 # [A-Za-z0-9_-], 1 to 63 bytes: it becomes a DNS label
//! port = 8080
//! weight = 1                   # share of traffic, 1 to 1000
//! mode = "balanced"            # or "primary": one instance, elected, holds the primary role
//! priority = 0                 # only with mode = "primary": the highest passing one is primary
//! failback = true              # only with mode = "primary": a recovered higher-priority instance takes the role back
//! tags = { version = "2" }     # bounded like a member's tags
//!
//! [[services.checks]]
//! http = "http://127.0.0.1:8080/health"   # or tcp = "127.0.0.1:8080", or exec = ["/bin/check", "arg"]
//! interval = "10s"
//! timeout = "2s"               # at most the interval
//! success_threshold = 2        # consecutive passes before a failing check passes again
//! failure_threshold = 2        # consecutive failures before a passing check fails
//!
//! [services.failover]          # optional: see `crate::routing::rule`
//! trigger = "none-passing"
//! ```
//!
//! `https://` checks are accepted: they use the webhook client's TLS (rustls, the Mozilla
//! roots, no host trust store), so an endpoint with a self-signed or private-CA
//! certificate fails its check; check such endpoints over `http://` or `tcp`.
//!
//! Invariant: a spec that passed [`ServiceSpec::validate`] has exactly one target per
//! check, each of which [`CheckSpec::target`] turns into a [`CheckTarget`] without error.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration::format_duration;
use crate::field_error::FieldError;
use crate::http_client::HttpUrl;
use crate::routing::rule::FailoverRule;
use crate::wire::Tags;

/// Longest service name: a DNS label holds at most 63 bytes (RFC 1035), and the name
/// becomes one.
pub const MAX_SERVICE_NAME_LEN: usize = 63;

/// Default weight: every instance takes an equal share unless told otherwise.
pub const DEFAULT_WEIGHT: u32 = 1;

/// Largest weight: a thousand-to-one spread covers any real mix of machine sizes, and
/// keeps the sum over thousands of instances far from overflowing a `u32`.
pub const MAX_WEIGHT: u32 = 1000;

/// Default time between two runs of a check: Consul's and Kubernetes' usual figure, a
/// failure is seen within a few intervals without loading the service.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// Default time one run may take: a healthy endpoint answers in milliseconds; one that
/// takes seconds is not healthy.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Shortest interval: faster than gossip spreads a change, checking more often only
/// spends the host's CPU and the service's patience.
pub const MIN_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Longest interval: a check that runs less than hourly cannot steer traffic.
pub const MAX_CHECK_INTERVAL: Duration = Duration::from_secs(3600);

/// Default consecutive passes before a failing check passes again: one good answer
/// between bad ones does not flap traffic back.
pub const DEFAULT_SUCCESS_THRESHOLD: u32 = 2;

/// Default consecutive failures before a passing check fails: one lost answer does not
/// move traffic.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 2;

/// Largest threshold: at the default interval 100 runs already take over 16 minutes;
/// beyond that a status change is too late to matter and the number is likely a typo.
pub const MAX_THRESHOLD: u32 = 100;

/// How the instances of a service share its work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceMode {
    /// Every healthy instance takes traffic, in proportion to its weight.
    #[default]
    Balanced,
    /// One passing instance holds the primary role, elected the same way by every agent
    /// (see [`crate::routing::primary`]); route answers still list every healthy
    /// instance, and `GET /v1/services/{name}/primary` names the primary.
    Primary,
}

/// One `[[services]]` entry: a service this agent's host runs. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Service name, unique on this agent: `[A-Za-z0-9_-]`, 1 to 63 bytes.
    pub name: String,
    /// Port the service listens on (1 to 65535).
    pub port: u16,
    /// Share of the service's traffic this instance takes, 1 to [`MAX_WEIGHT`].
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// How the instances share the work: all of them (`balanced`), or one elected
    /// primary (`primary`).
    #[serde(default)]
    pub mode: ServiceMode,
    /// Rank in `primary` mode: the passing instance with the highest priority is the
    /// primary (ties by node name); must stay 0 in `balanced` mode.
    #[serde(default)]
    pub priority: u32,
    /// In `primary` mode: whether a recovered instance of higher priority takes the role
    /// back from the one that replaced it (`true`), or the replacement keeps it while it
    /// passes (`false`). Must stay `true` in `balanced` mode.
    #[serde(default = "default_failback")]
    pub failback: bool,
    /// Labels of this instance, bounded like a member's tags (after the plain keys:
    /// TOML writes tables after them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Health checks; none means the instance is always passing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckSpec>,
    /// Failover rule; none means the default rule ([`FailoverRule::default`]: fail over
    /// to the nearest regions 2 s after the caller's region has no passing instance,
    /// fail back 10 s after it has one again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<FailoverRule>,
}

/// One `[[services.checks]]` entry: what to probe (exactly one of `http`, `tcp`,
/// `exec`), how often, and how many results in a row change its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// `http://` or `https://` URL to GET: 2xx passes, 429 warns, anything else fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// `host:port` to open a TCP connection to: connected passes, anything else fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
    /// Program and arguments to run, not through a shell: exit 0 passes, 1 warns,
    /// anything else fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<Vec<String>>,
    /// Time between the starts of two runs; the first run is at once.
    #[serde(default = "default_interval", with = "crate::duration")]
    pub interval: Duration,
    /// Time one run may take (at most `interval`); past it the run fails (an `exec`
    /// program is killed).
    #[serde(default = "default_timeout", with = "crate::duration")]
    pub timeout: Duration,
    /// Consecutive passes before a failing (warning or critical) check passes.
    #[serde(default = "default_success_threshold")]
    pub success_threshold: u32,
    /// Consecutive non-passes before a passing check warns or fails.
    #[serde(default = "default_failure_threshold")]
    pub failure_threshold: u32,
}

fn default_weight() -> u32 {
    DEFAULT_WEIGHT
}
fn default_interval() -> Duration {
    DEFAULT_CHECK_INTERVAL
}
fn default_timeout() -> Duration {
    DEFAULT_CHECK_TIMEOUT
}
fn default_success_threshold() -> u32 {
    DEFAULT_SUCCESS_THRESHOLD
}
fn default_failure_threshold() -> u32 {
    DEFAULT_FAILURE_THRESHOLD
}

/// What a check probes, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckTarget {
    /// GET this URL.
    Http(HttpUrl),
    /// Connect to this host (name or IP address, without brackets) and port.
    Tcp {
        /// Host name or IP address.
        host: String,
        /// Port, 1 to 65535.
        port: u16,
    },
    /// Run this program with these arguments.
    Exec(Vec<String>),
}

impl ServiceSpec {
    /// A service on `port` with the defaults and no checks.
    pub fn new(name: &str, port: u16) -> ServiceSpec {
        ServiceSpec {
            name: name.to_owned(),
            port,
            weight: DEFAULT_WEIGHT,
            mode: ServiceMode::Balanced,
            priority: 0,
            failback: true,
            tags: BTreeMap::new(),
            checks: Vec::new(),
            failover: None,
        }
    }

    /// Checks every key, naming the first that cannot work, the field relative to the
    /// entry: `port`, `checks[1].timeout`, `failover.retry`.
    pub fn validate(&self) -> Result<(), FieldError> {
        let err = |field: &str, reason: String| Err(FieldError::new(field, reason));
        if let Err(reason) = check_name(&self.name) {
            return err("name", reason);
        }
        if self.port == 0 {
            return err("port", "must be a number from 1 to 65535".into());
        }
        if !(1..=MAX_WEIGHT).contains(&self.weight) {
            return err("weight", format!("must be from 1 to {MAX_WEIGHT}"));
        }
        if self.mode == ServiceMode::Balanced && self.priority != 0 {
            return err(
                "priority",
                "only used with mode = \"primary\"; drop it or set the mode".into(),
            );
        }
        if self.mode == ServiceMode::Balanced && !self.failback {
            return err(
                "failback",
                "only used with mode = \"primary\"; drop it or set the mode".into(),
            );
        }
        if let Err(e) = Tags::from_pairs(self.tags.clone()) {
            return err("tags", e.to_string());
        }
        for (index, check) in self.checks.iter().enumerate() {
            check
                .validate()
                .map_err(|e| e.under(&format!("checks[{index}]")))?;
        }
        if let Some(rule) = &self.failover {
            rule.validate().map_err(|e| e.under("failover"))?;
        }
        Ok(())
    }
}

fn default_failback() -> bool {
    true
}

/// Checks a service name: `[A-Za-z0-9_-]`, 1 to [`MAX_SERVICE_NAME_LEN`] bytes.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_SERVICE_NAME_LEN {
        return Err(format!("must be 1 to {MAX_SERVICE_NAME_LEN} bytes"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "{name:?}: {c:?} is not allowed; use letters, digits, '-' and '_' \
             (the name becomes a DNS label)"
        ));
    }
    Ok(())
}

impl CheckSpec {
    /// An HTTP check of `url` with the defaults.
    pub fn http(url: &str) -> CheckSpec {
        CheckSpec {
            http: Some(url.to_owned()),
            ..CheckSpec::empty()
        }
    }

    /// A TCP check of `host:port` with the defaults.
    pub fn tcp(addr: &str) -> CheckSpec {
        CheckSpec {
            tcp: Some(addr.to_owned()),
            ..CheckSpec::empty()
        }
    }

    /// An exec check of `argv` with the defaults.
    pub fn exec(argv: &[&str]) -> CheckSpec {
        CheckSpec {
            exec: Some(argv.iter().map(|a| (*a).to_owned()).collect()),
            ..CheckSpec::empty()
        }
    }

    fn empty() -> CheckSpec {
        CheckSpec {
            http: None,
            tcp: None,
            exec: None,
            interval: DEFAULT_CHECK_INTERVAL,
            timeout: DEFAULT_CHECK_TIMEOUT,
            success_threshold: DEFAULT_SUCCESS_THRESHOLD,
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
        }
    }

    /// What the check probes: exactly one of `http`, `tcp` and `exec` must be set, and
    /// be well-formed (the error names the key, or none for the check as a whole).
    pub fn target(&self) -> Result<CheckTarget, FieldError> {
        match (&self.http, &self.tcp, &self.exec) {
            (None, None, None) => Err(FieldError::new("", "set one of http, tcp or exec")),
            (Some(url), None, None) => HttpUrl::parse(url)
                .map(CheckTarget::Http)
                .map_err(|e| FieldError::new("http", e)),
            (None, Some(addr), None) => {
                let (host, port) = parse_host_port(addr).map_err(|e| FieldError::new("tcp", e))?;
                Ok(CheckTarget::Tcp { host, port })
            }
            (None, None, Some(argv)) => {
                if argv.first().is_none_or(String::is_empty) {
                    return Err(FieldError::new(
                        "exec",
                        "must start with a program to run, e.g. [\"/usr/local/bin/check\", \"--quick\"]",
                    ));
                }
                if argv.iter().any(|a| a.contains('\0')) {
                    return Err(FieldError::new("exec", "must not contain NUL bytes"));
                }
                Ok(CheckTarget::Exec(argv.clone()))
            }
            // Name the second key set, the one to drop.
            (Some(_), Some(_), _) => {
                Err(FieldError::new("tcp", "set only one of http, tcp or exec"))
            }
            (_, _, Some(_)) => Err(FieldError::new("exec", "set only one of http, tcp or exec")),
        }
    }

    /// What the check probes, for people: `http http://…`, `tcp host:port`,
    /// `exec /bin/check arg` (as configured).
    pub fn describe(&self) -> String {
        match (&self.http, &self.tcp, &self.exec) {
            (Some(url), _, _) => format!("http {url}"),
            (_, Some(addr), _) => format!("tcp {addr}"),
            (_, _, Some(argv)) => format!("exec {}", argv.join(" ")),
            _ => "none".into(),
        }
    }

    /// Checks every key, naming the key relative to the check (empty for the check as a
    /// whole), so the caller can put it under `checks[INDEX]`.
    fn validate(&self) -> Result<(), FieldError> {
        let err = |key: &str, reason: String| Err(FieldError::new(key, reason));
        self.target()?;
        if !(MIN_CHECK_INTERVAL..=MAX_CHECK_INTERVAL).contains(&self.interval) {
            return err(
                "interval",
                format!(
                    "must be from {} to {}",
                    format_duration(MIN_CHECK_INTERVAL),
                    format_duration(MAX_CHECK_INTERVAL)
                ),
            );
        }
        if self.timeout.is_zero() || self.timeout > self.interval {
            return err(
                "timeout",
                format!(
                    "must be more than 0ms and at most the interval ({})",
                    format_duration(self.interval)
                ),
            );
        }
        for (key, value) in [
            ("success_threshold", self.success_threshold),
            ("failure_threshold", self.failure_threshold),
        ] {
            if !(1..=MAX_THRESHOLD).contains(&value) {
                return err(key, format!("must be from 1 to {MAX_THRESHOLD}"));
            }
        }
        Ok(())
    }
}

/// Splits `host:port` (`[v6]:port` for IPv6 literals), checking both parts.
fn parse_host_port(text: &str) -> Result<(String, u16), String> {
    let bad = |why: &str| format!("{text:?}: {why}");
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| bad("expected host:port"))?;
    let host = match host.strip_prefix('[') {
        Some(v6) => v6
            .strip_suffix(']')
            .ok_or_else(|| bad("unclosed [ in the host"))?,
        None if host.contains(':') => return Err(bad("put an IPv6 address in brackets")),
        None => host,
    };
    if host.is_empty() {
        return Err(bad("the host is empty"));
    }
    if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(
            "the host must not contain spaces or control characters",
        ));
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?;
    Ok((host.to_owned(), port))
}

/// Checks every `[[services]]` entry, then that names are unique; errors name the
/// field as `services[INDEX].KEY`.
pub fn validate_services(services: &[ServiceSpec]) -> Result<(), FieldError> {
    let mut names = BTreeMap::new();
    for (index, service) in services.iter().enumerate() {
        service
            .validate()
            .map_err(|e| e.under(&format!("services[{index}]")))?;
        if let Some(first) = names.insert(service.name.as_str(), index) {
            return Err(FieldError::new(
                format!("services[{index}].name"),
                format!(
                    "{:?} is already the name of services[{first}]",
                    service.name
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::rule::{Failback, Trigger};

    const FULL: &str = r#"
        name = "web"
        port = 8080
        weight = 5
        mode = "primary"
        priority = 2
        tags = { version = "2" }

        [[checks]]
        http = "http://127.0.0.1:8080/health"
        interval = "1s"
        timeout = "500ms"
        success_threshold = 3
        failure_threshold = 1

        [[checks]]
        tcp = "[::1]:8080"

        [[checks]]
        exec = ["/bin/check", "--quick"]

        [failover]
        trigger = "fewer-than 2"
        failback = "manual"
    "#;

    fn web() -> ServiceSpec {
        ServiceSpec {
            checks: vec![
                CheckSpec::http("http://127.0.0.1:8080/health"),
                CheckSpec::tcp("127.0.0.1:8080"),
            ],
            ..ServiceSpec::new("web", 8080)
        }
    }

    #[test]
    fn a_full_service_parses_and_round_trips_through_toml_and_json() {
        let spec: ServiceSpec = toml::from_str(FULL).unwrap();
        spec.validate().unwrap();
        assert_eq!((spec.name.as_str(), spec.port), ("web", 8080));
        assert_eq!(
            (spec.weight, spec.mode, spec.priority),
            (5, ServiceMode::Primary, 2)
        );
        assert_eq!(spec.tags["version"], "2");
        let [http, tcp, exec] = [&spec.checks[0], &spec.checks[1], &spec.checks[2]];
        assert_eq!(http.interval, Duration::from_secs(1));
        assert_eq!(http.timeout, Duration::from_millis(500));
        assert_eq!((http.success_threshold, http.failure_threshold), (3, 1));
        assert!(matches!(http.target(), Ok(CheckTarget::Http(u)) if u.port == 8080));
        assert_eq!(
            tcp.target(),
            Ok(CheckTarget::Tcp {
                host: "::1".into(),
                port: 8080
            })
        );
        assert_eq!(exec.describe(), "exec /bin/check --quick");
        let rule = spec.failover.as_ref().unwrap();
        assert_eq!(rule.trigger, Trigger { fewer_than: 2 });
        assert_eq!(rule.failback, Failback::Manual);
        let again: ServiceSpec = toml::from_str(&toml::to_string(&spec).unwrap()).unwrap();
        assert_eq!(again, spec);
        let json = serde_json::to_string(&spec).unwrap();
        let again: ServiceSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(again, spec);
    }

    #[test]
    fn a_minimal_service_takes_every_default() {
        let spec: ServiceSpec = serde_json::from_str(
            r#"{"name": "db", "port": 5432, "checks": [{"tcp": "localhost:5432"}]}"#,
        )
        .unwrap();
        spec.validate().unwrap();
        assert_eq!(
            spec,
            ServiceSpec {
                checks: vec![CheckSpec::tcp("localhost:5432")],
                ..ServiceSpec::new("db", 5432)
            }
        );
        let check = &spec.checks[0];
        assert_eq!(check.interval, DEFAULT_CHECK_INTERVAL);
        assert_eq!(check.timeout, DEFAULT_CHECK_TIMEOUT);
        assert_eq!(
            (check.success_threshold, check.failure_threshold),
            (DEFAULT_SUCCESS_THRESHOLD, DEFAULT_FAILURE_THRESHOLD)
        );
        assert_eq!(spec.weight, 1);
        assert_eq!(spec.mode, ServiceMode::Balanced);
        assert!(spec.failover.is_none());
        // The JSON form of a default service leaves out what is empty.
        let json = serde_json::to_value(ServiceSpec::new("db", 5432)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"name": "db", "port": 5432, "weight": 1, "mode": "balanced", "priority": 0, "failback": true})
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_by_serde() {
        for (text, expected) in [
            ("name = \"a\"\nport = 1\nwieght = 2", "wieght"),
            (
                "name = \"a\"\nport = 1\n[[checks]]\nhttp = \"http://h/\"\nintervl = \"1s\"",
                "intervl",
            ),
            (
                "name = \"a\"\nport = 1\n[[checks]]\nhttp = \"http://h/\"\ninterval = \"1\"",
                "expected a number and a unit",
            ),
            ("name = \"a\"\nport = 1\nmode = \"active\"", "active"),
            ("name = \"a\"\nport = 70000", "70000"),
            (
                "name = \"a\"\nport = 1\n[failover]\naction = \"closest\"",
                "expected \"nearest\"",
            ),
            (
                "name = \"a\"\nport = 1\n[failover]\ntriger = \"none-passing\"",
                "triger",
            ),
        ] {
            let err = toml::from_str::<ServiceSpec>(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn every_bad_value_names_its_field() {
        let with = |f: fn(&mut ServiceSpec)| {
            let mut s = web();
            f(&mut s);
            s
        };
        let cases: Vec<(ServiceSpec, &str, &str)> = vec![
            (with(|s| s.name.clear()), "name", "must be 1 to 63 bytes"),
            (
                with(|s| s.name = "a".repeat(64)),
                "name",
                "must be 1 to 63 bytes",
            ),
            (
                with(|s| s.name = "web.eu".into()),
                "name",
                "'.' is not allowed",
            ),
            (
                with(|s| s.name = "wéb".into()),
                "name",
                "'é' is not allowed",
            ),
            (with(|s| s.port = 0), "port", "from 1 to 65535"),
            (with(|s| s.weight = 0), "weight", "must be from 1 to 1000"),
            (
                with(|s| s.weight = 1001),
                "weight",
                "must be from 1 to 1000",
            ),
            (
                with(|s| s.priority = 1),
                "priority",
                "only used with mode = \"primary\"",
            ),
            (
                with(|s| {
                    s.tags.insert(String::new(), "v".into());
                }),
                "tags",
                "a tag key is empty",
            ),
            (
                with(|s| {
                    s.tags.insert("k".into(), "v".repeat(600));
                }),
                "tags",
                "more than the limit",
            ),
            (
                with(|s| s.checks[1].tcp = None),
                "checks[1]",
                "set one of http, tcp or exec",
            ),
            (
                with(|s| s.checks[1].http = Some("http://h/".into())),
                "checks[1].tcp",
                "set only one",
            ),
            (
                with(|s| s.checks[0].exec = Some(vec!["x".into()])),
                "checks[0].exec",
                "set only one",
            ),
            (
                with(|s| s.checks[0].http = Some("ftp://h/".into())),
                "checks[0].http",
                "must start with http://",
            ),
            (
                with(|s| s.checks[0].http = Some("http://u:p@h/".into())),
                "checks[0].http",
                "user info",
            ),
            (
                with(|s| s.checks[1].tcp = Some("h".into())),
                "checks[1].tcp",
                "expected host:port",
            ),
            (
                with(|s| s.checks[1].tcp = Some(":80".into())),
                "checks[1].tcp",
                "the host is empty",
            ),
            (
                with(|s| s.checks[1].tcp = Some("h:0".into())),
                "checks[1].tcp",
                "the port must be",
            ),
            (
                with(|s| s.checks[1].tcp = Some("::1:80".into())),
                "checks[1].tcp",
                "in brackets",
            ),
            (
                with(|s| s.checks[1].tcp = Some("[::1:80".into())),
                "checks[1].tcp",
                "unclosed [",
            ),
            (
                with(|s| s.checks[1] = CheckSpec::exec(&[])),
                "checks[1].exec",
                "must start with a program",
            ),
            (
                with(|s| s.checks[1] = CheckSpec::exec(&["", "x"])),
                "checks[1].exec",
                "must start with a program",
            ),
            (
                with(|s| s.checks[1] = CheckSpec::exec(&["/bin/x", "a\0b"])),
                "checks[1].exec",
                "NUL",
            ),
            (
                with(|s| s.checks[1].interval = Duration::from_millis(99)),
                "checks[1].interval",
                "must be from 100ms to 1h",
            ),
            (
                with(|s| s.checks[1].interval = Duration::from_secs(3601)),
                "checks[1].interval",
                "must be from 100ms to 1h",
            ),
            (
                with(|s| s.checks[1].timeout = Duration::ZERO),
                "checks[1].timeout",
                "must be more than 0ms",
            ),
            (
                with(|s| s.checks[1].timeout = Duration::from_secs(11)),
                "checks[1].timeout",
                "at most the interval (10s)",
            ),
            (
                with(|s| s.checks[0].success_threshold = 0),
                "checks[0].success_threshold",
                "from 1 to 100",
            ),
            (
                with(|s| s.checks[0].failure_threshold = 101),
                "checks[0].failure_threshold",
                "from 1 to 100",
            ),
            (
                with(|s| {
                    s.failover = Some(FailoverRule {
                        retry: Duration::ZERO,
                        ..FailoverRule::default()
                    })
                }),
                "failover.retry",
                "more than 0ms",
            ),
        ];
        for (spec, field, reason) in cases {
            match spec.validate() {
                Err(FieldError {
                    field: f,
                    reason: r,
                }) => {
                    assert_eq!(f, field, "{r}");
                    assert!(r.contains(reason), "{field}: expected {reason:?} in {r:?}");
                }
                Ok(()) => panic!("{field}: expected {reason:?}, got Ok for {spec:?}"),
            }
        }
    }

    #[test]
    fn edge_values_are_accepted() {
        let mut s = web();
        s.name = "a".repeat(63);
        s.weight = MAX_WEIGHT;
        s.mode = ServiceMode::Primary;
        s.priority = u32::MAX;
        s.checks[0].interval = MIN_CHECK_INTERVAL;
        s.checks[0].timeout = MIN_CHECK_INTERVAL;
        s.checks[0].success_threshold = MAX_THRESHOLD;
        s.checks[1].tcp = Some("[::1]:65535".into());
        s.checks.push(CheckSpec::http("https://example.com"));
        s.validate().unwrap();
        ServiceSpec::new("A-b_9", 1).validate().unwrap();
    }

    #[test]
    fn service_lists_name_the_entry_and_refuse_duplicate_names() {
        let mut bad = web();
        bad.checks[1].timeout = Duration::from_secs(60);
        let err = validate_services(&[ServiceSpec::new("a", 1), bad]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid config field `services[1].checks[1].timeout`: must be more than 0ms and at most the interval (10s)"
        );
        let err = validate_services(&[web(), ServiceSpec::new("db", 1), web()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid config field `services[2].name`: \"web\" is already the name of services[0]"
        );
        validate_services(&[web(), ServiceSpec::new("db", 1)]).unwrap();
    }
}
