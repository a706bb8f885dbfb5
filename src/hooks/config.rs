//! `[[hooks]]` in the agent config: [`HookConfig`], one entry per hook, with its
//! defaults and its checks. The runner that acts on them is [`super::HookRunner`].
//!
//! Errors name the entry and key as `hooks[INDEX].KEY` (0-based, in file order), e.g.
//! `hooks[0].events: unknown event "member-exploded"`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::events::journal::EventKind;
use crate::field_error::FieldError;
use crate::http_client::HttpUrl;

/// Default time one attempt may take: long enough for a pager API on a slow day, short
/// enough that a stuck hook is noticed and retried within a minute.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// Default extra attempts after a failure: rides out a restart of the receiving end
/// (with the 1 s, 2 s, 4 s backoff, about 7 s plus the attempts).
pub const DEFAULT_HOOK_RETRIES: u32 = 3;

/// Most extra attempts allowed: with backoff capped at 30 s, ten retries already span
/// about four minutes, past which an alert is stale.
pub const MAX_HOOK_RETRIES: u32 = 10;

/// Longest timeout allowed per attempt: a hook that needs longer should hand the work
/// off and return.
pub const MAX_HOOK_TIMEOUT: Duration = Duration::from_secs(600);

/// Longest hook name: names appear in every log line and metric of the hook.
pub const MAX_HOOK_NAME_LEN: usize = 64;

/// The event name that selects every kind.
pub const ALL_EVENTS: &str = "*";

/// Headers the webhook client writes itself; setting them would send two.
const RESERVED_HEADERS: [&str; 6] = [
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "user-agent",
];

/// One `[[hooks]]` entry: which events, and a command to run or a URL to POST to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    /// Name in logs and stats; unset means `hook-INDEX` (0-based, in file order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Event kinds that run the hook (`member-failed`, …), or `"*"` for all.
    pub events: Vec<String>,
    /// Program and arguments to run, not through a shell; the event arrives as JSON on
    /// stdin and in `MUSTER_*` environment variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// `http://` or `https://` URL the event is POSTed to as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// Time one attempt may take, e.g. `"10s"`.
    #[serde(default = "default_timeout", with = "crate::duration")]
    pub timeout: Duration,
    /// Extra attempts after a failed one.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Extra request headers (webhooks only), e.g. `Authorization`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

fn default_timeout() -> Duration {
    DEFAULT_HOOK_TIMEOUT
}

fn default_retries() -> u32 {
    DEFAULT_HOOK_RETRIES
}

/// What a hook does, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookAction {
    /// Run this program with these arguments.
    Command(Vec<String>),
    /// POST to this URL.
    Webhook(HttpUrl),
}

/// A [`FieldError`] for key `key` of hook `index`.
fn invalid(index: usize, key: &str, reason: impl Into<String>) -> FieldError {
    FieldError::new(format!("hooks[{index}].{key}"), reason)
}

impl HookConfig {
    /// A hook running `command` on `events`, with the default timeout and retries.
    pub fn command(events: &[&str], command: &[&str]) -> HookConfig {
        HookConfig {
            name: None,
            events: events.iter().map(|e| (*e).to_owned()).collect(),
            command: Some(command.iter().map(|a| (*a).to_owned()).collect()),
            webhook: None,
            timeout: DEFAULT_HOOK_TIMEOUT,
            retries: DEFAULT_HOOK_RETRIES,
            headers: BTreeMap::new(),
        }
    }

    /// A hook POSTing `events` to `url`, with the default timeout and retries.
    pub fn webhook(events: &[&str], url: &str) -> HookConfig {
        HookConfig {
            command: None,
            webhook: Some(url.to_owned()),
            ..HookConfig::command(events, &[])
        }
    }

    /// The hook's name: the configured one, or `hook-INDEX`.
    pub fn name_at(&self, index: usize) -> String {
        self.name.clone().unwrap_or_else(|| format!("hook-{index}"))
    }

    /// The event kinds selected, in [`EventKind::ALL`] order, each once.
    pub fn kinds(&self, index: usize) -> Result<Vec<EventKind>, FieldError> {
        if self.events.is_empty() {
            return Err(invalid(
                index,
                "events",
                format!("must name at least one event, or {ALL_EVENTS:?} for all"),
            ));
        }
        let mut selected = Vec::new();
        for name in &self.events {
            if name == ALL_EVENTS {
                return Ok(EventKind::ALL.to_vec());
            }
            let kind = EventKind::parse(name).ok_or_else(|| {
                let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                invalid(
                    index,
                    "events",
                    format!(
                        "unknown event {name:?}; expected {ALL_EVENTS:?} or one of {}",
                        known.join(", ")
                    ),
                )
            })?;
            selected.push(kind);
        }
        selected.sort();
        selected.dedup();
        Ok(selected)
    }

    /// The command or webhook, checked: exactly one must be set.
    pub fn action(&self, index: usize) -> Result<HookAction, FieldError> {
        match (&self.command, &self.webhook) {
            (Some(_), Some(_)) => Err(invalid(
                index,
                "webhook",
                "set either command or webhook, not both",
            )),
            (None, None) => Err(invalid(index, "command", "set a command or a webhook")),
            (Some(command), None) => {
                if command.first().is_none_or(String::is_empty) {
                    return Err(invalid(
                        index,
                        "command",
                        "must start with a program to run, e.g. [\"/usr/local/bin/page\", \"--team\", \"ops\"]",
                    ));
                }
                if !self.headers.is_empty() {
                    return Err(invalid(index, "headers", "only webhooks send headers"));
                }
                Ok(HookAction::Command(command.clone()))
            }
            (None, Some(url)) => {
                let url = HttpUrl::parse(url).map_err(|e| invalid(index, "webhook", e))?;
                Ok(HookAction::Webhook(url))
            }
        }
    }

    /// Checks every key of entry `index` (used for the error's field name).
    pub fn validate(&self, index: usize) -> Result<(), FieldError> {
        if let Some(name) = &self.name {
            if name.is_empty() || name.len() > MAX_HOOK_NAME_LEN {
                return Err(invalid(
                    index,
                    "name",
                    format!("must be 1 to {MAX_HOOK_NAME_LEN} bytes"),
                ));
            }
            if name.chars().any(char::is_control) {
                return Err(invalid(
                    index,
                    "name",
                    "must not contain control characters",
                ));
            }
        }
        self.kinds(index)?;
        self.action(index)?;
        if self.timeout.is_zero() || self.timeout > MAX_HOOK_TIMEOUT {
            return Err(invalid(
                index,
                "timeout",
                format!(
                    "must be more than 0ms and at most {}",
                    crate::duration::format_duration(MAX_HOOK_TIMEOUT)
                ),
            ));
        }
        if self.retries > MAX_HOOK_RETRIES {
            return Err(invalid(
                index,
                "retries",
                format!("must be at most {MAX_HOOK_RETRIES}"),
            ));
        }
        for (name, value) in &self.headers {
            let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if name.is_empty() || !name.chars().all(token) {
                return Err(invalid(
                    index,
                    "headers",
                    format!("{name:?}: not a valid header name"),
                ));
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(invalid(
                    index,
                    "headers",
                    format!("{name:?}: set by the agent itself"),
                ));
            }
            if value.chars().any(|c| c.is_control() && c != '\t') {
                return Err(invalid(
                    index,
                    "headers",
                    format!("{name:?}: the value must not contain control characters"),
                ));
            }
        }
        Ok(())
    }
}

/// Checks every hook, then that names are unique.
pub fn validate_hooks(hooks: &[HookConfig]) -> Result<(), FieldError> {
    let mut names = std::collections::BTreeSet::new();
    for (index, hook) in hooks.iter().enumerate() {
        hook.validate(index)?;
        if !names.insert(hook.name_at(index)) {
            return Err(invalid(
                index,
                "name",
                format!(
                    "{:?} is already the name of another hook",
                    hook.name_at(index)
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(hooks: Vec<HookConfig>) -> String {
        match validate_hooks(&hooks) {
            Err(e) => e.to_string(),
            Ok(()) => panic!("expected a hook entry to be named, got Ok for {hooks:?}"),
        }
    }

    fn failed() -> HookConfig {
        HookConfig::command(&["member-failed"], &["/bin/true"])
    }

    #[test]
    fn each_bad_hook_value_names_its_entry_and_key() {
        let with = |f: fn(&mut HookConfig)| {
            let mut h = failed();
            f(&mut h);
            vec![HookConfig::command(&["*"], &["/bin/true"]), h]
        };
        let cases: Vec<(Vec<HookConfig>, &str)> = vec![
            (
                with(|h| h.events = vec!["member-exploded".into()]),
                "`hooks[1].events`: unknown event \"member-exploded\"",
            ),
            (
                with(|h| h.events.clear()),
                "`hooks[1].events`: must name at least one",
            ),
            (
                with(|h| h.command = None),
                "`hooks[1].command`: set a command or a webhook",
            ),
            (
                with(|h| h.webhook = Some("http://localhost/".into())),
                "`hooks[1].webhook`: set either command or webhook, not both",
            ),
            (
                with(|h| h.command = Some(vec![])),
                "`hooks[1].command`: must start with a program",
            ),
            (
                with(|h| h.command = Some(vec![String::new()])),
                "`hooks[1].command`: must start with a program",
            ),
            (
                with(|h| {
                    h.command = None;
                    h.webhook = Some("ftp://x/".into());
                }),
                "`hooks[1].webhook`: \"ftp://x/\": must start with http:// or https://",
            ),
            (
                with(|h| {
                    h.command = None;
                    h.webhook = Some("http://:80/".into());
                }),
                "`hooks[1].webhook`",
            ),
            (
                with(|h| h.timeout = Duration::ZERO),
                "`hooks[1].timeout`: must be more than 0ms",
            ),
            (
                with(|h| h.timeout = Duration::from_secs(601)),
                "`hooks[1].timeout`: must be more than 0ms and at most 10m",
            ),
            (
                with(|h| h.retries = 11),
                "`hooks[1].retries`: must be at most 10",
            ),
            (
                with(|h| h.name = Some(String::new())),
                "`hooks[1].name`: must be 1 to 64 bytes",
            ),
            (
                with(|h| h.name = Some("hook-0".into())),
                "`hooks[1].name`: \"hook-0\" is already the name of another hook",
            ),
            (
                with(|h| {
                    h.headers.insert("X-Team".into(), "ops".into());
                }),
                "`hooks[1].headers`: only webhooks send headers",
            ),
        ];
        for (hooks, expected) in cases {
            let text = error(hooks);
            assert!(text.contains(expected), "expected {expected:?} in {text:?}");
        }
    }

    #[test]
    fn bad_webhook_headers_are_named() {
        for (name, value, expected) in [
            ("Bad Header", "v", "not a valid header name"),
            ("", "v", "not a valid header name"),
            ("content-type", "text/plain", "set by the agent itself"),
            ("Host", "x", "set by the agent itself"),
            (
                "X-Token",
                "a\r\nInjected: 1",
                "must not contain control characters",
            ),
        ] {
            let mut h = HookConfig::webhook(&["*"], "http://127.0.0.1:9000/alerts");
            h.headers.insert(name.into(), value.into());
            let text = error(vec![h]);
            assert!(
                text.contains("`hooks[0].headers`") && text.contains(expected),
                "{text}"
            );
        }
    }
}
