//! Applying membership updates: alive, suspect, dead and leave, from gossip, piggyback
//! or push-pull, and refuting news about this node.
//!
//! Precedence: a higher incarnation wins; at equal incarnation `Alive < Suspect < Dead`,
//! and `Left` overrides every state at its incarnation. Only a member itself raises its
//! incarnation, which is how it refutes, and it signs what it says about itself: an
//! `Alive` or `Leave` is believed only if it verifies with the key the member's name is
//! bound to (first come: the key of its first record, until the member has failed or
//! left). Anyone may accuse (suspect, dead, force-leave), but only at the incarnation
//! held. Every accepted update is queued again for gossip, so news spreads epidemically.

use crate::proto::event::{CommandError, Event};
use crate::proto::member::Proof;
use crate::proto::node::{Node, Phase};
use crate::proto::stats::Refusal;
use crate::proto::suspicion::Suspicion;
use crate::proto::time::Time;
use crate::proto::timer::Timer;
use crate::wire::{MemberState, Message, Name, NodeKey, Profile, Signature, Tags, signed};

impl Node {
    /// An alive announcement, or an alive record of a table; `health` is the score the
    /// member announced with this incarnation, `key` and `sig` its node key and its
    /// signature of the three. Believed only if the signature verifies with the key the
    /// name is bound to (or, for a name not bound here, with the key it carries); a key
    /// other than the bound one is refused while the member is live.
    pub(super) fn apply_alive(
        &mut self,
        now: Time,
        profile: Profile,
        incarnation: u64,
        health: u8,
        key: NodeKey,
        sig: Signature,
    ) {
        if profile.name == self.me {
            if key != self.signer.key() {
                // Someone else claims our name: nobody who holds us believes it.
                self.stats.refused.add(Refusal::NameTaken);
                return;
            }
            // A record of us from our past life: out-bid it.
            if incarnation > self.incarnation()
                && self.phase == Phase::Running
                && self.verified_alive(&profile, incarnation, health, &key, &sig)
            {
                self.refute(now, incarnation);
            }
            return;
        }
        if !self.certified_alive(&profile.name, profile.addr, &key) {
            return;
        }
        let Some(i) = self.members.position(&profile.name) else {
            if self.members.len() >= self.config.max_members {
                self.stats.refused.add(Refusal::MembersFull);
                return;
            }
            if !self.verified_alive(&profile, incarnation, health, &key, &sig) {
                return;
            }
            let name = profile.name.clone();
            let msg = Message::Alive {
                profile: profile.clone(),
                incarnation,
                health,
                key,
                sig,
            };
            let proof = self.verifier.share(Proof::alive(key, sig));
            let i = self.members.insert(
                profile,
                incarnation,
                MemberState::Alive,
                proof,
                now,
                &mut self.rng,
            );
            self.members.set_health(i, health);
            self.enqueue(name, &msg);
            self.emit(i, Event::MemberJoined);
            return;
        };
        let m = self.members.at(i);
        let old = m.state();
        if key == m.key() {
            if incarnation <= m.incarnation() {
                return;
            }
        } else if old.is_live() {
            // The name is bound to another key while its member is live.
            self.stats.refused.add(Refusal::NameTaken);
            return;
        }
        // Same key at a newer incarnation; or a new key for a failed or departed name
        // (a member back with a new key pair), at whatever incarnation it starts from.
        if !self.verified_alive(&profile, incarnation, health, &key, &sig) {
            return;
        }
        let msg = Message::Alive {
            profile: profile.clone(),
            incarnation,
            health,
            key,
            sig,
        };
        self.members.set_health(i, health);
        let proof = self.verifier.share(Proof::alive(key, sig));
        self.members.set_proof(i, proof);
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

    /// Whether `sig` is `key`'s signature of this alive record; counts a refusal if not.
    fn verified_alive(
        &mut self,
        profile: &Profile,
        incarnation: u64,
        health: u8,
        key: &NodeKey,
        sig: &Signature,
    ) -> bool {
        let statement = signed::alive_statement(self.cluster, profile, incarnation, health);
        self.verified(key, &statement, sig)
    }

    /// Whether `sig` is `key`'s signature of `statement`; counts a refusal
    /// (`bad_signature`) if not. Every check of another member's word goes through here.
    pub(super) fn verified(&mut self, key: &NodeKey, statement: &[u8], sig: &Signature) -> bool {
        let good = self.verifier.verify(key, statement, sig);
        if !good {
            self.stats.refused.add(Refusal::BadSignature);
        }
        good
    }

    /// The position of the member a suspect or dead notice is about, if the notice is
    /// about the incarnation held (an older one is stale; a newer one is refused: an
    /// accusation never raises an incarnation, only the member itself does). A current
    /// notice about this node itself is refuted here (and yields `None`).
    fn accused(&mut self, now: Time, name: &Name, incarnation: u64) -> Option<usize> {
        if *name == self.me {
            if incarnation >= self.incarnation() && self.phase == Phase::Running {
                let mine = self.incarnation();
                self.refute(now, mine);
            }
            return None;
        }
        let i = self.members.position(name)?;
        let held = self.members.at(i).incarnation();
        if incarnation > held {
            self.stats.refused.add(Refusal::AccusationAhead);
            return None;
        }
        (incarnation == held).then_some(i)
    }

    /// A suspicion raised or confirmed by `from`.
    pub(super) fn apply_suspect(&mut self, now: Time, name: &Name, incarnation: u64, from: &Name) {
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

    /// A death notice: `from` declared `name` failed.
    pub(super) fn apply_dead(&mut self, now: Time, name: &Name, incarnation: u64, from: &Name) {
        let Some(i) = self.accused(now, name, incarnation) else {
            return;
        };
        if !self.members.at(i).state().is_live() {
            return;
        }
        self.members
            .set_liveness(i, incarnation, MemberState::Dead, now);
        self.suspicions.remove(name);
        self.enqueue(
            name.clone(),
            &Message::Dead {
                name: name.clone(),
                incarnation,
                from: from.clone(),
            },
        );
        self.emit(i, Event::MemberFailed);
    }

    /// A leave notice. Signed (`sig`), it is the member's own word and moves it to
    /// `Left` from any state at its incarnation or a newer one; unsigned, it is a
    /// force-leave by another node, which only moves a member held failed at that very
    /// incarnation.
    pub(super) fn apply_leave(
        &mut self,
        now: Time,
        name: &Name,
        incarnation: u64,
        sig: Option<Signature>,
    ) {
        if *name == self.me {
            if incarnation >= self.incarnation() && self.phase == Phase::Running {
                // Our own signed leave from a past life, or anyone's force-leave of us.
                let past_life = sig.is_some_and(|sig| {
                    let statement = signed::leave_statement(self.cluster, name, incarnation);
                    self.verifier.verify(&self.signer.key(), &statement, &sig)
                });
                let seen = if past_life {
                    incarnation
                } else {
                    self.incarnation()
                };
                self.refute(now, seen);
            }
            return;
        }
        let Some(i) = self.members.position(name) else {
            return;
        };
        let m = self.members.at(i);
        let (held, state) = (m.incarnation(), m.state());
        match sig {
            Some(sig) => {
                if incarnation < held || (state == MemberState::Left && incarnation == held) {
                    return;
                }
                let key = m.key();
                let statement = signed::leave_statement(self.cluster, name, incarnation);
                if !self.verified(&key, &statement, &sig) {
                    return;
                }
                self.set_leave_sig(i, sig);
            }
            None => {
                if incarnation > held {
                    self.stats.refused.add(Refusal::AccusationAhead);
                    return;
                }
                if state != MemberState::Dead || incarnation < held {
                    return;
                }
            }
        }
        self.members
            .set_liveness(i, incarnation, MemberState::Left, now);
        self.suspicions.remove(name);
        self.enqueue(
            name.clone(),
            &Message::Leave {
                name: name.clone(),
                incarnation,
                sig,
            },
        );
        self.emit(i, Event::MemberLeft);
    }

    /// Out-bids a suspicion or death notice about this node with a higher incarnation
    /// than `seen`: our own (for an accusation) or one we signed in a past life.
    fn refute(&mut self, now: Time, seen: u64) {
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

    /// Signs and queues an alive announcement of this node at its current incarnation.
    pub(super) fn announce_self(&mut self) {
        let health = self.announced_health();
        self.set_advertised_health(health);
        let Some(msg) = self.sign_self() else {
            return;
        };
        self.enqueue(self.me.clone(), &msg);
    }

    /// Signs this node's record as it stands (profile, incarnation, advertised health),
    /// keeps the signature in its own record (tables carry it), and returns the `Alive`.
    pub(super) fn sign_self(&mut self) -> Option<Message> {
        let i = self.members.position(&self.me)?;
        let m = self.members.at(i);
        let (profile, incarnation, health) = (self.members.profile(m), m.incarnation(), m.health());
        let sig = self
            .signer
            .sign_alive(self.cluster, &profile, incarnation, health);
        let key = self.signer.key();
        let proof = self.verifier.share(Proof::alive(key, sig));
        self.members.set_proof(i, proof);
        Some(Message::Alive {
            profile,
            incarnation,
            health,
            key,
            sig,
        })
    }

    /// Keeps member `i`'s signature of its leave with its record (tables relay it).
    pub(super) fn set_leave_sig(&mut self, i: usize, sig: Signature) {
        let proof = Proof {
            leave_sig: Some(sig),
            ..Proof::clone(self.members.at(i).proof())
        };
        let proof = self.verifier.share(proof);
        self.members.set_proof(i, proof);
    }

    /// Notes `health` as what this node announces, in its own record too (push-pull
    /// tables carry it). The caller signs the record again.
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
        self.apply_dead(now, name, incarnation, &me);
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
        self.apply_leave(now, name, incarnation, None);
        Ok(())
    }
}
