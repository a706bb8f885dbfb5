//! `muster join`, `muster leave`, `muster force-leave` and `muster tags`: ask the local
//! agent to change something, through the API's mutating endpoints (with the API token
//! when one is given), and print what it answered.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use muster::api::client::Call;
use serde_json::{Value, json};

use crate::cli_query::{ApiArgs, call};

/// `muster join` flags.
#[derive(Args, Debug)]
pub(crate) struct JoinArgs {
    #[command(flatten)]
    pub(crate) api: ApiArgs,
    /// Seeds to join through, host:port.
    #[arg(required = true, value_name = "ADDR")]
    pub(crate) addresses: Vec<String>,
}

/// `muster force-leave` flags.
#[derive(Args, Debug)]
pub(crate) struct ForceLeaveArgs {
    #[command(flatten)]
    pub(crate) api: ApiArgs,
    /// The failed member to mark as left.
    pub(crate) name: String,
}

/// `muster tags` subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum TagsCmd {
    /// Set tags (key=value), keeping the others.
    Set {
        #[command(flatten)]
        api: ApiArgs,
        /// Tags to set.
        #[arg(required = true, value_name = "K=V", value_parser = muster::daemon::overrides::parse_tag)]
        tags: Vec<(String, String)>,
    },
    /// Remove tags by key, keeping the others.
    Delete {
        #[command(flatten)]
        api: ApiArgs,
        /// Keys to remove.
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
    },
}

/// Sends a mutating request with the token; prints the JSON answer with `--json`,
/// else `say(answer)`.
pub(crate) fn change(
    api: &ApiArgs,
    method: &str,
    path: &str,
    body: Option<Value>,
    say: impl Fn(&Value) -> String,
) -> ExitCode {
    let body = body.map(|b| b.to_string());
    send(api, method, path, body.as_deref(), say)
}

/// As [`change`], with a body sent as it is (a replicated-state value).
pub(crate) fn change_raw(
    api: &ApiArgs,
    method: &str,
    path: &str,
    body: &str,
    say: impl Fn(&Value) -> String,
) -> ExitCode {
    send(api, method, path, Some(body), say)
}

fn send(
    api: &ApiArgs,
    method: &str,
    path: &str,
    body: Option<&str>,
    say: impl Fn(&Value) -> String,
) -> ExitCode {
    let token = match api.token() {
        Ok(token) => token,
        Err(code) => return code,
    };
    let answer = call(
        api.api_addr,
        Call {
            method,
            path,
            body,
            token: token.as_deref(),
        },
    );
    match answer {
        Ok(value) if api.json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Ok(value) => {
            println!("{}", say(&value));
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// `muster join ADDR...`.
pub(crate) fn join(args: &JoinArgs) -> ExitCode {
    change(
        &args.api,
        "POST",
        "/v1/join",
        Some(json!({ "addresses": args.addresses })),
        |v| {
            format!(
                "joined through {}: {} live members",
                v["via"].as_str().unwrap_or("?"),
                v["members"]
            )
        },
    )
}

/// `muster leave`.
pub(crate) fn leave(args: &ApiArgs) -> ExitCode {
    change(args, "POST", "/v1/leave", None, |_| {
        "the agent left the cluster gracefully and is shutting down".to_owned()
    })
}

/// `muster force-leave NAME`.
pub(crate) fn force_leave(args: &ForceLeaveArgs) -> ExitCode {
    let path = format!(
        "/v1/force-leave/{}",
        muster::api::client::encode(&args.name)
    );
    change(&args.api, "POST", &path, None, |v| {
        format!(
            "{} is now left; the cluster stops re-contacting it",
            v["name"].as_str().unwrap_or("?")
        )
    })
}

/// The tags in an answer as `k=v, k=v`.
fn tag_list(v: &Value) -> String {
    let pairs: Vec<String> = v["tags"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    if pairs.is_empty() {
        "tags now: (none)".to_owned()
    } else {
        format!("tags now: {}", pairs.join(", "))
    }
}

/// `muster tags set|delete`.
pub(crate) fn tags(cmd: &TagsCmd) -> ExitCode {
    match cmd {
        TagsCmd::Set { api, tags } => {
            let set: serde_json::Map<String, Value> = tags
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            change(
                api,
                "PUT",
                "/v1/self/tags",
                Some(json!({ "set": set })),
                tag_list,
            )
        }
        TagsCmd::Delete { api, keys } => change(
            api,
            "PUT",
            "/v1/self/tags",
            Some(json!({ "delete": keys })),
            tag_list,
        ),
    }
}
