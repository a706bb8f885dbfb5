//! What the demo shows: the intro (where each node's API is, what to try) and, on a
//! terminal, the screen redrawn in place.

use std::io::Write;

use muster::api::Status;

use super::terminal;
use super::{CLUSTER, Demo, OBSERVER, table};

impl Demo {
    /// Prints, once, where each node's API is and what to try.
    pub(super) fn intro(&mut self) {
        let rows: Vec<Vec<String>> = self
            .nodes
            .iter()
            .map(|n| {
                vec![
                    n.name.clone(),
                    n.region.to_owned(),
                    n.zone.clone(),
                    n.addr.to_string(),
                    format!("http://{}", n.api_addr),
                ]
            })
            .collect();
        let mut out = format!(
            "muster demo: {} agents in this process on 127.0.0.1 (dev key, cluster {CLUSTER}, \
             profile {})\n{}\n",
            self.nodes.len(),
            self.profile,
            self.schedule_text()
        );
        out.push_str(&table(
            &["NODE", "REGION", "ZONE", "MESH (UDP)", "API"],
            &rows,
            None,
        ));
        out.push('\n');
        out.push_str(&self.try_text());
        out.push('\n');
        if self.screen {
            // Clear once; every frame then overwrites the last in place, and shows the
            // same addresses and commands.
            terminal::clear_screen();
        } else {
            print!("{out}");
            for line in &self.log {
                println!("{line}");
            }
        }
        let _ = std::io::stdout().flush();
        self.introduced = true;
    }

    /// What the schedule does, in a sentence.
    pub(super) fn schedule_text(&self) -> String {
        match self.crash_every {
            Some(every) => format!(
                "A random node other than {} crashes every {} s and comes back {} s later.",
                self.nodes[OBSERVER].name,
                every.as_secs(),
                self.down_for.as_secs()
            ),
            None => format!(
                "Nodes crash only on a key press; a crashed node comes back {} s later.",
                self.down_for.as_secs()
            ),
        }
    }

    /// The commands to poke at the cluster, and the keys.
    pub(super) fn try_text(&self) -> String {
        let api = self.nodes[OBSERVER].api_addr;
        let other = self.nodes[self.nodes.len() - 1].api_addr;
        format!(
            "Try, in another terminal (any node's API works):\n  \
             curl -s http://{api}/v1/members | jq\n  \
             muster members --api-addr {api}\n  \
             muster monitor --api-addr {other}\n\
             Keys: {}\n",
            self.keys_help()
        )
    }

    /// What the keys do: single keys on a terminal, lines otherwise.
    pub(super) fn keys_help(&self) -> &'static str {
        if self.single_keys {
            "c or Enter = crash a node now, r = restart crashed nodes, q or Ctrl-C = quit"
        } else {
            "Enter = crash a node now, r Enter = restart crashed nodes, q Enter or Ctrl-C = quit"
        }
    }

    /// Redraws the screen in place: each line overwrites the old one and clears its
    /// rest, then everything below is cleared (no flicker from clearing first).
    pub(super) fn draw(&self) {
        let mut out = String::new();
        let since = self.elapsed().as_secs_f64();
        out.push_str(&format!(
            "muster demo: {} agents on 127.0.0.1, profile {}, +{since:.1}s\n{}\n\n",
            self.nodes.len(),
            self.profile,
            self.schedule_text()
        ));
        out.push_str(&self.try_text());
        let observer = &self.nodes[OBSERVER];
        out.push_str(&format!("\nMembers as {} sees them\n", observer.name));
        if let Some(live) = &observer.live {
            let view = live.mesh.view();
            let now = view.now();
            let rows: Vec<Vec<String>> = view
                .members()
                .iter()
                .map(|m| {
                    vec![
                        m.name.to_string(),
                        m.addr.to_string(),
                        Status::of(m.state).as_str().to_owned(),
                        m.region.to_string(),
                        m.zone.to_string(),
                        m.incarnation.to_string(),
                        format!(
                            "{:.1}s",
                            now.saturating_since(m.state_changed).as_secs_f64()
                        ),
                    ]
                })
                .collect();
            out.push_str(&table(
                &["NAME", "ADDRESS", "STATUS", "REGION", "ZONE", "INC", "FOR"],
                &rows,
                Some(2),
            ));
        }
        out.push_str("\nWhat each node sees\n");
        let rows: Vec<Vec<String>> = self
            .nodes
            .iter()
            .map(|n| {
                let mut row = vec![n.name.clone(), format!("http://{}", n.api_addr)];
                match (&n.live, n.down_since) {
                    (Some(live), _) => {
                        let members = live.members();
                        let count = |status: Status| {
                            members
                                .iter()
                                .filter(|m| Status::of(m.state) == status)
                                .count()
                                .to_string()
                        };
                        row.push("up".into());
                        row.extend([Status::Alive, Status::Suspect, Status::Failed].map(count));
                    }
                    (None, since) => {
                        let down = since.map_or(0.0, |s| s.elapsed().as_secs_f64());
                        row.push(format!("crashed {down:.1}s ago"));
                        row.extend(["-".into(), "-".into(), "-".into()]);
                    }
                }
                row
            })
            .collect();
        out.push_str(&table(
            &["NODE", "API", "PROCESS", "ALIVE", "SUSPECT", "FAILED"],
            &rows,
            None,
        ));
        out.push_str("\nEvents\n");
        for line in &self.log {
            out.push_str(line);
            out.push('\n');
        }
        terminal::draw_frame(&out);
    }
}
