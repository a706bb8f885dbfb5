//! Faults and workloads the scenario applies to the world: crashes and restarts, the
//! fault specs (partitions, loss, slow nodes, churn), replicated-state writes, and the
//! primary-role checks and kills.

use super::*;

impl World {
    pub(super) fn take_down(&mut self, i: usize, life: Life) {
        let now = self.now;
        let n = &mut self.nodes[i];
        if let Some(since) = n.up_since.take() {
            n.up_total += now - since;
        }
        n.node = None;
        n.life = life;
        n.wake_at = None;
    }

    pub(super) fn crash(&mut self, i: usize) {
        if !matches!(self.nodes[i].life, Life::Up | Life::Leaving) {
            return;
        }
        let incarnation = self.nodes[i].node.as_ref().map_or(0, |n| n.incarnation());
        let observers: Vec<usize> = (0..self.nodes.len())
            .filter(|&j| j != i && self.nodes[j].life == Life::Up)
            .collect();
        self.obs.crashed(i, self.now, incarnation, observers);
        self.take_down(i, Life::Crashed);
    }

    pub(super) fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        if !matches!(self.nodes[i].life, Life::Crashed | Life::Left) {
            return Ok(());
        }
        self.nodes[i].restarts += 1;
        self.obs.restarted(i, self.now);
        self.boot(i, false)?;
        self.join(i);
        Ok(())
    }

    /// The nodes a fault applies to.
    pub(super) fn select(&mut self, f: &FaultSpec) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        if let Some(i) = f.node {
            out.push(i);
        }
        if let Some(ns) = &f.nodes {
            out.extend(ns);
        }
        if let Some(rs) = &f.regions {
            let regions: Vec<u16> = rs.iter().filter_map(|r| self.net.region_index(r)).collect();
            out.extend((0..self.nodes.len()).filter(|&i| regions.contains(&self.nodes[i].place.0)));
        }
        let random = f.random.or_else(|| {
            f.fraction
                .map(|fr| (fr * self.base_nodes as f64).round() as usize)
        });
        if let Some(k) = random {
            let mut pool: Vec<usize> = (0..self.nodes.len())
                .filter(|i| {
                    !self.seeds.contains(i)
                        && !out.contains(i)
                        && self.nodes[*i].life != Life::Crashed
                })
                .collect();
            for _ in 0..k.min(pool.len()) {
                let j = sim_rng::below(&mut self.rng, pool.len());
                out.push(pool.swap_remove(j));
            }
        }
        out.retain(|&i| i < self.nodes.len());
        out
    }

    pub(super) fn fault(&mut self, k: usize) -> anyhow::Result<()> {
        let f = self.scenario.faults[k].clone();
        let targets = self.select(&f);
        match f.action {
            FaultAction::Crash | FaultAction::RegionOutage => {
                targets.into_iter().for_each(|i| self.crash(i))
            }
            FaultAction::Restart => {
                for i in targets {
                    self.restart(i)?;
                }
            }
            FaultAction::Leave => {
                let now = self.now;
                for i in targets {
                    if let Some(node) = self.nodes[i].node.as_mut()
                        && node.handle_command(now, Command::Leave).is_ok()
                    {
                        self.nodes[i].life = Life::Leaving;
                    }
                    self.after_step(i, None);
                }
            }
            FaultAction::Partition => {
                self.split_until = Time::from_nanos(u64::MAX);
                self.net.partition(&targets, f.direction)
            }
            FaultAction::Heal => {
                self.split_until = self.now + self.heal_grace;
                self.net.heal(self.now)
            }
            FaultAction::KillPrimary => self.kill_primary(k, 0),
            FaultAction::Loss => self.net.loss = f.loss.unwrap_or(0.0),
            FaultAction::Slow => {
                for i in targets {
                    self.nodes[i].slow = f.delay.unwrap_or_default();
                }
            }
            FaultAction::Churn => self.churn_tick(k)?,
            FaultAction::RollingRestart => {
                let interval = f.interval.unwrap_or(Duration::from_secs(10));
                let downtime = f.downtime.unwrap_or(DEFAULT_DOWNTIME);
                for (step, i) in targets.into_iter().enumerate() {
                    let at = self.now + interval * step as u32;
                    self.schedule(at, Action::Crash { node: i });
                    self.schedule(at + downtime, Action::Restart { node: i });
                }
            }
        }
        Ok(())
    }

    /// One churn step: a random running node crashes and a new one joins; the next step
    /// is scheduled so that `rate` of the nodes are replaced per minute.
    pub(super) fn churn_tick(&mut self, k: usize) -> anyhow::Result<()> {
        let f = self.scenario.faults[k].clone();
        let until = Time::from_duration(f.until.unwrap_or(f.at));
        if self.now > until {
            return Ok(());
        }
        let per_minute = f.rate.unwrap_or(0.0) * self.base_nodes as f64;
        if per_minute <= 0.0 {
            return Ok(());
        }
        let victim = self.select(&FaultSpec {
            random: Some(1),
            node: None,
            nodes: None,
            fraction: None,
            regions: None,
            ..f.clone()
        });
        victim.into_iter().for_each(|i| self.crash(i));
        let i = self.nodes.len();
        self.add_node(i);
        self.boot(i, false)?;
        self.join(i);
        let gap = Duration::from_secs_f64(60.0 / per_minute);
        self.schedule(self.now + gap, Action::ChurnTick { fault: k });
        Ok(())
    }

    /// One write of the state workload by a random running node; schedules the next.
    pub(super) fn state_write(&mut self) {
        let Some(spec) = self.scenario.state.clone() else {
            return;
        };
        if self.now > Time::from_duration(spec.until) || spec.writes_per_sec <= 0.0 {
            return;
        }
        let up: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].life == Life::Up)
            .collect();
        if !up.is_empty() {
            let i = up[sim_rng::below(&mut self.rng, up.len())];
            let key = format!("k{}", sim_rng::below(&mut self.rng, spec.keys.max(1)));
            let value = (sim_rng::unit(&mut self.rng) >= spec.delete_share).then(|| {
                let fill = char::from(b'a' + sim_rng::below(&mut self.rng, 26) as u8);
                let len = 1 + sim_rng::below(&mut self.rng, spec.value_len.max(1));
                fill.to_string().repeat(len)
            });
            let now = self.now;
            if let Some(node) = self.nodes[i].node.as_mut()
                && node
                    .handle_command(now, Command::SetKv { key, value })
                    .is_ok()
            {
                self.state_writes += 1;
            }
            self.after_step(i, None);
        }
        let gap = -(1.0 - sim_rng::unit(&mut self.rng)).ln() / spec.writes_per_sec;
        self.schedule(self.now + Duration::from_secs_f64(gap), Action::StateWrite);
    }

    /// Every check interval: each running node's primary of each service, compared.
    pub(super) fn primary_check(&mut self) {
        let Some(p) = self.scenario.primaries.clone() else {
            return;
        };
        let up: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].life == Life::Up)
            .collect();
        let split = self.now < self.split_until;
        for k in 0..p.services {
            let service = crate::primaries::service_name(k);
            // A node that has not joined yet (it knows fewer than half the running
            // nodes) elects from what little it knows: its answer is not counted.
            let views: Vec<Option<String>> = up
                .iter()
                .filter_map(|&i| self.nodes[i].node.as_ref())
                .filter(|n| 2 * n.members().live_count() >= up.len())
                .map(|n| crate::primaries::elect(n, &service, &mut self.primary_cache))
                .collect();
            let by_name = &self.by_name;
            let nodes = &self.nodes;
            let alive = |name: &str| {
                by_name
                    .get(name)
                    .is_some_and(|&i| nodes[i].life == Life::Up)
            };
            self.primary_watch
                .check(&service, &views, alive, split, self.now, p.check);
        }
        self.schedule(self.now + p.check, Action::PrimaryCheck);
    }

    /// Crashes the primary of service `round % services` (as the first running node sees
    /// it), restarts it after the fault's downtime, and schedules the next round.
    pub(super) fn kill_primary(&mut self, fault: usize, round: usize) {
        let (Some(p), f) = (
            self.scenario.primaries.clone(),
            self.scenario.faults[fault].clone(),
        ) else {
            return;
        };
        let until = Time::from_duration(f.until.unwrap_or(f.at));
        if self.now > until {
            return;
        }
        let service = crate::primaries::service_name(round % p.services);
        let viewer = (0..self.nodes.len()).find(|&i| self.nodes[i].life == Life::Up);
        let victim = viewer
            .and_then(|i| self.nodes[i].node.as_ref())
            .and_then(|n| crate::primaries::elect(n, &service, &mut self.primary_cache))
            .and_then(|name| self.by_name.get(name.as_str()).copied())
            .filter(|&i| self.nodes[i].life == Life::Up);
        if let Some(i) = victim {
            let name = self.nodes[i].name.to_string();
            self.primary_watch.killed(&service, &name, self.now);
            self.crash(i);
            let downtime = f.downtime.unwrap_or(DEFAULT_DOWNTIME);
            self.schedule(self.now + downtime, Action::Restart { node: i });
        }
        let interval = f.interval.unwrap_or(Duration::from_secs(10));
        self.schedule(
            self.now + interval,
            Action::KillPrimary {
                fault,
                round: round + 1,
            },
        );
    }

    /// What the primary watch saw.
    pub fn primary_watch(&self) -> &crate::primaries::PrimaryWatch {
        &self.primary_watch
    }

    /// Pairs (holder, owner) of running nodes where the holder's copy of the owner's
    /// replicated map differs from the owner's own, out of all such pairs.
    pub fn state_disagreements(&self) -> (usize, usize) {
        let up = up_nodes(&self.nodes);
        let (mut differ, mut pairs) = (0, 0);
        for owner in &up {
            let own = owner
                .kv(owner.name())
                .map(|m| m.summary())
                .unwrap_or_default();
            for holder in &up {
                if holder.name() == owner.name() {
                    continue;
                }
                pairs += 1;
                let held = holder
                    .kv(owner.name())
                    .map(|m| m.summary())
                    .unwrap_or_default();
                if held != own {
                    differ += 1;
                }
            }
        }
        (differ, pairs)
    }

    /// Writes made by the state workload.
    pub fn state_writes(&self) -> u64 {
        self.state_writes
    }
}
