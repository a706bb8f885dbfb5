//! The documents' fenced blocks, for the tests that run what the docs show as written
//! (README, docs/operations.md, docs/getting-started.md).

use anyhow::{Context, Result, bail};

/// A fenced code block: its language, its lines, and where it is.
#[derive(Debug)]
pub struct Block {
    /// The number of the `## N.` section it is in (0 before the first).
    pub section: u32,
    /// The text of the last `###` heading before it in that section, if any.
    pub subsection: String,
    /// The fence's language (`sh`, `text`, …).
    pub lang: String,
    /// The lines between the fences.
    pub lines: Vec<String>,
}

/// Every fenced block of `markdown`, in order.
pub fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut section = 0;
    let mut subsection = String::new();
    let mut open: Option<Block> = None;
    for line in markdown.lines() {
        match (&mut open, line.trim_start().strip_prefix("```")) {
            (None, Some(lang)) => {
                open = Some(Block {
                    section,
                    subsection: subsection.clone(),
                    lang: lang.trim().to_owned(),
                    lines: Vec::new(),
                });
            }
            (Some(_), Some(_)) => out.extend(open.take()),
            (Some(block), None) => block.lines.push(line.to_owned()),
            (None, None) => {
                if let Some(heading) = line.strip_prefix("## ") {
                    section = heading
                        .split('.')
                        .next()
                        .and_then(|n| n.trim().parse().ok())
                        .unwrap_or(section);
                    subsection.clear();
                } else if let Some(heading) = line.strip_prefix("### ") {
                    subsection = heading.trim().to_owned();
                }
            }
        }
    }
    out
}

/// The arguments of a documented `muster` command line (`muster …`, or `cargo run
/// --release --bin muster -- …`), or `None` for a comment or a blank line. A line with
/// shell syntax beyond plain words fails: the tests run commands as words, not through
/// a shell.
pub fn muster_args(line: &str) -> Result<Option<Vec<String>>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let rest = line
        .strip_prefix("cargo run --release --bin muster -- ")
        .or_else(|| line.strip_prefix("muster "))
        .with_context(|| format!("not a muster command: {line:?}"))?;
    if rest.contains(['"', '\'', '$', '|', '&', ';', '>', '<', '`', '\\']) {
        bail!("shell syntax in a documented command this test runs as words: {line:?}");
    }
    Ok(Some(rest.split_whitespace().map(str::to_owned).collect()))
}
