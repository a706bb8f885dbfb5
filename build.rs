//! Records the commit the binary is built from, for `muster --version`: `git rev-parse`
//! in a checkout, else `MUSTER_COMMIT` from the environment (a packaging step), else
//! "unknown" (a source tarball, `cargo install` from the registry).
//!
//! The files it watches come from git (`rev-parse --git-path`), so a linked worktree,
//! whose `.git` is a file, is covered too, and only files that exist are named: cargo
//! reruns a build script on every build while a path it watches is missing, which
//! rebuilt this crate and everything above it each time.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=MUSTER_COMMIT");
    // A new commit moves HEAD or the branch it names (a loose ref, or one in packed-refs).
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        watch(&head);
        let reference = std::fs::read_to_string(&head)
            .ok()
            .and_then(|text| text.trim().strip_prefix("ref: ").map(str::to_owned));
        if let Some(reference) = reference {
            for path in [reference.as_str(), "packed-refs"] {
                if let Some(path) = git(&["rev-parse", "--git-path", path]) {
                    watch(&path);
                }
            }
        }
    }
    let commit = std::env::var("MUSTER_COMMIT")
        .ok()
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]));
    println!(
        "cargo:rustc-env=MUSTER_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
}

/// The trimmed output of a successful `git` command, if not empty.
fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Reruns this script when `path` changes, if it exists (see the module doc).
fn watch(path: &str) {
    if Path::new(path).exists() {
        println!("cargo:rerun-if-changed={path}");
    }
}
