//! What the demo measures: each running node's own view against what the demo did, and
//! the moments worth a line (the cluster formed, the first suspicion, every survivor
//! knowing of a failure, every node agreeing a restarted one is alive).

use super::*;

impl Demo {
    /// Compares what each running node believes with what the demo did, and logs the
    /// moments that matter: the cluster formed, the first suspicion, every survivor
    /// knowing of a failure, and every node agreeing a restarted one is alive.
    pub(super) fn observe(&mut self) {
        let now = Instant::now();
        let views: Vec<Option<Members>> = self
            .nodes
            .iter()
            .map(|n| n.live.as_ref().map(Live::members))
            .collect();
        let mut lines = Vec::new();
        if !self.joined {
            let n = self.nodes.len();
            let all = views.iter().flatten().all(|members| {
                members
                    .iter()
                    .filter(|m| m.state == MemberState::Alive)
                    .count()
                    == n
            });
            if all {
                self.joined = true;
                lines.push(format!("all {n} nodes see each other alive"));
            }
        }
        let state = |j: usize, victim: &str| -> Option<(MemberState, u64)> {
            views[j]
                .as_ref()?
                .iter()
                .find(|m| m.name == victim)
                .map(|m| (m.state, m.incarnation))
        };
        for o in &mut self.outages {
            let victim = self.nodes[o.node].name.as_str();
            let others: Vec<usize> = (0..self.nodes.len())
                .filter(|&j| j != o.node && views[j].is_some())
                .collect();
            let name = |j: usize| self.nodes[j].name.as_str();
            match o.restarted {
                None => {
                    let since = now - o.crashed_at;
                    if !o.suspected
                        && let Some(&j) = others
                            .iter()
                            .find(|&&j| matches!(state(j, victim), Some((MemberState::Suspect, _))))
                    {
                        o.suspected = true;
                        lines.push(format!(
                            "{} marks {victim} suspect ({:.1} s after the crash)",
                            name(j),
                            since.as_secs_f64()
                        ));
                    }
                    // A node that does not know the victim at all (it restarted and has not
                    // caught up) does not count as knowing it failed.
                    let knows = |j: usize| {
                        matches!(
                            state(j, victim),
                            Some((MemberState::Dead | MemberState::Left, _))
                        )
                    };
                    if !o.all_failed && !others.is_empty() && others.iter().all(|&j| knows(j)) {
                        o.all_failed = true;
                        o.first_failed = true;
                        o.suspected = true;
                        let who = match others.as_slice() {
                            [only] => format!("{}, the only survivor, marks", name(*only)),
                            [_, _] => "both survivors mark".to_owned(),
                            _ => format!("all {} survivors mark", others.len()),
                        };
                        lines.push(format!(
                            "{who} {victim} failed ({:.1} s after the crash)",
                            since.as_secs_f64()
                        ));
                    } else if !o.first_failed
                        && let Some(&j) = others.iter().find(|&&j| knows(j))
                    {
                        o.first_failed = true;
                        o.suspected = true;
                        lines.push(format!(
                            "{} marks {victim} failed ({:.1} s after the crash)",
                            name(j),
                            since.as_secs_f64()
                        ));
                    }
                }
                Some((at, incarnation)) => {
                    let agrees = |j: usize| {
                        matches!(state(j, victim),
                            Some((MemberState::Alive, inc)) if inc >= incarnation)
                    };
                    let after = (now - at).as_secs_f64();
                    if !o.agreed && others.iter().all(|&j| agrees(j)) {
                        o.agreed = true;
                        lines.push(format!(
                            "all agree {victim} is alive ({after:.1} s after the restart)"
                        ));
                    }
                    // The other side of a rejoin: the fresh node catching up.
                    let sees = |j: usize| {
                        views[o.node]
                            .as_ref()
                            .and_then(|members| members.iter().find(|m| m.name == name(j)))
                            .is_some_and(|m| m.state == MemberState::Alive)
                    };
                    if !o.rejoined && others.iter().all(|&j| sees(j)) {
                        o.rejoined = true;
                        lines.push(format!(
                            "{victim} sees every other node alive ({after:.1} s after the restart)"
                        ));
                    }
                }
            }
        }
        let before = self.outages.len();
        self.outages.retain(|o| !(o.agreed && o.rejoined));
        if self.outages.len() < before
            && let (Some(due), Some(every)) = (self.next_crash, self.crash_every)
        {
            // A quiet spell after a recovery, so the next detection starts from a
            // settled cluster rather than from gossip about the last restart.
            self.next_crash = Some(due.max(now + every.min(QUIET_AFTER_RECOVERY)));
        }
        for line in lines {
            self.event(line);
        }
    }
}
