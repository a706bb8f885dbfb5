//! `muster members` and `muster info`: ask the local agent's API and print the answer as
//! an aligned table (status coloured on a terminal) or, with `--json`, as the API's JSON.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use muster::api::client::{self, Call, ClientError};
use serde_json::Value;

/// Where the agent's API is, and how to print.
#[derive(Args, Debug)]
pub(crate) struct ApiArgs {
    /// The local agent's API address: `ip:port`, `host:port` or `http://host:port`.
    #[arg(long, env = "MUSTER_API_ADDR", default_value = "127.0.0.1:7947", value_parser = parse_api_addr)]
    pub(crate) api_addr: SocketAddr,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// The API token (prefer a file: a command line is visible to other users).
    #[arg(
        long,
        env = "MUSTER_API_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub(crate) token: Option<String>,
    /// File holding the API token.
    #[arg(long, env = "MUSTER_API_TOKEN_FILE", value_name = "FILE")]
    pub(crate) api_token_file: Option<PathBuf>,
    /// The agent's data dir, where it keeps its generated token (`api.token`).
    #[arg(long, env = "MUSTER_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// The agent's config file, to find its token (its `api_token_file`, or `api.token`
    /// in its `data_dir`).
    #[arg(long, env = "MUSTER_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

/// Where a packaged agent keeps its data dir: the CLI looks for a token there last.
const DEFAULT_TOKEN_FILE: &str = "/var/lib/muster/api.token";

/// Where the CLI found (or was told to find) the token.
enum TokenSource {
    Given(String),
    File { path: PathBuf, named: bool },
    None,
}

/// An API address as `--api-addr` and `MUSTER_API_ADDR` take it: `ip:port`, or a name
/// with a port (its first IPv4 address, else its first), with or without `http://`.
fn parse_api_addr(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let bare = text.trim();
    let bare = bare.strip_prefix("http://").unwrap_or(bare);
    let bare = bare.strip_suffix('/').unwrap_or(bare);
    if bare.starts_with("https://") {
        return Err("the agent's API is plain HTTP (loopback); use http:// or no scheme".into());
    }
    if let Ok(addr) = bare.parse() {
        return Ok(addr);
    }
    // IPv4 first when a name has both (`localhost` is often `::1` first), since the
    // agent's API listens on 127.0.0.1 unless told otherwise.
    match bare.to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            addrs
                .iter()
                .find(|a| a.is_ipv4())
                .or(addrs.first())
                .copied()
                .ok_or_else(|| format!("{bare:?} resolves to no address"))
        }
        Err(e) => Err(format!("expected host:port, e.g. 127.0.0.1:7947 ({e})")),
    }
}

impl ApiArgs {
    /// Where the token is: `--token` (`MUSTER_API_TOKEN`), else `--api-token-file`
    /// (`MUSTER_API_TOKEN_FILE`), else `api.token` in `--data-dir` (`MUSTER_DATA_DIR`),
    /// else what the agent's `--config` (`MUSTER_CONFIG`) names, else
    /// [`DEFAULT_TOKEN_FILE`] if it exists.
    fn token_source(&self) -> Result<TokenSource, String> {
        if let Some(token) = self
            .token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            return Ok(TokenSource::Given(token.to_owned()));
        }
        let named = |path: PathBuf| TokenSource::File { path, named: true };
        if let Some(path) = &self.api_token_file {
            return Ok(named(path.clone()));
        }
        if let Some(dir) = &self.data_dir {
            return Ok(named(dir.join(muster::api::TOKEN_FILE)));
        }
        if let Some(path) = &self.config {
            let config = muster::daemon::settings::AgentConfig::from_file(path)
                .map_err(|e| e.to_string())?;
            return Ok(match (config.api_token_file, config.data_dir) {
                (Some(file), _) => named(file),
                (None, Some(dir)) => named(dir.join(muster::api::TOKEN_FILE)),
                (None, None) => TokenSource::None,
            });
        }
        let default = PathBuf::from(DEFAULT_TOKEN_FILE);
        Ok(if default.exists() {
            TokenSource::File {
                path: default,
                named: false,
            }
        } else {
            TokenSource::None
        })
    }

    /// The API token for a change: an error (one line on stderr, exit 1) when a token
    /// file was named or found but cannot be read; none when there is none to find (an
    /// agent in `--dev` takes changes without one).
    pub(crate) fn token(&self) -> Result<Option<String>, ExitCode> {
        let fail = |message: String| {
            eprintln!("muster: {message}");
            ExitCode::FAILURE
        };
        match self.token_source().map_err(fail)? {
            TokenSource::Given(token) => Ok(Some(token)),
            TokenSource::None => Ok(None),
            TokenSource::File { path, .. } => match std::fs::read_to_string(&path) {
                Ok(text) => Ok(Some(text.trim().to_owned())),
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(fail(format!(
                    "cannot read the API token file {}: {e} (run as the agent's user or root, \
                     or pass --token or --api-token-file)",
                    path.display()
                ))),
                Err(e) => Err(fail(format!(
                    "cannot read the API token file {}: {e}",
                    path.display()
                ))),
            },
        }
    }

    /// The API token for a read, if one is at hand: reads are open on loopback unless
    /// the agent sets `api_read_token`, so a token that cannot be found or read is left
    /// out rather than an error (the agent says 401 if it wanted one). A token file
    /// named explicitly still must be readable.
    pub(crate) fn read_token(&self) -> Result<Option<String>, ExitCode> {
        match self.token_source() {
            Ok(TokenSource::File { named: false, path }) => Ok(std::fs::read_to_string(path)
                .ok()
                .map(|t| t.trim().to_owned())),
            Ok(_) => self.token(),
            Err(_) => Ok(None),
        }
    }

    /// Fetches `path` (with the token, if one is at hand) and parses its JSON; an error
    /// answer or a failure is one line on stderr and exit 1.
    pub(crate) fn fetch(&self, path: &str) -> Result<Value, ExitCode> {
        let token = self.read_token()?;
        call(
            self.api_addr,
            Call {
                token: token.as_deref(),
                ..Call::get(path)
            },
        )
    }
}

/// `muster members` flags: the API's filters.
#[derive(Args, Debug)]
pub(crate) struct MembersArgs {
    #[command(flatten)]
    pub(crate) api: ApiArgs,
    /// Only members with this status: alive, suspect, failed or left (repeatable).
    #[arg(long)]
    pub(crate) status: Vec<String>,
    /// Only members in this region (repeatable).
    #[arg(long)]
    pub(crate) region: Vec<String>,
    /// Only members in this zone (repeatable).
    #[arg(long)]
    pub(crate) zone: Vec<String>,
    /// Only members with this tag, key:value (repeatable; all must match).
    #[arg(long)]
    pub(crate) tag: Vec<String>,
    /// Only members whose name matches this glob (`*`, `?`).
    #[arg(long)]
    pub(crate) name: Option<String>,
}

/// Sends `call` and parses the JSON answer; an error answer (4xx/5xx, except 503 from
/// `/v1/health`-like reads) or a failure is one line on stderr and exit 1.
pub(crate) fn call(addr: SocketAddr, call: Call<'_>) -> Result<Value, ExitCode> {
    let fail = |message: String| {
        eprintln!("muster: {message}");
        ExitCode::FAILURE
    };
    let (status, body) =
        client::request(addr, call).map_err(|e: ClientError| fail(e.to_string()))?;
    if status == 503 && call.method != "GET" {
        let value: Value = serde_json::from_str(&body).unwrap_or_default();
        return Err(fail(
            value["error"]
                .as_str()
                .unwrap_or("the agent is shutting down")
                .to_owned(),
        ));
    }
    let value: Value = serde_json::from_str(&body).map_err(|_| {
        fail(format!(
            "the agent at {addr} answered {status} with a body that is not JSON"
        ))
    })?;
    if !(200..300).contains(&status) && status != 503 {
        let error = value["error"].as_str().unwrap_or("request failed");
        return Err(match value["field"].as_str() {
            Some(field) => fail(format!("{error} (field `{field}`)")),
            None => fail(error.to_owned()),
        });
    }
    Ok(value)
}

/// A JSON value as a table cell: strings bare, absent or empty ones as `-`.
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// The member's tags as `k=v,k=v`, or `-`.
fn tags(v: &Value) -> String {
    let pairs: Vec<String> = v
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", text(v))).collect())
        .unwrap_or_default();
    if pairs.is_empty() {
        "-".into()
    } else {
        pairs.join(",")
    }
}

/// Whether to colour what goes to stdout: only on a terminal, and not when `NO_COLOR`
/// is set to anything but the empty string (<https://no-color.org>).
pub(crate) fn colour_wanted() -> bool {
    colour_on(std::io::stdout().is_terminal())
}

/// Whether to colour an output that is a terminal or not (`NO_COLOR` wins).
pub(crate) fn colour_on(terminal: bool) -> bool {
    colour_for(terminal, std::env::var_os("NO_COLOR").as_deref())
}

fn colour_for(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// A status word, padded to `width`, coloured when `colour`.
pub(crate) fn paint(status: &str, width: usize, colour: bool) -> String {
    use crossterm::style::Stylize;
    let padded = format!("{status:<width$}");
    if !colour {
        return padded;
    }
    match status {
        "alive" => padded.green(),
        "suspect" => padded.yellow(),
        "failed" => padded.red(),
        _ => padded.dim(),
    }
    .to_string()
}

/// Rows as aligned columns, the status column coloured on a terminal. (`muster demo`
/// draws its tables with this too.)
pub(crate) fn table(header: &[&str], rows: &[Vec<String>], status_col: Option<usize>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let colour = colour_wanted();
    let mut out = String::new();
    let line = |cells: Vec<String>| cells.join("  ").trim_end().to_owned() + "\n";
    out.push_str(&line(
        header
            .iter()
            .zip(&widths)
            .map(|(h, w)| format!("{h:<w$}"))
            .collect(),
    ));
    for row in rows {
        let cells = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if Some(i) == status_col {
                    paint(c, *w, colour)
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        out.push_str(&line(cells));
    }
    out
}

/// `muster members`.
pub(crate) fn members(args: &MembersArgs) -> ExitCode {
    let mut query: Vec<String> = Vec::new();
    for (key, values) in [
        ("status", &args.status),
        ("region", &args.region),
        ("zone", &args.zone),
        ("tag", &args.tag),
    ] {
        query.extend(
            values
                .iter()
                .map(|v| format!("{key}={}", client::encode(v))),
        );
    }
    if let Some(name) = &args.name {
        query.push(format!("name={}", client::encode(name)));
    }
    let path = if query.is_empty() {
        "/v1/members".to_owned()
    } else {
        format!("/v1/members?{}", query.join("&"))
    };
    let value = match args.api.fetch(&path) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if args.api.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    let rows: Vec<Vec<String>> = value
        .as_array()
        .map(|members| {
            members
                .iter()
                .map(|m| {
                    vec![
                        text(&m["name"]),
                        text(&m["addr"]),
                        text(&m["status"]),
                        text(&m["region"]),
                        text(&m["zone"]),
                        text(&m["incarnation"]),
                        tags(&m["tags"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    print!(
        "{}",
        table(
            &["NAME", "ADDRESS", "STATUS", "REGION", "ZONE", "INC", "TAGS"],
            &rows,
            Some(2)
        )
    );
    ExitCode::SUCCESS
}

/// `muster info`: this agent and the cluster as it sees it.
pub(crate) fn info(args: &ApiArgs) -> ExitCode {
    let me = match args.fetch("/v1/self") {
        Ok(v) => v,
        Err(code) => return code,
    };
    let cluster = match args.fetch("/v1/cluster") {
        Ok(v) => v,
        Err(code) => return code,
    };
    if args.json {
        let both = serde_json::json!({ "self": me, "cluster": cluster });
        println!(
            "{}",
            serde_json::to_string_pretty(&both).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    let counts = |v: &Value| {
        ["alive", "suspect", "failed", "left"]
            .iter()
            .map(|s| format!("{} {s}", text(&v[*s])))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "agent     {} at {} ({} / {})",
        text(&me["name"]),
        text(&me["addr"]),
        text(&me["region"]),
        text(&me["zone"])
    );
    println!(
        "status    {} · incarnation {} · health score {}",
        text(&me["status"]),
        text(&me["incarnation"]),
        text(&cluster["health_score"])
    );
    println!(
        "members   {} known: {}",
        text(&cluster["members"]),
        counts(&cluster["by_status"])
    );
    if let Some(regions) = cluster["by_region"].as_object() {
        for (region, c) in regions {
            let name = if region.is_empty() {
                "(no region)"
            } else {
                region
            };
            println!("  {name:<12} {}", counts(c));
        }
    }
    println!("digest    {}", text(&cluster["digest"]));
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_and_never_under_no_color() {
        use std::ffi::OsStr;
        assert!(colour_for(true, None));
        assert!(
            colour_for(true, Some(OsStr::new(""))),
            "empty NO_COLOR is unset"
        );
        assert!(!colour_for(true, Some(OsStr::new("1"))));
        assert!(!colour_for(false, None));
        assert_eq!(paint("alive", 7, false), "alive  ");
        let painted = paint("failed", 7, true);
        assert!(
            painted.contains("failed ") && painted.starts_with('\x1b'),
            "{painted:?}"
        );
    }

    #[test]
    fn api_addresses_take_an_ip_a_name_or_a_url() {
        let local: SocketAddr = "127.0.0.1:7947".parse().expect("an address");
        assert_eq!(parse_api_addr("127.0.0.1:7947"), Ok(local));
        assert_eq!(parse_api_addr("http://127.0.0.1:7947/"), Ok(local));
        assert!(
            parse_api_addr("localhost:7947")
                .is_ok_and(|a| a.port() == 7947 && a.ip().is_loopback())
        );
        assert!(parse_api_addr("127.0.0.1").is_err());
        assert!(parse_api_addr("https://127.0.0.1:7947").is_err());
    }
}
