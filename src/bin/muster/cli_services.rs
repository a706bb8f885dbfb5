//! `muster route`, `services`, `drain`, `failover` and `state`: the services and
//! replicated-state side of the local agent's API.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use muster::api::client::encode;
use serde_json::Value;

use crate::cli_change::change;
use crate::cli_query::{ApiArgs, table, text};

/// `muster route` flags.
#[derive(Args, Debug)]
pub(crate) struct RouteArgs {
    #[command(flatten)]
    pub(crate) api: ApiArgs,
    /// The service.
    pub(crate) service: String,
    /// Route for a caller in this region [default: the agent's].
    #[arg(long)]
    pub(crate) region: Option<String>,
    /// Route for a caller in this zone [default: the agent's].
    #[arg(long)]
    pub(crate) zone: Option<String>,
    /// Only this region's instances, no failover.
    #[arg(long)]
    pub(crate) only_region: Option<String>,
    /// Most instances to list.
    #[arg(long)]
    pub(crate) limit: Option<usize>,
    /// Count `warning` instances as healthy.
    #[arg(long)]
    pub(crate) warning: bool,
    /// Key for the weighted order (a client id, say) [default: the agent's name].
    #[arg(long)]
    pub(crate) key: Option<String>,
    /// Only the primary of a `primary`-mode service.
    #[arg(long, conflicts_with_all = ["region", "zone", "only_region", "limit", "warning", "key"])]
    pub(crate) primary: bool,
}

/// `muster services` flags.
#[derive(Args, Debug)]
pub(crate) struct ServicesArgs {
    #[command(flatten)]
    pub(crate) api: ApiArgs,
    /// One service's instances (healthy or not) instead of the list.
    pub(crate) service: Option<String>,
}

/// `muster drain` flags.
#[derive(Args, Debug)]
pub(crate) struct DrainArgs {
    #[command(flatten)]
    pub(crate) api: ApiArgs,
    /// The local service to drain [default: all of this agent's services].
    pub(crate) service: Option<String>,
    /// End draining instead.
    #[arg(long)]
    pub(crate) off: bool,
}

/// `muster failover` flags: `SERVICE --to REGION`, or `reset SERVICE`.
#[derive(Args, Debug)]
pub(crate) struct FailoverArgs {
    #[command(flatten)]
    pub(crate) api: ApiArgs,
    /// `SERVICE` (with `--to`), or `reset SERVICE`.
    #[arg(required = true, num_args = 1..=2, value_name = "SERVICE | reset SERVICE")]
    pub(crate) args: Vec<String>,
    /// Send the service's traffic to this region until reset.
    #[arg(long, value_name = "REGION")]
    pub(crate) to: Option<String>,
}

/// `muster state` subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum StateCmd {
    /// Show a member's replicated state [default: this agent's].
    Get {
        #[command(flatten)]
        api: ApiArgs,
        /// The member.
        node: Option<String>,
    },
    /// Set one key of this agent's state; it spreads to every member.
    Set {
        #[command(flatten)]
        api: ApiArgs,
        /// The key.
        key: String,
        /// The value (text).
        value: String,
    },
    /// Delete one key of this agent's state.
    Delete {
        #[command(flatten)]
        api: ApiArgs,
        /// The key.
        key: String,
    },
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Instance rows: node, endpoint, region, zone, status, weight.
fn instance_rows(instances: &Value) -> Vec<Vec<String>> {
    instances
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| {
                    vec![
                        text(&i["node"]),
                        format!("{}:{}", text(&i["address"]), i["port"]),
                        text(&i["region"]),
                        text(&i["zone"]),
                        text(&i["status"]),
                        i["weight"].to_string(),
                    ]
                })
                .collect()
        })
        .unwrap_or_default()
}

const INSTANCE_HEADER: [&str; 6] = ["NODE", "ENDPOINT", "REGION", "ZONE", "STATUS", "WEIGHT"];

/// `muster route SERVICE --primary`.
fn primary(args: &RouteArgs) -> ExitCode {
    let path = format!("/v1/services/{}/primary", encode(&args.service));
    let answer = match args.api.fetch(&path) {
        Ok(v) => v,
        Err(code) => return code,
    };
    // 503 (no instance eligible) comes back as a body with an error.
    if let Some(error) = answer["error"].as_str() {
        eprintln!("muster: {error}");
        return ExitCode::FAILURE;
    }
    if args.api.json {
        print_json(&answer);
        return ExitCode::SUCCESS;
    }
    let p = &answer["primary"];
    println!(
        "{} primary: {} at {}:{} ({}/{}) · priority {} · held {:.1} s{}",
        text(&answer["service"]),
        text(&p["node"]),
        text(&p["address"]),
        p["port"],
        text(&p["region"]),
        text(&p["zone"]),
        answer["priority"],
        answer["since_ms"].as_f64().unwrap_or(0.0) / 1000.0,
        if answer["failback"] == Value::Bool(false) {
            format!(" · claim term {}", answer["claim"])
        } else {
            String::new()
        }
    );
    ExitCode::SUCCESS
}

/// `muster route SERVICE`.
pub(crate) fn route(args: &RouteArgs) -> ExitCode {
    if args.primary {
        return primary(args);
    }
    let mut query: Vec<String> = Vec::new();
    for (k, v) in [
        ("region", &args.region),
        ("zone", &args.zone),
        ("only_region", &args.only_region),
        ("key", &args.key),
    ] {
        if let Some(v) = v {
            query.push(format!("{k}={}", encode(v)));
        }
    }
    if let Some(l) = args.limit {
        query.push(format!("limit={l}"));
    }
    if args.warning {
        query.push("warning=true".into());
    }
    let mut path = format!("/v1/route/{}", encode(&args.service));
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    let answer = match args.api.fetch(&path) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if args.api.json {
        print_json(&answer);
        return ExitCode::SUCCESS;
    }
    let rule = &answer["rule"];
    println!(
        "{}: rule {} · regions {} · {}",
        text(&answer["service"]),
        text(&rule["state"]),
        rule["regions"]
            .as_array()
            .map(|r| r.iter().map(text).collect::<Vec<_>>().join(", "))
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "-".into()),
        text(&rule["reason"]),
    );
    let rows = instance_rows(&answer["instances"]);
    if rows.is_empty() {
        println!("no healthy instance to send traffic to");
    } else {
        print!("{}", table(&INSTANCE_HEADER, &rows, Some(4)));
    }
    ExitCode::SUCCESS
}

/// `muster services [SERVICE]`.
pub(crate) fn services(args: &ServicesArgs) -> ExitCode {
    let path = match &args.service {
        Some(s) => format!("/v1/services/{}", encode(s)),
        None => "/v1/services".to_owned(),
    };
    let answer = match args.api.fetch(&path) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if args.api.json {
        print_json(&answer);
        return ExitCode::SUCCESS;
    }
    if args.service.is_some() {
        let rows = instance_rows(&answer["instances"]);
        print!("{}", table(&INSTANCE_HEADER, &rows, Some(4)));
        if let Some(rule) = answer["rule"].as_object() {
            println!(
                "rule for this agent's region: {} · {}",
                text(&rule["state"]),
                text(&rule["reason"])
            );
        }
        if answer["local"].is_object() {
            println!(
                "this agent runs it: {}{}",
                text(&answer["local"]["status"]),
                if answer["local"]["draining"] == Value::Bool(true) {
                    " (draining)"
                } else {
                    ""
                }
            );
        }
        return ExitCode::SUCCESS;
    }
    let rows: Vec<Vec<String>> = answer["services"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(name, s)| {
                    let regions = s["regions"]
                        .as_object()
                        .map(|r| r.keys().cloned().collect::<Vec<_>>().join(","))
                        .unwrap_or_default();
                    vec![
                        name.clone(),
                        s["instances"].to_string(),
                        s["passing"].to_string(),
                        s["warning"].to_string(),
                        s["critical"].to_string(),
                        s["draining"].to_string(),
                        if regions.is_empty() {
                            "-".into()
                        } else {
                            regions
                        },
                        if s["local"] == Value::Bool(true) {
                            "yes"
                        } else {
                            "no"
                        }
                        .into(),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    if rows.is_empty() {
        println!("no services");
    } else {
        print!(
            "{}",
            table(
                &[
                    "SERVICE",
                    "INSTANCES",
                    "PASSING",
                    "WARNING",
                    "CRITICAL",
                    "DRAINING",
                    "REGIONS",
                    "LOCAL"
                ],
                &rows,
                None
            )
        );
    }
    ExitCode::SUCCESS
}

/// `muster drain [SERVICE] [--off]`.
pub(crate) fn drain(args: &DrainArgs) -> ExitCode {
    let path = match &args.service {
        Some(s) => format!("/v1/services/{}/drain", encode(s)),
        None => "/v1/drain".to_owned(),
    };
    let method = if args.off { "DELETE" } else { "PUT" };
    let off = args.off;
    change(&args.api, method, &path, None, move |v| {
        let list = v["services"]
            .as_array()
            .map(|a| a.iter().map(text).collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        match (list.is_empty(), off) {
            (true, _) => "this agent runs no services".to_owned(),
            (false, false) => format!("draining: {list} (alive, no new traffic)"),
            (false, true) => format!("no longer draining: {list}"),
        }
    })
}

/// `muster failover SERVICE --to REGION` / `muster failover reset SERVICE`.
pub(crate) fn failover(args: &FailoverArgs) -> ExitCode {
    let say = |v: &Value| {
        format!(
            "{}: rule {} · {}",
            text(&v["service"]),
            text(&v["rule"]["state"]),
            text(&v["rule"]["reason"])
        )
    };
    match (args.args.as_slice(), &args.to) {
        ([verb, service], None) if verb == "reset" => {
            let path = format!("/v1/failover/{}", encode(service));
            change(&args.api, "DELETE", &path, None, say)
        }
        ([service], Some(region)) => {
            let path = format!("/v1/failover/{}", encode(service));
            let body = serde_json::json!({ "to": region });
            change(&args.api, "POST", &path, Some(body), say)
        }
        _ => {
            eprintln!(
                "muster: use `muster failover SERVICE --to REGION` or `muster failover reset SERVICE`"
            );
            ExitCode::FAILURE
        }
    }
}

/// `muster state get|set|delete`.
pub(crate) fn state(cmd: &StateCmd) -> ExitCode {
    match cmd {
        StateCmd::Get { api, node } => {
            let path = match node {
                Some(n) => format!("/v1/members/{}/state", encode(n)),
                None => "/v1/self/state".to_owned(),
            };
            let answer = match api.fetch(&path) {
                Ok(v) => v,
                Err(code) => return code,
            };
            if api.json {
                print_json(&answer);
                return ExitCode::SUCCESS;
            }
            let rows: Vec<Vec<String>> = answer["entries"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, e)| vec![k.clone(), e["version"].to_string(), text(&e["value"])])
                        .collect()
                })
                .unwrap_or_default();
            if rows.is_empty() {
                println!("{}: no state", text(&answer["node"]));
            } else {
                print!("{}", table(&["KEY", "VERSION", "VALUE"], &rows, None));
            }
            ExitCode::SUCCESS
        }
        StateCmd::Set { api, key, value } => {
            let path = format!("/v1/self/state/{}", encode(key));
            crate::cli_change::change_raw(api, "PUT", &path, value, |v| {
                format!("{} set (state version {})", text(&v["key"]), v["version"])
            })
        }
        StateCmd::Delete { api, key } => {
            let path = format!("/v1/self/state/{}", encode(key));
            change(api, "DELETE", &path, None, |v| {
                format!(
                    "{} deleted (state version {})",
                    text(&v["key"]),
                    v["version"]
                )
            })
        }
    }
}
