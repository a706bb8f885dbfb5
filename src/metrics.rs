//! The Prometheus text exposition format (version 0.0.4), written by hand: families with
//! their `HELP` and `TYPE` lines, samples with escaped label values, histograms. Every
//! part of the agent that has counters (the mesh and API, the DNS interface, the hooks,
//! the health checks) writes its families through an [`Exposition`]; parts other than
//! the API add theirs by implementing [`MetricsSource`].
//!
//! Written here rather than with the `prometheus` crate: every value is a copy taken at
//! scrape time from counters the code keeps anyway, so a registry would be a second copy
//! to keep in step, and the format is a few lines.

use std::fmt::Write;

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Something that adds its own metrics to a scrape (e.g. the event hooks).
pub trait MetricsSource: std::fmt::Debug + Send + Sync {
    /// Writes its metric families.
    fn write_metrics(&self, out: &mut Exposition);
}

/// A metric family's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (name ends in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// A text exposition being written: families of samples, each with its `HELP` and
/// `TYPE` lines, label values escaped.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

impl Exposition {
    /// Starts a family.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample of the family just started.
    pub fn sample(&mut self, name: &str, pairs: &[(&str, &str)], value: f64) {
        let _ = writeln!(self.text, "{name}{} {value}", labels(pairs));
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// A histogram family: `buckets` are (upper bound, count in that bucket alone), in
    /// increasing order; the `+Inf` bucket is `count`.
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        buckets: &[(f64, u64)],
        sum: f64,
        count: u64,
    ) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, n) in buckets {
            cumulative += n;
            let _ = writeln!(self.text, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(self.text, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(self.text, "{name}_sum {sum}");
        let _ = writeln!(self.text, "{name}_count {count}");
    }

    /// The finished text.
    pub fn finish(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(labels(&[("a", "x\"y\\z\nw")]), "{a=\"x\\\"y\\\\z\\nw\"}");
        assert_eq!(labels(&[]), "");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_in_inf() {
        let mut out = Exposition::default();
        out.histogram("h", "help", &[(0.1, 2), (1.0, 3)], 2.5, 6);
        let text = out.finish();
        assert!(text.contains("h_bucket{le=\"0.1\"} 2\n"), "{text}");
        assert!(text.contains("h_bucket{le=\"1\"} 5\n"), "{text}");
        assert!(text.contains("h_bucket{le=\"+Inf\"} 6\n"), "{text}");
        assert!(text.contains("h_count 6\n"), "{text}");
    }
}
