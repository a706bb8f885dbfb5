//! Child processes that run commands for the agent (exec health checks, command hooks):
//! each runs in its own process group, so a timeout kills whatever it started too, and
//! its output is kept bounded while its pipes are drained.

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// Kills the child's process group, then the child itself (reaping it).
pub async fn kill_group(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        // No `libc` (unsafe is forbidden here): `kill(1)` signals the group by its
        // negative id. The group id is the command's pid (`process_group(0)`).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
    }
    let _ = child.kill().await;
}

/// Reads `pipe` to its end, keeping `kept` at most `limit` bytes long (a buffer shared
/// by two pipes holds the first bytes of either). It keeps reading past that, so the
/// child never blocks on a full pipe.
pub async fn read_bounded(
    mut pipe: impl AsyncRead + Unpin,
    kept: Arc<Mutex<Vec<u8>>>,
    limit: usize,
) {
    let mut buf = [0u8; 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
                let room = limit.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}
