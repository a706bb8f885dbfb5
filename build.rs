//! Records the commit the binary is built from, for `muster --version`: `git rev-parse`
//! in a checkout, else `MUSTER_COMMIT` from the environment (a packaging step), else
//! "unknown" (a source tarball, `cargo install` from the registry).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=MUSTER_COMMIT");
    // A new commit moves HEAD or the branch it names.
    println!("cargo:rerun-if-changed=.git/HEAD");
    if let Ok(head) = std::fs::read_to_string(".git/HEAD")
        && let Some(reference) = head.trim().strip_prefix("ref: ")
    {
        println!("cargo:rerun-if-changed=.git/{reference}");
    }
    let commit = std::env::var("MUSTER_COMMIT").ok().or_else(|| {
        Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    });
    println!(
        "cargo:rustc-env=MUSTER_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
}
