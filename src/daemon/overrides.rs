//! The merge of an [`AgentConfig`]'s sources: the file (or the defaults) < the
//! environment ([`Environment`], `MUSTER_*`) < flags ([`Overrides`]), then the host name
//! for a name nobody set, then `validate`. Plain data in, so tests need no clap and no
//! process environment.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::daemon::settings::Listen;
use crate::daemon::settings::{AgentConfig, LogFormat, SettingsError};
use crate::proto::ConfigError;

/// The process environment as the merge sees it: the `MUSTER_*` variables and the host
/// name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// Variables by name (only `MUSTER_*` ones are read).
    pub vars: BTreeMap<String, String>,
    /// The host name, the default node name.
    pub hostname: Option<String>,
}

impl Environment {
    /// This process's environment; the host name from `/etc/hostname`, else `HOSTNAME`.
    pub fn from_process() -> Environment {
        let vars = std::env::vars()
            .filter(|(k, _)| k.starts_with("MUSTER_"))
            .collect();
        let hostname = std::fs::read_to_string("/etc/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty());
        Environment { vars, hostname }
    }

    fn get(&self, var: &str) -> Option<&str> {
        self.vars
            .get(var)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Values given as flags: each overrides the file and the environment when set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--name`.
    pub name: Option<String>,
    /// `--bind`.
    pub bind: Option<SocketAddr>,
    /// `--advertise`.
    pub advertise: Option<SocketAddr>,
    /// `--join`, already split at commas; non-empty replaces the file's seeds.
    pub join: Vec<String>,
    /// `--region`.
    pub region: Option<String>,
    /// `--zone`.
    pub zone: Option<String>,
    /// `--tag k=v`, added to (and overriding keys of) the file's tags.
    pub tags: Vec<(String, String)>,
    /// `--profile`.
    pub profile: Option<String>,
    /// `--cluster`.
    pub cluster: Option<String>,
    /// `--cluster-key`.
    pub cluster_key_file: Option<PathBuf>,
    /// `--tls-ca`.
    pub tls_ca: Option<PathBuf>,
    /// `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub tls_key: Option<PathBuf>,
    /// `--dev` (a flag can only turn it on).
    pub dev: bool,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--api-addr`.
    pub api_addr: Option<SocketAddr>,
    /// `--api-token-file`.
    pub api_token_file: Option<PathBuf>,
    /// `--dns-addr`: an address, or [`Listen::Off`] for `--dns-addr off`.
    pub dns_addr: Option<Listen>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
    /// `--log-level`.
    pub log_level: Option<String>,
}

/// Splits `k=v`, for `--tag`.
pub fn parse_tag(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected key=value, found {text:?}")),
    }
}

/// Splits a comma-separated seed list, dropping empty entries and spaces.
pub fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Loads the effective config: `file` (or the defaults), then `env`, then `flags`, then
/// the host name as the default name, and in dev mode a bind to "any address" narrowed
/// to loopback (dev mode serves loopback only); validated.
pub fn load(
    file: Option<&Path>,
    env: &Environment,
    flags: Overrides,
) -> Result<AgentConfig, SettingsError> {
    let files: Vec<PathBuf> = file.map(Path::to_owned).into_iter().collect();
    load_files(&files, env, flags)
}

/// [`load`] from several files, merged in order ([`AgentConfig::from_files`]).
pub fn load_files(
    files: &[PathBuf],
    env: &Environment,
    flags: Overrides,
) -> Result<AgentConfig, SettingsError> {
    let mut config = AgentConfig::from_files(files)?;
    apply_env(&mut config, env)?;
    apply_flags(&mut config, flags);
    if config.name.is_none() {
        config.name = env.hostname.clone();
    }
    if config.dev && config.bind.ip().is_unspecified() {
        config.bind.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    config.validate()?;
    Ok(config)
}

/// How a setting's environment variable is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EnvKind {
    /// As text (names, addresses, paths, durations, `"off"`).
    Text,
    /// `true` or `false`.
    Bool,
    /// A whole number.
    Integer,
    /// Comma-separated text (`join`, `api_allowed_hosts`).
    List,
    /// Comma-separated `key=value` pairs (`tags`).
    Pairs,
}

/// Every setting that has an environment variable, `MUSTER_` and its key in capitals:
/// all but the tables (`services`, `hooks`), which only a file can hold.
const ENV_SETTINGS: &[(&str, EnvKind)] = &[
    ("name", EnvKind::Text),
    ("bind", EnvKind::Text),
    ("advertise", EnvKind::Text),
    ("join", EnvKind::List),
    ("region", EnvKind::Text),
    ("zone", EnvKind::Text),
    ("profile", EnvKind::Text),
    ("cluster", EnvKind::Text),
    ("api_addr", EnvKind::Text),
    ("api_token_file", EnvKind::Text),
    ("node_key_file", EnvKind::Text),
    ("api_read_token", EnvKind::Bool),
    ("api_allowed_hosts", EnvKind::List),
    ("api_allow_exec_checks", EnvKind::Bool),
    ("api_allow_remote_checks", EnvKind::Bool),
    ("api_tls_cert", EnvKind::Text),
    ("api_tls_key", EnvKind::Text),
    ("api_max_connections", EnvKind::Integer),
    ("dns_addr", EnvKind::Text),
    ("dns_ttl", EnvKind::Text),
    ("dns_rate_limit", EnvKind::Integer),
    ("max_members", EnvKind::Integer),
    ("https_ca_file", EnvKind::Text),
    ("data_dir", EnvKind::Text),
    ("log_format", EnvKind::Text),
    ("log_level", EnvKind::Text),
    ("cluster_key_file", EnvKind::Text),
    ("tls_ca", EnvKind::Text),
    ("tls_cert", EnvKind::Text),
    ("tls_key", EnvKind::Text),
    ("dev", EnvKind::Bool),
    ("tags", EnvKind::Pairs),
];

/// `MUSTER_*` variables that are not settings but mean something to `muster`: the
/// CLI's (`--config`, `--token`), the build's (`MUSTER_COMMIT`, for `--version`; cargo
/// also sets it for `cargo run`), and the one a debug build's tests use.
const OTHER_VARS: &[&str] = &[
    "MUSTER_CONFIG",
    "MUSTER_API_TOKEN",
    "MUSTER_COMMIT",
    "MUSTER_TEST_CRASH_DRIVER",
];

/// The environment variable of setting `field`.
pub fn env_var(field: &str) -> String {
    format!("MUSTER_{}", field.to_ascii_uppercase())
}

/// The `MUSTER_*` variables in `env` that no setting and no command reads (a typo, or
/// a setting that does not exist): the agent warns about each.
pub fn unknown_vars(env: &Environment) -> Vec<String> {
    env.vars
        .keys()
        .filter(|var| {
            !OTHER_VARS.contains(&var.as_str())
                && !ENV_SETTINGS
                    .iter()
                    .any(|(field, _)| env_var(field) == **var)
        })
        .cloned()
        .collect()
}

/// Applies the `MUSTER_*` variables, one per setting ([`ENV_SETTINGS`]); a value that
/// does not parse names its field and its variable.
pub fn apply_env(config: &mut AgentConfig, env: &Environment) -> Result<(), SettingsError> {
    for &(field, kind) in ENV_SETTINGS {
        let var = env_var(field);
        let Some(text) = env.get(&var) else {
            continue;
        };
        let bad = |reason: String| {
            SettingsError::Invalid(ConfigError {
                field,
                reason: format!("{var}={text:?}: {reason}"),
            })
        };
        let value = match kind {
            EnvKind::Text => toml::Value::String(text.to_owned()),
            EnvKind::Bool => match text {
                "true" => toml::Value::Boolean(true),
                "false" => toml::Value::Boolean(false),
                _ => return Err(bad("expected true or false".into())),
            },
            EnvKind::Integer => text
                .parse::<i64>()
                .map(toml::Value::Integer)
                .map_err(|e| bad(e.to_string()))?,
            EnvKind::List => toml::Value::Array(
                split_list(text)
                    .into_iter()
                    .map(toml::Value::String)
                    .collect(),
            ),
            EnvKind::Pairs => {
                let mut table = toml::Table::new();
                for pair in split_list(text) {
                    let (k, v) = parse_tag(&pair).map_err(bad)?;
                    table.insert(k, toml::Value::String(v));
                }
                toml::Value::Table(table)
            }
        };
        // Through the file's own parser, so a variable means what the key means in a
        // file (`dns_addr = "off"`, `dns_ttl = "10s"`), and bounds are checked the same.
        let mut table = toml::Table::try_from(&*config).map_err(|e| bad(e.to_string()))?;
        table.insert(field.to_owned(), value);
        *config = AgentConfig::deserialize(table).map_err(|e| bad(e.message().to_owned()))?;
    }
    Ok(())
}

/// Applies flags over everything else.
pub fn apply_flags(config: &mut AgentConfig, flags: Overrides) {
    fn set<T>(slot: &mut T, value: Option<T>) {
        if let Some(v) = value {
            *slot = v;
        }
    }
    let Overrides {
        name,
        bind,
        advertise,
        join,
        region,
        zone,
        tags,
        profile,
        cluster,
        cluster_key_file,
        tls_ca,
        tls_cert,
        tls_key,
        dev,
        data_dir,
        api_addr,
        api_token_file,
        dns_addr,
        log_format,
        log_level,
    } = flags;
    set(&mut config.name, name.map(Some));
    set(&mut config.bind, bind);
    set(&mut config.advertise, advertise.map(Some));
    if !join.is_empty() {
        config.join = join;
    }
    set(&mut config.region, region);
    set(&mut config.zone, zone);
    config.tags.extend(tags);
    set(&mut config.profile, profile);
    set(&mut config.cluster, cluster);
    set(&mut config.cluster_key_file, cluster_key_file.map(Some));
    set(&mut config.tls_ca, tls_ca.map(Some));
    set(&mut config.tls_cert, tls_cert.map(Some));
    set(&mut config.tls_key, tls_key.map(Some));
    config.dev |= dev;
    set(&mut config.data_dir, data_dir.map(Some));
    set(&mut config.api_addr, api_addr.map(Listen::At));
    set(&mut config.api_token_file, api_token_file.map(Some));
    set(&mut config.dns_addr, dns_addr);
    set(&mut config.log_format, log_format);
    set(&mut config.log_level, log_level);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_mode_narrows_the_default_bind_to_loopback() {
        let flags = Overrides {
            dev: true,
            name: Some("a".into()),
            ..Overrides::default()
        };
        let c = load(None, &env(&[]), flags).unwrap();
        assert_eq!(c.bind, "127.0.0.1:7946".parse().unwrap());
    }

    fn env(pairs: &[(&str, &str)]) -> Environment {
        Environment {
            vars: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            hostname: Some("host-1".into()),
        }
    }

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("agent.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn flags_override_the_environment_which_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "dev = true\nbind = \"127.0.0.1:1000\"\nregion = \"file\"\nzone = \"file\"\n\
             join = [\"127.0.0.1:1\"]\n[tags]\nrole = \"file\"\nkeep = \"yes\"\n",
        );
        let env = env(&[
            ("MUSTER_REGION", "env"),
            ("MUSTER_ZONE", "env"),
            ("MUSTER_JOIN", "127.0.0.1:2, 127.0.0.1:3"),
            ("MUSTER_PROFILE", "local"),
        ]);
        let flags = Overrides {
            zone: Some("flag".into()),
            tags: vec![("role".into(), "flag".into())],
            ..Overrides::default()
        };
        let c = load(Some(&file), &env, flags).unwrap();
        assert_eq!(c.bind, "127.0.0.1:1000".parse().unwrap());
        assert_eq!(c.region, "env");
        assert_eq!(c.zone, "flag");
        assert_eq!(c.join, ["127.0.0.1:2", "127.0.0.1:3"]);
        assert_eq!(c.profile, "local");
        assert_eq!(c.tags["role"], "flag");
        assert_eq!(c.tags["keep"], "yes");
        assert_eq!(
            c.name.as_deref(),
            Some("host-1"),
            "the host name is the default"
        );
        let flags = Overrides {
            join: vec!["127.0.0.1:4".into()],
            name: Some("flagged".into()),
            ..Overrides::default()
        };
        let c = load(Some(&file), &env, flags).unwrap();
        assert_eq!(c.join, ["127.0.0.1:4"]);
        assert_eq!(c.name.as_deref(), Some("flagged"));
    }

    #[test]
    fn a_bad_environment_value_names_the_field_and_the_variable() {
        let err = load(
            None,
            &env(&[("MUSTER_BIND", "nowhere")]),
            Overrides::default(),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("`bind`") && text.contains("MUSTER_BIND"),
            "{text}"
        );
    }

    #[test]
    fn no_host_name_and_no_name_is_an_error_naming_the_field() {
        let env = Environment::default();
        let flags = Overrides {
            dev: true,
            bind: Some("127.0.0.1:1".parse().unwrap()),
            ..Overrides::default()
        };
        let err = load(None, &env, flags).unwrap_err();
        assert!(err.to_string().contains("`name`"), "{err}");
    }

    #[test]
    fn a_missing_file_is_a_read_error_naming_it() {
        let err = load(
            Some(Path::new("/nonexistent/agent.toml")),
            &env(&[]),
            Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/agent.toml"), "{err}");
    }

    #[test]
    fn dns_addr_comes_from_the_environment_or_a_flag_and_can_be_off() {
        let base = || Overrides {
            dev: true,
            name: Some("a".into()),
            ..Overrides::default()
        };
        let at = |a: &str| Listen::At(a.parse().unwrap());
        let c = load(None, &env(&[]), base()).unwrap();
        assert_eq!(c.dns_addr, Listen::Default);
        assert_eq!(
            c.dns_listen().map(|l| l.addr),
            Some("127.0.0.1:7948".parse().unwrap()),
            "dev: the gossip port + 2"
        );
        let c = load(None, &env(&[("MUSTER_DNS_ADDR", "127.0.0.1:5353")]), base()).unwrap();
        assert_eq!(c.dns_addr, at("127.0.0.1:5353"));
        let c = load(None, &env(&[("MUSTER_DNS_ADDR", "off")]), base()).unwrap();
        assert_eq!(c.dns_listen(), None);
        let flags = Overrides {
            dns_addr: Some(Listen::Off),
            ..base()
        };
        let c = load(None, &env(&[("MUSTER_DNS_ADDR", "127.0.0.1:5353")]), flags).unwrap();
        assert_eq!(c.dns_addr, Listen::Off, "the flag beats the environment");
        let flags = Overrides {
            dns_addr: Some(at("127.0.0.1:5354")),
            ..base()
        };
        let c = load(None, &env(&[("MUSTER_DNS_ADDR", "off")]), flags).unwrap();
        assert_eq!(c.dns_addr, at("127.0.0.1:5354"));
        let err = load(None, &env(&[("MUSTER_DNS_ADDR", "port 53")]), base()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("`dns_addr`") && text.contains("MUSTER_DNS_ADDR"),
            "{text}"
        );
    }

    #[test]
    fn every_setting_but_the_tables_has_a_variable_read_as_its_key_is() {
        let c = load(
            None,
            &env(&[
                ("MUSTER_NAME", "a"),
                ("MUSTER_CLUSTER", "prod"),
                ("MUSTER_LOG_FORMAT", "json"),
                ("MUSTER_API_READ_TOKEN", "true"),
                ("MUSTER_API_ALLOWED_HOSTS", "muster.example, api.example"),
                ("MUSTER_DNS_TTL", "10s"),
                ("MUSTER_DNS_RATE_LIMIT", "0"),
                ("MUSTER_MAX_MEMBERS", "500"),
                ("MUSTER_TAGS", "role=api, tier=1"),
                ("MUSTER_DEV", "true"),
            ]),
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.cluster, "prod");
        assert_eq!(c.log_format, LogFormat::Json);
        assert!(c.api_read_token && c.dev);
        assert_eq!(c.api_allowed_hosts, ["muster.example", "api.example"]);
        assert_eq!(c.dns_ttl, std::time::Duration::from_secs(10));
        assert_eq!((c.dns_rate_limit, c.max_members), (0, 500));
        assert_eq!(c.tags.get("tier").map(String::as_str), Some("1"));
        // Every key a config can print, but the tables, has a variable.
        let full = AgentConfig {
            name: Some("a".into()),
            advertise: Some("127.0.0.1:1".parse().unwrap()),
            api_addr: Listen::At("127.0.0.1:2".parse().unwrap()),
            api_token_file: Some("t".into()),
            api_tls_cert: Some("c".into()),
            api_tls_key: Some("k".into()),
            dns_addr: Listen::Off,
            data_dir: Some("d".into()),
            https_ca_file: Some("ca".into()),
            cluster_key_file: Some("k".into()),
            tls_ca: Some("ca".into()),
            tls_cert: Some("c".into()),
            tls_key: Some("k".into()),
            tags: [("k".to_owned(), "v".to_owned())].into(),
            ..AgentConfig::default()
        };
        let table = toml::Table::try_from(&full).unwrap();
        for key in table
            .keys()
            .filter(|k| !["hooks", "services"].contains(&k.as_str()))
        {
            assert!(
                ENV_SETTINGS.iter().any(|(field, _)| field == key),
                "no variable for {key}"
            );
        }
    }

    #[test]
    fn bad_variables_name_the_field_and_unknown_ones_are_listed() {
        for (var, value, field) in [
            ("MUSTER_API_READ_TOKEN", "yes", "api_read_token"),
            ("MUSTER_DNS_TTL", "forever", "dns_ttl"),
            ("MUSTER_MAX_MEMBERS", "lots", "max_members"),
            ("MUSTER_TAGS", "novalue", "tags"),
            ("MUSTER_LOG_FORMAT", "xml", "log_format"),
        ] {
            let err = load(
                None,
                &env(&[("MUSTER_NAME", "a"), (var, value)]),
                Overrides::default(),
            )
            .unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains(&format!("`{field}`")) && text.contains(var),
                "{var}: {text}"
            );
        }
        let found = unknown_vars(&env(&[
            ("MUSTER_CLUSTR", "typo"),
            ("MUSTER_CONFIG", "/etc/muster/muster.toml"),
            ("MUSTER_API_TOKEN", "x"),
            ("MUSTER_BIND", "127.0.0.1:7946"),
        ]));
        assert_eq!(found, ["MUSTER_CLUSTR"]);
    }

    #[test]
    fn a_config_dir_adds_its_files_in_name_order_lists_combined() {
        let dir = tempfile::tempdir().unwrap();
        let main = write(
            dir.path(),
            "name = \"a\"\ndev = true\njoin = [\"127.0.0.1:1\"]\n[tags]\nrole = \"api\"\n",
        );
        let conf = dir.path().join("muster.d");
        std::fs::create_dir(&conf).unwrap();
        let service = |name: &str, port: u16| {
            format!(
                "[[services]]\nname = \"{name}\"\nport = {port}\n[[services.checks]]\ntcp = \"127.0.0.1:{port}\"\n"
            )
        };
        std::fs::write(
            conf.join("20-db.toml"),
            "log_level = \"debug\"\n".to_owned() + &service("db", 5432),
        )
        .unwrap();
        std::fs::write(
            conf.join("10-web.toml"),
            "log_level = \"warn\"\njoin = [\"127.0.0.1:2\"]\n[tags]\ntier = \"1\"\n".to_owned()
                + &service("web", 8080),
        )
        .unwrap();
        std::fs::write(conf.join("README.txt"), "not toml").unwrap();
        let mut files = vec![main];
        files.extend(AgentConfig::files_in(&conf).unwrap());
        assert_eq!(files.len(), 3, "{files:?}");
        let c = load_files(&files, &env(&[]), Overrides::default()).unwrap();
        let names: Vec<&str> = c.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["web", "db"], "name order");
        assert_eq!(c.log_level, "debug", "a later file's key wins");
        assert_eq!(c.join, ["127.0.0.1:1", "127.0.0.1:2"]);
        assert_eq!(c.tags.len(), 2);
        // A bad file is named, with its line.
        std::fs::write(
            conf.join("30-bad.toml"),
            "name = \"b\"\nnot_a_setting = 1\n",
        )
        .unwrap();
        let err = load_files(
            &AgentConfig::files_in(&conf).unwrap(),
            &env(&[]),
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("30-bad.toml") && err.contains("line 2"),
            "{err}"
        );
        // A directory that cannot be read is an error naming it.
        let err = AgentConfig::files_in(&dir.path().join("missing")).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn tags_and_lists_split() {
        assert_eq!(parse_tag("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_tag("=b").is_err());
        assert!(parse_tag("ab").is_err());
        assert_eq!(split_list(" a:1,,b:2 "), ["a:1", "b:2"]);
    }
}
