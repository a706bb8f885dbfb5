//! Applying membership updates: alive, suspect, dead and leave, from gossip, piggyback
//! or push-pull, and refuting news about this node.
//!
//! Precedence: a higher incarnation wins; at equal incarnation `Alive < Suspect < Dead`,
//! and a failed member may still be marked `Left` (a force-leave or late leave notice).
//! Only a member itself raises its incarnation, which is how it refutes. Every accepted
//! update is queued again for gossip, so news spreads epidemically.

use crate::proto::event::{CommandError, Event};
use crate::proto::node::{Node, Phase};
use crate::proto::stats::Refusal;
use crate::proto::suspicion::Suspicion;
use crate::proto::time::Time;
use crate::proto::timer::Timer;
use crate::wire::{MemberState, Message, Name, Profile, Tags};

impl Node {
    /// An alive announcement, or an alive record of a table; `health` is the score the
    /// member announced with this incarnation.
    pub(super) fn apply_alive(
        &mut self,
        now: Time,
        profile: Profile,
        incarnation: u32,
        health: u8,
    ) {
        if profile.name == self.me {
            // A record of us from our past life (or an impostor): out-bid it.
            if incarnation > self.incarnation() && self.phase == Phase::Running {
                self.refute(now, incarnation);
            }
            return;
        }
        let Some(i) = self.members.position(&profile.name) else {
            if self.members.len() >= self.config.max_members {
                self.stats.refused.add(Refusal::MembersFull);
                return;
            }
            let name = profile.name.clone();
            let msg = Message::Alive {
                profile: profile.clone(),
                incarnation,
                health,
            };
            let i =
                self.members
                    .insert(profile, incarnation, MemberState::Alive, now, &mut self.rng);
            self.members.set_health(i, health);
            self.enqueue(name, &msg);
            self.emit(i, Event::MemberJoined);
            return;
        };
        let m = self.members.at(i);
        if incarnation <= m.incarnation() {
            return;
        }
        let old = m.state();
        let msg = Message::Alive {
            profile: profile.clone(),
            incarnation,
            health,
        };
        self.members.set_health(i, health);
        let changed = self.members.set_profile(i, &profile);
        self.members
            .set_liveness(i, incarnation, MemberState::Alive, now);
        self.suspicions.remove(&profile.name);
        self.enqueue(profile.name, &msg);
        match old {
            MemberState::Suspect => {
                self.stats.suspicions_cleared += 1;
                self.emit(i, Event::MemberAlive);
            }
            MemberState::Dead => {
                self.emit(i, Event::MemberAlive);
                self.schedule_heal_sync(now);
            }
            MemberState::Left => self.emit(i, Event::MemberJoined),
            MemberState::Alive if changed => self.emit(i, Event::MemberUpdated),
            MemberState::Alive => {}
        }
    }

    /// The position of the member a suspect, dead or leave notice is about, unless the
    /// notice is older than what we know of it, or about a member we never knew. A
    /// current notice about this node itself is refuted here (and yields `None`).
    fn accused(&mut self, now: Time, name: &Name, incarnation: u32) -> Option<usize> {
        if *name == self.me {
            if incarnation >= self.incarnation() && self.phase == Phase::Running {
                self.refute(now, incarnation);
            }
            return None;
        }
        let i = self.members.position(name)?;
        (incarnation >= self.members.at(i).incarnation()).then_some(i)
    }

    /// A suspicion raised or confirmed by `from`.
    pub(super) fn apply_suspect(&mut self, now: Time, name: &Name, incarnation: u32, from: &Name) {
        let Some(i) = self.accused(now, name, incarnation) else {
            return;
        };
        let m = self.members.at(i);
        match m.state() {
            MemberState::Dead | MemberState::Left => {}
            MemberState::Suspect
                if incarnation == m.incarnation() && self.suspicions.contains_key(name) =>
            {
                let Some(s) = self.suspicions.get_mut(name) else {
                    return;
                };
                if s.confirm(from) {
                    let deadline = s.deadline();
                    self.timers
                        .schedule(deadline, Timer::Suspicion { name: name.clone() });
                    self.enqueue(
                        name.clone(),
                        &Message::Suspect {
                            name: name.clone(),
                            incarnation,
                            from: from.clone(),
                        },
                    );
                }
            }
            MemberState::Suspect | MemberState::Alive => {
                let n = self.cluster_size();
                // Only the N − 2 members other than the suspect and the first suspector can
                // confirm: expect no more confirmations than that (none in a cluster of
                // two, where the timeout starts at the minimum).
                let expected = self
                    .config
                    .expected_confirmations
                    .min(n.saturating_sub(2) as u32);
                // A member that announced poor health answers late: its suspicion may not
                // shrink below (score + 1) minimum timeouts (never past the maximum), so
                // confirmations cannot outrun its refutation.
                let max = self.config.suspicion_max(n);
                let health = u32::from(self.members.at(i).health());
                let min = (self.config.suspicion_min(n) * (health + 1)).min(max);
                let s = Suspicion::new(incarnation, now, min, max, expected, from.clone());
                let deadline = s.deadline();
                self.suspicions.insert(name.clone(), s);
                self.members
                    .set_liveness(i, incarnation, MemberState::Suspect, now);
                self.timers
                    .schedule(deadline, Timer::Suspicion { name: name.clone() });
                self.enqueue(
                    name.clone(),
                    &Message::Suspect {
                        name: name.clone(),
                        incarnation,
                        from: from.clone(),
                    },
                );
                self.emit(i, Event::MemberSuspected);
                if *from != self.me {
                    self.maybe_start_check(now, name, incarnation);
                }
            }
        }
    }

    /// A death (`state == Dead`) or departure (`state == Left`) notice.
    pub(super) fn apply_dead(
        &mut self,
        now: Time,
        name: &Name,
        incarnation: u32,
        from: &Name,
        state: MemberState,
    ) {
        let Some(i) = self.accused(now, name, incarnation) else {
            return;
        };
        let m = self.members.at(i);
        let upgrade_to_left = m.state() == MemberState::Dead && state == MemberState::Left;
        if !m.state().is_live() && !upgrade_to_left {
            return;
        }
        self.members.set_liveness(i, incarnation, state, now);
        self.suspicions.remove(name);
        let msg = match state {
            MemberState::Left => Message::Leave {
                name: name.clone(),
                incarnation,
            },
            _ => Message::Dead {
                name: name.clone(),
                incarnation,
                from: from.clone(),
            },
        };
        self.enqueue(name.clone(), &msg);
        match state {
            MemberState::Left => self.emit(i, Event::MemberLeft),
            _ => self.emit(i, Event::MemberFailed),
        }
    }

    /// Out-bids a suspicion or death notice about this node with a higher incarnation.
    fn refute(&mut self, now: Time, seen: u32) {
        let Some(i) = self.members.position(&self.me) else {
            return;
        };
        let incarnation = seen.max(self.members.at(i).incarnation()).saturating_add(1);
        self.members
            .set_liveness(i, incarnation, MemberState::Alive, now);
        // Lifeguard: having to refute hints that we are the slow one. Raised before the
        // announcement, which carries the score.
        self.awareness.apply(1);
        self.announce_self();
        self.stats.refutations += 1;
    }

    /// Queues an alive announcement of this node at its current incarnation.
    pub(super) fn announce_self(&mut self) {
        let Some(m) = self.members.get(&self.me) else {
            return;
        };
        let health = self.announced_health();
        let msg = Message::Alive {
            profile: self.members.profile(m),
            incarnation: m.incarnation(),
            health,
        };
        self.set_advertised_health(health);
        self.enqueue(self.me.clone(), &msg);
    }

    /// Notes `health` as what this node announces, in its own record too (push-pull
    /// tables carry it).
    pub(super) fn set_advertised_health(&mut self, health: u8) {
        self.advertised_health = health;
        if let Some(i) = self.members.position(&self.me) {
            self.members.set_health(i, health);
        }
    }

    pub(super) fn on_suspicion_timer(&mut self, now: Time, name: &Name) {
        let Some(s) = self.suspicions.get(name) else {
            return;
        };
        if now < s.deadline() {
            return; // a later timer from before a confirmation moved the deadline, or early
        }
        let incarnation = s.incarnation;
        let current = self
            .members
            .get(name)
            .is_some_and(|m| m.state() == MemberState::Suspect && m.incarnation() == incarnation);
        if !current {
            self.suspicions.remove(name);
            return;
        }
        self.stats.deaths_declared += 1;
        tracing::debug!(member = %name, "suspicion timed out; declaring failed");
        let me = self.me.clone();
        self.apply_dead(now, name, incarnation, &me, MemberState::Dead);
        // The last word goes to the member itself: if it is alive after all (its acks
        // were lost, not it), it refutes at once. Otherwise it hears of its death only if
        // the gossip happens to reach it, and nobody sends to a member it holds failed,
        // so a verdict few others share could stand until a reconnect attempt, a minute
        // or more away.
        if let Some(addr) = self.members.get(name).map(|m| m.addr()) {
            self.send_revival(addr, name, incarnation);
        }
    }

    pub(super) fn set_tags(&mut self, now: Time, tags: Tags) -> Result<(), CommandError> {
        tags.validate()?;
        let i = self
            .members
            .position(&self.me)
            .expect("the local node is always in its table");
        let mut profile = self.members.profile(self.members.at(i));
        if profile.tags == tags {
            return Ok(());
        }
        profile.tags = tags;
        self.members.set_profile(i, &profile);
        self.bump_incarnation(now);
        Ok(())
    }

    /// Raises this node's incarnation and announces itself: how a change to its profile
    /// or health reaches the cluster.
    pub(super) fn bump_incarnation(&mut self, now: Time) {
        let Some(i) = self.members.position(&self.me) else {
            return;
        };
        let incarnation = self.members.at(i).incarnation().saturating_add(1);
        self.members
            .set_liveness(i, incarnation, MemberState::Alive, now);
        self.announce_self();
    }

    pub(super) fn force_leave(&mut self, now: Time, name: &Name) -> Result<(), CommandError> {
        let m = self
            .members
            .get(name)
            .ok_or_else(|| CommandError::UnknownMember(name.clone()))?;
        if m.state() != MemberState::Dead {
            return Err(CommandError::NotFailed {
                name: name.clone(),
                state: m.state().as_str(),
            });
        }
        let incarnation = m.incarnation();
        let me = self.me.clone();
        self.apply_dead(now, name, incarnation, &me, MemberState::Left);
        Ok(())
    }
}
