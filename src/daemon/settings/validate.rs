//! [`AgentConfig::validate`]: every rule a deployment config must meet, each error naming
//! the field as written in the config file.
//!
//! Order matters only for which error comes first: the TLS identity (without one the
//! agent refuses to start whatever else is set), then dev mode's loopback rule, then the
//! fields one by one.

use std::net::IpAddr;

use crate::agent::MAX_CLUSTER_NAME_LEN;
use crate::agent::seeds::Seed;
use crate::daemon::settings::{AgentConfig, Listen, MAX_DNS_TTL, SettingsError, invalid};
use crate::proto::SwimConfig;
use crate::wire::{MAX_NAME_LEN, has_control_char};

/// Most `dns_rate_limit`: past this one source could take the whole server anyway.
const MAX_DNS_RATE_LIMIT: u32 = 100_000;

/// Most `api_max_connections`: beyond the descriptors any host gives one process.
const MAX_API_CONNECTIONS: usize = 65_536;

impl AgentConfig {
    /// Checks every field, naming the first that cannot work. Key and certificate files
    /// are read later, by [`AgentConfig::mesh_config`].
    pub fn validate(&self) -> Result<(), SettingsError> {
        // The identity first: without one nothing else matters, and the remedy is news.
        self.validate_tls()?;
        if self.dev {
            self.validate_dev()?;
        }
        self.validate_api()?;
        // TOML (and `--check-config`) has no form for a path that is not UTF-8.
        for (field, path) in [
            ("data_dir", &self.data_dir),
            ("cluster_key_file", &self.cluster_key_file),
            ("tls_ca", &self.tls_ca),
            ("tls_cert", &self.tls_cert),
            ("tls_key", &self.tls_key),
        ] {
            if let Some(path) = path.as_ref().filter(|p| p.to_str().is_none()) {
                return Err(invalid(
                    field,
                    format!("{}: must be valid UTF-8", path.display()),
                ));
            }
        }
        let name = self.node_name();
        if name.is_empty() {
            return Err(invalid(
                "name",
                "must be set: no host name found in /etc/hostname or HOSTNAME",
            ));
        }
        for (field, value) in [
            ("name", name),
            ("region", &self.region),
            ("zone", &self.zone),
        ] {
            if value.len() > MAX_NAME_LEN {
                return Err(invalid(
                    field,
                    format!("must be at most {MAX_NAME_LEN} bytes"),
                ));
            }
            if has_control_char(value) {
                return Err(invalid(
                    field,
                    format!("{value:?}: must not contain control characters"),
                ));
            }
        }
        self.tags()?;
        SwimConfig::preset(&self.profile)?;
        if self.cluster.is_empty() {
            return Err(invalid("cluster", "must not be empty"));
        }
        if self.cluster.len() > MAX_CLUSTER_NAME_LEN {
            return Err(invalid(
                "cluster",
                format!("must be at most {MAX_CLUSTER_NAME_LEN} bytes"),
            ));
        }
        match self.advertise {
            Some(a) if a.ip().is_unspecified() || a.port() == 0 => {
                return Err(invalid(
                    "advertise",
                    "must be a concrete address and port peers can reach",
                ));
            }
            None if self.bind.ip().is_unspecified() => {
                return Err(invalid(
                    "advertise",
                    format!(
                        "is required when bind is {} (an unspecified address); \
                         set the address peers reach this host on",
                        self.bind
                    ),
                ));
            }
            _ => {}
        }
        for seed in &self.join {
            parse_seed(seed)?;
        }
        self.validate_dns()?;
        tracing_subscriber::EnvFilter::try_new(&self.log_level)
            .map_err(|e| invalid("log_level", e.to_string()))?;
        crate::hooks::config::validate_hooks(&self.hooks)?;
        crate::routing::spec::validate_services(&self.services)?;
        Ok(())
    }

    fn validate_tls(&self) -> Result<(), SettingsError> {
        let pki = [
            ("tls_ca", &self.tls_ca),
            ("tls_cert", &self.tls_cert),
            ("tls_key", &self.tls_key),
        ];
        let pki_set = pki.iter().filter(|(_, p)| p.is_some()).count();
        let missing = pki.iter().find(|(_, p)| p.is_none());
        if let (Some((missing, _)), true) = (missing, pki_set > 0) {
            return Err(invalid(
                missing,
                "tls_ca, tls_cert and tls_key go together: set all three or none",
            ));
        }
        let has_key = self.cluster_key_file.is_some();
        if has_key && pki_set == 3 {
            return Err(invalid(
                "cluster_key_file",
                "set either a cluster key file or tls_ca/tls_cert/tls_key, not both",
            ));
        }
        if self.dev && (has_key || pki_set == 3) {
            return Err(invalid(
                "dev",
                "dev mode uses the fixed development key; drop cluster_key_file and tls_*",
            ));
        }
        if pki_set == 3 && self.node_key_file.is_some() {
            return Err(invalid(
                "node_key_file",
                "with tls_cert the node key is the certificate's key; drop node_key_file",
            ));
        }
        if !self.dev && !has_key && pki_set == 0 {
            return Err(SettingsError::NoIdentity);
        }
        Ok(())
    }

    /// `dns_addr` must not take the API's TCP port; `dns_ttl` is whole seconds, bounded;
    /// `dns_rate_limit` is bounded.
    fn validate_dns(&self) -> Result<(), SettingsError> {
        if let Some(dns) = self.dns_listen().map(|l| l.addr) {
            let api = self.api_listen().addr;
            let same_ip =
                dns.ip() == api.ip() || dns.ip().is_unspecified() || api.ip().is_unspecified();
            if dns.port() != 0 && dns.port() == api.port() && same_ip {
                return Err(invalid(
                    "dns_addr",
                    format!("{dns} takes api_addr's port ({api}): both listen on TCP"),
                ));
            }
        }
        if self.dns_ttl.subsec_nanos() != 0 {
            return Err(invalid(
                "dns_ttl",
                "must be whole seconds (DNS TTLs are seconds), e.g. \"5s\"",
            ));
        }
        if self.dns_ttl > MAX_DNS_TTL {
            return Err(invalid(
                "dns_ttl",
                format!(
                    "must be at most {}: a cached answer would hide a failover that long",
                    crate::duration::format_duration(MAX_DNS_TTL)
                ),
            ));
        }
        if self.dns_rate_limit > MAX_DNS_RATE_LIMIT {
            return Err(invalid(
                "dns_rate_limit",
                format!(
                    "must be at most {MAX_DNS_RATE_LIMIT} answers a second per source, or 0 for no limit"
                ),
            ));
        }
        Ok(())
    }

    /// The API's settings: TLS files in pairs, a sane connection limit, host names that
    /// are names, and no plain or token-less API beyond loopback.
    fn validate_api(&self) -> Result<(), SettingsError> {
        for (field, path) in [
            ("api_token_file", &self.api_token_file),
            ("node_key_file", &self.node_key_file),
            ("api_tls_cert", &self.api_tls_cert),
            ("api_tls_key", &self.api_tls_key),
        ] {
            if let Some(path) = path.as_ref().filter(|p| p.to_str().is_none()) {
                return Err(invalid(
                    field,
                    format!("{}: must be valid UTF-8", path.display()),
                ));
            }
        }
        match (&self.api_tls_cert, &self.api_tls_key) {
            (Some(_), None) => {
                return Err(invalid("api_tls_key", "set it with api_tls_cert"));
            }
            (None, Some(_)) => {
                return Err(invalid("api_tls_cert", "set it with api_tls_key"));
            }
            _ => {}
        }
        if !(1..=MAX_API_CONNECTIONS).contains(&self.api_max_connections) {
            return Err(invalid(
                "api_max_connections",
                format!("must be from 1 to {MAX_API_CONNECTIONS}"),
            ));
        }
        for host in &self.api_allowed_hosts {
            let bad = host.is_empty()
                || host.len() > 253
                || !host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if bad {
                return Err(invalid(
                    "api_allowed_hosts",
                    format!(
                        "{host:?}: expected a host name without port, e.g. \"muster.internal\""
                    ),
                ));
            }
        }
        if self.api_addr == Listen::Off {
            return Err(invalid(
                "api_addr",
                "cannot be off: the API is how the CLI and health checks reach the agent",
            ));
        }
        let api_addr = self.api_listen().addr;
        if !api_addr.ip().is_loopback() {
            if self.api_tls_cert.is_none() {
                return Err(invalid(
                    "api_addr",
                    format!(
                        "{} is not a loopback address: the API then needs TLS (set \
                         api_tls_cert and api_tls_key), or bind it to 127.0.0.1",
                        api_addr
                    ),
                ));
            }
            if self.api_token_file.is_none() && self.data_dir.is_none() {
                return Err(invalid(
                    "api_addr",
                    format!(
                        "{} is not a loopback address: the API then needs a token (set \
                         data_dir, where one is generated, or api_token_file)",
                        api_addr
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Dev mode is loopback only: its key is public.
    fn validate_dev(&self) -> Result<(), SettingsError> {
        let why = "must be a loopback address in dev mode (its key is public)";
        if !self.bind.ip().is_loopback() {
            return Err(invalid("bind", why));
        }
        if self.advertise.is_some_and(|a| !a.ip().is_loopback()) {
            return Err(invalid("advertise", why));
        }
        if !self.api_listen().addr.ip().is_loopback() {
            return Err(invalid("api_addr", why));
        }
        if self
            .dns_listen()
            .is_some_and(|l| !l.addr.ip().is_loopback())
        {
            return Err(invalid("dns_addr", why));
        }
        for seed in &self.join {
            let host = parse_seed(seed)?.host();
            let loopback = match host.parse::<IpAddr>() {
                Ok(ip) => ip.is_loopback(),
                Err(_) => host.eq_ignore_ascii_case("localhost"),
            };
            if !loopback {
                return Err(invalid(
                    "join",
                    format!("{seed:?}: seeds must be loopback addresses in dev mode"),
                ));
            }
        }
        Ok(())
    }
}

/// One seed of `join`, classified ([`crate::agent::seeds`]), or the error naming it.
fn parse_seed(seed: &str) -> Result<Seed, SettingsError> {
    Seed::parse(seed).map_err(|why| invalid("join", format!("{seed:?}: {why}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::TlsSource;
    use crate::daemon::settings::tests::dev;
    use crate::field_error::FieldError;

    fn field(c: &AgentConfig) -> &'static str {
        match c.validate() {
            Err(SettingsError::Invalid(e)) => e.field,
            other => panic!("expected a named field, got {other:?}"),
        }
    }

    #[test]
    fn a_path_that_is_not_utf8_is_named_not_a_panic() {
        use std::os::unix::ffi::OsStrExt;
        let bad = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(b"\xff"));
        let c = AgentConfig {
            data_dir: Some(bad.clone()),
            ..dev()
        };
        assert_eq!(field(&c), "data_dir");
        let c = AgentConfig {
            dev: false,
            cluster_key_file: Some(bad),
            ..dev()
        };
        assert_eq!(field(&c), "cluster_key_file");
    }

    #[test]
    fn an_api_beyond_loopback_needs_tls_and_a_token() {
        let keyed = AgentConfig {
            dev: false,
            cluster_key_file: Some("/etc/muster/cluster.key".into()),
            bind: "10.0.0.5:7946".parse().unwrap(),
            api_addr: Listen::At("10.0.0.5:7947".parse().unwrap()),
            ..dev()
        };
        assert_eq!(field(&keyed), "api_addr");
        let with_tls = AgentConfig {
            api_tls_cert: Some("/etc/muster/api.crt".into()),
            api_tls_key: Some("/etc/muster/api.key".into()),
            ..keyed.clone()
        };
        // TLS, but nowhere to keep a token.
        assert_eq!(field(&with_tls), "api_addr");
        let ok = AgentConfig {
            data_dir: Some("/var/lib/muster".into()),
            ..with_tls.clone()
        };
        assert!(ok.validate().is_ok(), "{:?}", ok.validate());
        let half = AgentConfig {
            api_tls_key: None,
            ..ok.clone()
        };
        assert_eq!(field(&half), "api_tls_key");
        let hosts = AgentConfig {
            api_allowed_hosts: vec!["muster.internal:7947".into()],
            ..ok.clone()
        };
        assert_eq!(field(&hosts), "api_allowed_hosts");
        let none = AgentConfig {
            api_max_connections: 0,
            ..ok
        };
        assert_eq!(field(&none), "api_max_connections");
    }

    #[test]
    fn no_key_and_no_dev_refuses_to_start() {
        let c = AgentConfig {
            dev: false,
            ..dev()
        };
        let err = c.validate().unwrap_err();
        assert!(matches!(err, SettingsError::NoIdentity));
        assert!(err.to_string().starts_with("refusing to start"));
    }

    #[test]
    fn bad_values_are_named() {
        let any = "0.0.0.0:7946".parse().unwrap();
        let far = "10.0.0.1:7946".parse().unwrap();
        let cases: Vec<(AgentConfig, &str)> = vec![
            (
                AgentConfig {
                    name: None,
                    ..dev()
                },
                "name",
            ),
            (
                AgentConfig {
                    name: Some("x".repeat(200)),
                    ..dev()
                },
                "name",
            ),
            (
                AgentConfig {
                    name: Some("web\n1".into()),
                    ..dev()
                },
                "name",
            ),
            (
                AgentConfig {
                    zone: "eu\u{1b}[2J".into(),
                    ..dev()
                },
                "zone",
            ),
            (
                AgentConfig {
                    tags: [("role".to_owned(), "web\0".to_owned())].into(),
                    ..dev()
                },
                "tags",
            ),
            (
                AgentConfig {
                    profile: "fast".into(),
                    ..dev()
                },
                "profile",
            ),
            (
                AgentConfig {
                    cluster: String::new(),
                    ..dev()
                },
                "cluster",
            ),
            (
                AgentConfig {
                    bind: any,
                    dev: false,
                    cluster_key_file: Some("k".into()),
                    ..dev()
                },
                "advertise",
            ),
            (AgentConfig { bind: far, ..dev() }, "bind"),
            (
                AgentConfig {
                    advertise: Some(far),
                    ..dev()
                },
                "advertise",
            ),
            (
                AgentConfig {
                    api_addr: Listen::At(far),
                    ..dev()
                },
                "api_addr",
            ),
            (
                AgentConfig {
                    dns_addr: Listen::At(far),
                    ..dev()
                },
                "dns_addr",
            ),
            (
                AgentConfig {
                    api_addr: Listen::At("127.0.0.1:7947".parse().unwrap()),
                    dns_addr: Listen::At("127.0.0.1:7947".parse().unwrap()),
                    ..dev()
                },
                "dns_addr",
            ),
            (
                AgentConfig {
                    dns_ttl: std::time::Duration::from_millis(1500),
                    ..dev()
                },
                "dns_ttl",
            ),
            (
                AgentConfig {
                    dns_rate_limit: 1_000_000,
                    ..dev()
                },
                "dns_rate_limit",
            ),
            (
                AgentConfig {
                    dns_ttl: std::time::Duration::from_secs(7200),
                    ..dev()
                },
                "dns_ttl",
            ),
            (
                AgentConfig {
                    join: vec!["10.0.0.2:7946".into()],
                    ..dev()
                },
                "join",
            ),
            (
                AgentConfig {
                    join: vec!["seed".into()],
                    ..dev()
                },
                "join",
            ),
            (
                AgentConfig {
                    join: vec!["seed:0".into()],
                    ..dev()
                },
                "join",
            ),
            (
                AgentConfig {
                    log_level: "muster=loud".into(),
                    ..dev()
                },
                "log_level",
            ),
            (
                AgentConfig {
                    tags: [(String::new(), "v".into())].into(),
                    ..dev()
                },
                "tags",
            ),
            (
                AgentConfig {
                    tls_ca: Some("ca".into()),
                    ..dev()
                },
                "tls_cert",
            ),
            (
                AgentConfig {
                    cluster_key_file: Some("k".into()),
                    ..dev()
                },
                "dev",
            ),
        ];
        for (config, expected) in cases {
            assert_eq!(field(&config), expected, "{config:?}");
        }
    }

    #[test]
    fn half_a_pki_triple_is_an_error_and_an_unreadable_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let [ca, cert, key] = ["ca.pem", "cert.pem", "key.pem"].map(|f| dir.path().join(f));
        let c = AgentConfig {
            dev: false,
            tls_ca: Some(ca.clone()),
            tls_cert: Some(cert.clone()),
            ..dev()
        };
        assert_eq!(field(&c), "tls_key");
        let c = AgentConfig {
            tls_key: Some(key.clone()),
            ..c
        };
        c.validate().unwrap();
        std::fs::write(&ca, "").unwrap();
        std::fs::write(&key, "").unwrap();
        match c.tls_source() {
            Err(SettingsError::Invalid(e)) => assert_eq!(e.field, "tls_cert"),
            other => panic!("expected tls_cert to be named, got {other:?}"),
        }
        // Readable is not enough: empty files are not PEM.
        std::fs::write(&cert, "").unwrap();
        match c.tls_source() {
            Err(SettingsError::Invalid(e)) => assert_eq!(e.field, "tls_ca"),
            other => panic!("expected tls_ca to be named, got {other:?}"),
        }
        let made = super::super::tests::self_signed("a");
        std::fs::write(&ca, made.cert.pem()).unwrap();
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        assert!(matches!(c.tls_source().unwrap(), TlsSource::Pki { .. }));
    }

    #[test]
    fn services_parse_validate_and_round_trip_in_the_agent_config() {
        use std::time::Duration;

        use crate::routing::rule::FailoverRule;
        use crate::routing::spec::ServiceMode;
        let text = r#"
            dev = true
            name = "a"
            bind = "127.0.0.1:7000"

            [[services]]
            name = "web"
            port = 8080
            tags = { version = "2" }

            [[services.checks]]
            http = "http://127.0.0.1:8080/health"
            interval = "1s"
            timeout = "500ms"

            [[services.checks]]
            exec = ["/bin/check", "--quick"]

            [services.failover]

            [[services]]
            name = "db"
            port = 5432
            weight = 3
            mode = "primary"
            priority = 1
        "#;
        let c = AgentConfig::from_toml(text, std::path::Path::new("a.toml")).unwrap();
        c.validate().unwrap();
        let [web, db] = [&c.services[0], &c.services[1]];
        assert_eq!((web.name.as_str(), web.port, web.weight), ("web", 8080, 1));
        assert_eq!(web.checks.len(), 2);
        assert_eq!(web.checks[0].timeout, Duration::from_millis(500));
        assert_eq!(web.checks[1].interval, Duration::from_secs(10));
        assert_eq!(web.failover, Some(FailoverRule::default()));
        assert_eq!(
            (db.weight, db.mode, db.priority),
            (3, ServiceMode::Primary, 1)
        );
        assert!(db.checks.is_empty() && db.failover.is_none());
        let again = AgentConfig::from_toml(&c.to_toml(), std::path::Path::new("b.toml")).unwrap();
        assert_eq!(again, c);
        assert!(AgentConfig::default().to_toml().find("services").is_none());
    }

    #[test]
    fn a_bad_service_is_named_by_its_entry_and_key() {
        let text = "dev = true\n[[services]]\nname = \"web\"\nport = 80\n[[services.checks]]\ntcp = \"h:80\"\ntimout = \"1s\"\n";
        let err = AgentConfig::from_toml(text, std::path::Path::new("a.toml")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("line 7") && text.contains("timout"), "{text}");
        let mut web = crate::routing::spec::ServiceSpec::new("web", 80);
        web.checks
            .push(crate::routing::spec::CheckSpec::tcp("127.0.0.1:80"));
        web.checks[0].timeout = std::time::Duration::from_secs(11);
        let c = AgentConfig {
            services: vec![crate::routing::spec::ServiceSpec::new("db", 1), web],
            ..dev()
        };
        match c.validate() {
            Err(SettingsError::InvalidEntry(FieldError { field, reason })) => {
                assert_eq!(field, "services[1].checks[0].timeout");
                assert!(reason.contains("at most the interval"), "{reason}");
            }
            other => panic!("expected the entry to be named, got {other:?}"),
        }
    }
}
