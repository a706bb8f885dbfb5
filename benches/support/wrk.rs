//! Runs Debian's `wrk` against a URL and prints its latency report: shared by the
//! benches that load the HTTP API.

use std::time::Duration;

/// Loads `url` with `wrk -t2 -c CONNECTIONS -d SECONDS --latency` and prints the report.
/// Returns `false` (after saying so) when wrk is not installed, so the caller can keep
/// serving for another tool; a wrk that fails is an error.
pub async fn load(url: &str, connections: usize, duration: Duration) -> anyhow::Result<bool> {
    let secs = duration.as_secs();
    let wrk = tokio::process::Command::new("wrk")
        .args(["-t2", &format!("-c{connections}")])
        .args([format!("-d{secs}s"), "--latency".into(), url.to_owned()])
        .output()
        .await;
    match wrk {
        Ok(out) if out.status.success() => {
            println!("wrk -t2 -c{connections} -d{secs}s --latency {url}");
            print!("{}", String::from_utf8_lossy(&out.stdout));
            Ok(true)
        }
        Ok(out) => anyhow::bail!("wrk failed: {}", String::from_utf8_lossy(&out.stderr)),
        Err(_) => {
            println!("wrk is not installed (apt-get install wrk)");
            Ok(false)
        }
    }
}
