//! Running `muster agent` once its config is loaded and valid: logging, signals, and
//! [`muster::daemon::run`], which does the rest. SIGINT and SIGTERM ask the agent to
//! leave (a second one during the leave exits at once); SIGHUP is logged and ignored
//! (its default action would end the agent without a leave).

use std::io::IsTerminal;
use std::process::ExitCode;

use muster::daemon::settings::{AgentConfig, LogFormat};
use muster::daemon::{self, Listeners, RunError, Stop};
use tokio::signal::unix::{SignalKind, signal};

/// Sets up logging and runs the agent until it has left; reports a failure to start.
/// `unknown_vars` are `MUSTER_*` variables no setting reads, warned about once.
pub(crate) fn run(config: AgentConfig, unknown_vars: &[String]) -> ExitCode {
    init_logging(&config);
    for var in unknown_vars {
        tracing::warn!(
            var,
            "not a setting's variable (MUSTER_ and the setting's key in capitals); ignored"
        );
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("muster: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ended = runtime.block_on(async {
        let stop = match forward_signals() {
            Ok(stop) => stop,
            Err(e) => return Err(RunError::Start(e)),
        };
        daemon::run(config, Listeners::default(), stop).await
    });
    // Tasks still running (a leave cut short, a stuck resolver) must not hold the exit.
    runtime.shutdown_background();
    match ended {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ RunError::NameTaken(_)) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
        Err(e) => {
            eprintln!("muster: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Turns SIGINT and SIGTERM into stop requests for the agent, and logs SIGHUP, which
/// is caught so that its default action (ending the agent without a leave, e.g. after
/// a log rotation script's `kill -HUP`) cannot happen.
fn forward_signals() -> anyhow::Result<Stop> {
    use anyhow::Context;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut sighup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let (tx, stop) = Stop::channel();
    tokio::spawn(async move {
        loop {
            let which = tokio::select! {
                _ = sigint.recv() => "SIGINT",
                _ = sigterm.recv() => "SIGTERM",
                _ = sighup.recv() => {
                    tracing::warn!(
                        "SIGHUP: the config is not reloaded (not supported yet); \
                         restart the agent (SIGTERM leaves gracefully) to apply changes"
                    );
                    continue;
                }
            };
            if tx.send(which).await.is_err() {
                return;
            }
        }
    });
    Ok(stop)
}

/// Logs to stderr in the configured format, filtered by the configured level (already
/// validated, so the filter parses).
fn init_logging(config: &AgentConfig) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(crate::cli_query::colour_on(std::io::stderr().is_terminal()));
    match config.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
