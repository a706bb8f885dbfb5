//! The router: where a caller should send traffic for a service, from a snapshot of the
//! cluster's service instances, with each service's failover rule applied over time.
//!
//! [`Router`] is pure: it reads no clock, does no I/O and holds no task. Time comes in as
//! `now` on every call ([`Time`], the core's clock); rule changes come out of
//! [`Router::poll_change`]; [`Router::poll_timeout`] says when the next one falls due.
//! The same calls with the same arguments give the same answers on every machine.
//!
//! # The routing contract
//!
//! **Healthy.** An instance takes traffic when its status does
//! ([`HealthStatus::takes_traffic`]): `passing`, or `warning` when the query says
//! `warning_ok`; never `critical` or `draining`. The catalog holds the instances of alive
//! and suspect members only (failed and left members' instances are ignored if present):
//! SWIM suspicion is not failure, so a suspect member's instances still take traffic, but
//! after the alive ones of the same tier.
//!
//! **Order inside a region.** The caller's zone first, then the rest of the region (the
//! zone counts only in the caller's own region); inside each tier alive before suspect,
//! then weighted rendezvous hashing: each instance scores `-ln(u) / weight` with `u` in
//! (0, 1] from a stable hash of (caller key, node, service), lowest first. Each caller
//! key gets a stable order, callers' first choices spread in proportion to weight, and an
//! instance leaving only moves the callers that had it first. Weight 0 is a standby, last
//! in its tier. Ties go by node name, then port, then address.
//!
//! **The rule's trigger** counts the *passing* instances of the service in the caller's
//! region (warning ones do not count, whatever the query says: the rule is shared by every
//! caller of the region). The rule state is kept per (service, caller region):
//!
//! | state | regions in force, in order | leaves when |
//! |---|---|---|
//! | `normal` | the caller's region | the trigger holds: `pending` |
//! | `pending` | the caller's region | the trigger stops holding: `normal`; it has held for `timeout`: `failed-over` |
//! | `failed-over` | the action's regions, then the caller's region if it has healthy instances left (a `fewer-than N` trigger leaves some) | the trigger stops holding: `failing-back` (with a manual failback it stays, waiting for a reset) |
//! | `failing-back` | as `failed-over` | the trigger has not held for the failback hold: `normal`; it holds again: `failed-over` (no new timeout) |
//! | `remote` | the action's regions | the caller's region gets an instance: `normal`, or `pending` if the trigger holds |
//! | `forced` | the region an operator chose | [`Router::reset`] |
//!
//! The action's regions are those with a healthy instance, never the caller's own:
//! `nearest` takes every other region by this agent's measured round-trip time
//! ([`Catalog::region_rtt`]), unmeasured ones last, ties by name; a list takes the listed
//! regions in list order. `remote` applies at once when the caller's region has no
//! instance of the service at all, not even a critical one: there is nothing to flap.
//! Every instance listed is healthy; regions in force without one add nothing.
//!
//! Timeouts and holds count from when the trigger took its current value, as seen at a
//! call. States advance only in [`Router::update`], [`Router::tick`], [`Router::force`],
//! [`Router::reset`], and lazily for the caller's pair in [`Router::route`]: a `pending`
//! whose timeout has passed is acted on at the first such call at or after its deadline.
//! [`Router::update`] first advances every state under the old catalog (it was in force
//! until `now`), then applies the new one. Leaving `forced` or `remote` judges the trigger
//! by how long it has really held, so a reset during a long outage fails over at once.
//!
//! **Operators.** [`Router::force`] sends a service's traffic, for every caller region,
//! to one region (its healthy instances) until [`Router::reset`]. A reset also ends a
//! manual failback's wait, and returns to the rule.
//!
//! **Queries.** [`RouteQuery::region`] restricts an answer to one region's healthy
//! instances: no failover and no force apply (the rule's state is still reported and
//! still advances). [`RouteQuery::limit`] keeps the first instances. A service with no
//! live instance anywhere is [`RouteError::UnknownService`]; a known one with nothing
//! healthy is an answer with no instances and a reason saying so.
//!
//! **Memory.** States are kept for the agent's home region (every service, from the first
//! update, so its changes are reported before anyone asks) and for caller regions first
//! seen in a query, as long as the catalog names the region (an instance there, or a
//! measured RTT) and the service exists. A query from a region the catalog never names
//! is answered afresh (it can only be `remote` or `forced`) and stores nothing, so
//! client-supplied regions cannot grow the router.

mod failover;
mod order;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use serde::{Serialize, Serializer};

pub use self::failover::RuleState;
use self::failover::{Facts, Input, Track, action_text, failback_text, reason};
use self::order::{action_regions, order_instances};
use super::HealthStatus;
use super::rule::FailoverRule;
use crate::proto::Time;
use crate::wire::MemberState;

/// Most rule changes kept for [`Router::poll_change`]: one per state change, so a driver
/// that polls after every call never comes near it; a driver that never polls loses the
/// oldest instead of growing without bound.
pub const MAX_QUEUED_CHANGES: usize = 4096;

/// Most state steps one pair takes in one call. Every step either settles or enters a
/// state the next step can leave only on a trigger change or a later deadline, so two is
/// the longest real chain (`forced` or `remote` → `pending` → `failed-over`); the bound
/// is a guard.
const MAX_STEPS: usize = 8;

/// One instance of a service: a member that registered it, and its health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The member's node name.
    pub node: String,
    /// Where the service listens.
    pub address: IpAddr,
    /// The service's port.
    pub port: u16,
    /// The member's region.
    pub region: String,
    /// The member's zone (inside its region).
    pub zone: String,
    /// The member's liveness: `Alive` or `Suspect` (others are ignored).
    pub member: MemberState,
    /// The instance's health.
    pub status: HealthStatus,
    /// Relative share of callers' first choices (0: a standby, last in its tier).
    pub weight: u32,
}

/// A snapshot of the cluster's services as this agent sees them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    /// Every service's instances on live members, by service name.
    pub services: BTreeMap<String, Vec<Instance>>,
    /// Failover rules by service name; a service without one has
    /// [`FailoverRule::default`].
    pub rules: BTreeMap<String, FailoverRule>,
    /// This agent's measured round-trip time to each region (for `nearest`).
    pub region_rtt: BTreeMap<String, Duration>,
}

/// Who asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The caller's region: the rule state is the one of this region.
    pub region: String,
    /// The caller's zone, preferred inside its region.
    pub zone: String,
    /// The key for rendezvous hashing: the agent's node name by default, or a key the
    /// client supplies, so one key always gets the same order.
    pub key: String,
}

/// What a caller asks for besides the service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteQuery {
    /// Keep at most this many instances.
    pub limit: Option<usize>,
    /// Count `warning` instances as healthy.
    pub warning_ok: bool,
    /// Only this region's healthy instances: no failover applies.
    pub region: Option<String>,
}

/// Where to send traffic for a service, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteAnswer {
    /// The service asked for.
    pub service: String,
    /// The catalog generation the answer comes from (see [`Router::index`]).
    pub index: u64,
    /// The failover rule and its state for the caller's region.
    pub rule: RuleView,
    /// Healthy instances, best first.
    pub instances: Vec<InstanceView>,
}

/// A failover rule and its state, as shown in an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleView {
    /// The rule's state for the caller's region.
    pub state: RuleState,
    /// `none-passing` or `fewer-than N`.
    pub trigger: String,
    /// `nearest` or the action's regions joined by `, `.
    pub action: String,
    /// The regions in force, in order.
    pub regions: Vec<String>,
    /// A sentence saying why.
    pub reason: String,
    /// How long the state has lasted, in milliseconds.
    pub since_ms: u64,
    /// The rule's timeout, in milliseconds.
    pub timeout_ms: u64,
    /// The failback hold (`10s`) or `manual`.
    pub failback: String,
}

/// One instance, as shown in an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceView {
    /// The member's node name.
    pub node: String,
    /// Where the service listens.
    pub address: IpAddr,
    /// The service's port.
    pub port: u16,
    /// The member's region.
    pub region: String,
    /// The member's zone.
    pub zone: String,
    /// The instance's health.
    pub status: HealthStatus,
    /// The instance's weight.
    pub weight: u32,
    /// The member's liveness, `alive` or `suspect`.
    #[serde(serialize_with = "member_name")]
    pub member: MemberState,
}

impl From<&Instance> for InstanceView {
    fn from(i: &Instance) -> Self {
        InstanceView {
            node: i.node.clone(),
            address: i.address,
            port: i.port,
            region: i.region.clone(),
            zone: i.zone.clone(),
            status: i.status,
            weight: i.weight,
            member: i.member,
        }
    }
}

fn member_name<S: Serializer>(member: &MemberState, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(member.as_str())
}

/// A rule's state changed for a service and caller region: for logs and events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleChange {
    /// The service.
    pub service: String,
    /// The caller region whose state changed.
    pub region: String,
    /// The state before.
    pub from: RuleState,
    /// The state after (`forced` to `forced` when an operator picks another region).
    pub to: RuleState,
    /// A sentence saying why, as in [`RuleView::reason`] for a caller that does not count
    /// `warning` as healthy.
    pub reason: String,
}

/// Why the router refused a query or command. Nothing changed when it did.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No live member has an instance of the service.
    #[error("no instance of service {service:?} is registered")]
    UnknownService {
        /// The service asked for.
        service: String,
    },
    /// [`Router::force`] named a region with no instance of the service.
    #[error("region {region:?} has no instance of service {service:?}")]
    NoInstancesInRegion {
        /// The service.
        service: String,
        /// The region asked for.
        region: String,
    },
}

/// Route answers and failover rule states over a catalog snapshot. See the module doc
/// for the contract.
#[derive(Debug, Clone)]
pub struct Router {
    /// The agent's own region: its states are kept for every service.
    home: String,
    /// The latest snapshot.
    catalog: Catalog,
    /// Catalog generation: bumped by each update that changes the catalog.
    index: u64,
    /// Regions the catalog names (instances or RTTs), plus home.
    known: BTreeSet<String>,
    /// Rule states by (service, caller region).
    tracks: BTreeMap<(String, String), Track>,
    /// Services an operator forced, to their region.
    forced: BTreeMap<String, String>,
    /// Rule changes not polled yet, oldest first.
    changes: VecDeque<RuleChange>,
    /// Changes dropped because the queue was full.
    dropped_changes: u64,
}

impl Router {
    /// An empty router (index 0) for an agent in `home_region`.
    pub fn new(home_region: impl Into<String>) -> Router {
        let home = home_region.into();
        Router {
            known: BTreeSet::from([home.clone()]),
            home,
            catalog: Catalog::default(),
            index: 0,
            tracks: BTreeMap::new(),
            forced: BTreeMap::new(),
            changes: VecDeque::new(),
            dropped_changes: 0,
        }
    }

    /// The catalog generation: 0 before the first update, then bumped by every update
    /// whose catalog differs from the one before.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The latest catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Takes a new snapshot at `now`. States first advance under the old one (it was in
    /// force until now), then under the new one.
    pub fn update(&mut self, now: Time, catalog: Catalog) {
        self.tick(now);
        if catalog == self.catalog {
            return;
        }
        self.index += 1;
        self.catalog = catalog;
        self.known = known_regions(&self.catalog, &self.home);
        let (catalog, known) = (&self.catalog, &self.known);
        self.tracks
            .retain(|(service, region), _| exists(catalog, service) && known.contains(region));
        let services: Vec<String> = self
            .catalog
            .services
            .keys()
            .filter(|s| exists(&self.catalog, s))
            .cloned()
            .collect();
        for service in services {
            let home = self.home.clone();
            self.track_mut(now, &service, &home);
        }
        self.tick(now);
    }

    /// Advances every rule state to `now`. The driver calls it at [`Router::poll_timeout`]
    /// (or every rule's `retry`; later only delays the change).
    pub fn tick(&mut self, now: Time) {
        let mut out = Vec::new();
        for ((service, region), track) in &mut self.tracks {
            let pair = Pair {
                catalog: &self.catalog,
                forced: &self.forced,
                service,
                region,
            };
            out.extend(pair.advance(track, now, None));
        }
        self.queue(out);
    }

    /// Where `caller` should send traffic for `service` at `now`. Advances the rule state
    /// of (`service`, the caller's region) first, starting it if this is its first query.
    pub fn route(
        &mut self,
        now: Time,
        service: &str,
        caller: &Caller,
        query: &RouteQuery,
    ) -> Result<RouteAnswer, RouteError> {
        if !exists(&self.catalog, service) {
            return Err(RouteError::UnknownService {
                service: service.into(),
            });
        }
        let region = caller.region.as_str();
        let pair = Pair {
            catalog: &self.catalog,
            forced: &self.forced,
            service,
            region,
        };
        let (track, changes) = if self.known.contains(region) {
            let track = self
                .tracks
                .entry((service.into(), region.into()))
                .or_insert_with(|| pair.new_track(now));
            let changes = pair.advance(track, now, None);
            (track.clone(), changes)
        } else {
            // A region the catalog never names: remote or forced, nothing to remember.
            let mut track = pair.new_track(now);
            pair.advance(&mut track, now, None);
            (track, Vec::new())
        };
        self.queue(changes);
        Ok(self.answer(now, service, caller, query, &track))
    }

    /// Sends `service`'s traffic, for every caller region, to `region` from `now` until
    /// [`Router::reset`]. Forcing to another region restarts the state's clock.
    pub fn force(&mut self, now: Time, service: &str, region: &str) -> Result<(), RouteError> {
        if !exists(&self.catalog, service) {
            return Err(RouteError::UnknownService {
                service: service.into(),
            });
        }
        if !live(&self.catalog, service).any(|i| i.region == region) {
            return Err(RouteError::NoInstancesInRegion {
                service: service.into(),
                region: region.into(),
            });
        }
        let before = self.forced.insert(service.into(), region.into());
        if before.as_deref() == Some(region) {
            return Ok(());
        }
        let home = self.home.clone();
        self.track_mut(now, service, &home);
        let mut out = Vec::new();
        for ((s, r), track) in self.tracks.iter_mut().filter(|((s, _), _)| s == service) {
            let pair = Pair {
                catalog: &self.catalog,
                forced: &self.forced,
                service: s,
                region: r,
            };
            if track.state == RuleState::Forced {
                // Another region: the same state, a new clock and a new reason.
                track.enter(now, RuleState::Forced);
                out.push(pair.change(track, now, RuleState::Forced, None));
            }
            out.extend(pair.advance(track, now, None));
        }
        self.queue(out);
        Ok(())
    }

    /// Ends a force of `service` and every manual failback's wait for it: its states
    /// return to the rule at `now`. Does nothing (and is fine) when neither applies.
    pub fn reset(&mut self, now: Time, service: &str) -> Result<(), RouteError> {
        let was_forced = self.forced.remove(service).is_some();
        if !was_forced && !exists(&self.catalog, service) {
            return Err(RouteError::UnknownService {
                service: service.into(),
            });
        }
        let rule = rule_for(&self.catalog, service);
        let cause = Some("reset by an operator");
        let mut out = Vec::new();
        for ((s, r), track) in self.tracks.iter_mut().filter(|((s, _), _)| s == service) {
            let pair = Pair {
                catalog: &self.catalog,
                forced: &self.forced,
                service: s,
                region: r,
            };
            if track.awaits_reset(&rule) {
                track.enter(now, RuleState::Normal);
                out.push(pair.change(track, now, RuleState::FailedOver, cause));
            }
            out.extend(pair.advance(track, now, cause));
        }
        self.queue(out);
        Ok(())
    }

    /// The oldest rule change not polled yet.
    pub fn poll_change(&mut self) -> Option<RuleChange> {
        self.changes.pop_front()
    }

    /// Rule changes dropped because nobody polled ([`MAX_QUEUED_CHANGES`]).
    pub fn dropped_changes(&self) -> u64 {
        self.dropped_changes
    }

    /// When a rule state next falls due (a `pending` timeout or a failback hold), if any:
    /// call [`Router::tick`] then.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.tracks
            .iter()
            .filter_map(|((service, _), track)| track.deadline(&rule_for(&self.catalog, service)))
            .min()
    }

    /// The state of (`service`, `region`), starting it at `now` if needed.
    fn track_mut(&mut self, now: Time, service: &str, region: &str) -> &mut Track {
        let pair = Pair {
            catalog: &self.catalog,
            forced: &self.forced,
            service,
            region,
        };
        self.tracks
            .entry((service.into(), region.into()))
            .or_insert_with(|| pair.new_track(now))
    }

    fn queue(&mut self, changes: Vec<RuleChange>) {
        for c in changes {
            if self.changes.len() == MAX_QUEUED_CHANGES {
                self.changes.pop_front();
                self.dropped_changes += 1;
            }
            self.changes.push_back(c);
        }
    }

    fn answer(
        &self,
        now: Time,
        service: &str,
        caller: &Caller,
        query: &RouteQuery,
        track: &Track,
    ) -> RouteAnswer {
        let rule = rule_for(&self.catalog, service);
        let healthy = healthy_by_region(&self.catalog, service, query.warning_ok);
        let forced = self.forced.get(service).map(String::as_str);
        let regions = match &query.region {
            Some(region) => vec![region.clone()],
            None => regions_in_force(
                &self.catalog,
                &rule,
                &healthy,
                &caller.region,
                track.state,
                forced,
            ),
        };
        let limit = query.limit.unwrap_or(usize::MAX);
        let instances: Vec<InstanceView> = regions
            .iter()
            .filter_map(|r| healthy.get(r.as_str()))
            .flat_map(|list| order_instances(list.clone(), caller, service))
            .take(limit)
            .map(InstanceView::from)
            .collect();
        let mut why = match &query.region {
            Some(region) => format!(
                "restricted to region {region} by the query: the rule for {} ({}) does not apply",
                caller.region, track.state
            ),
            None => reason(
                track,
                now,
                Facts {
                    service,
                    region: &caller.region,
                    passing: passing(&self.catalog, service, &caller.region),
                    rule: &rule,
                    regions: &regions,
                    forced,
                },
            ),
        };
        if instances.is_empty() {
            why.push_str("; no healthy instance to send traffic to");
        }
        RouteAnswer {
            service: service.into(),
            index: self.index,
            rule: RuleView {
                state: track.state,
                trigger: rule.trigger.to_string(),
                action: action_text(&rule.action),
                regions,
                reason: why,
                since_ms: millis(now.saturating_since(track.since)),
                timeout_ms: millis(rule.timeout),
                failback: failback_text(rule.failback),
            },
            instances,
        }
    }
}

/// One (service, caller region) pair and the router state it is judged by.
#[derive(Clone, Copy)]
struct Pair<'a> {
    catalog: &'a Catalog,
    forced: &'a BTreeMap<String, String>,
    service: &'a str,
    region: &'a str,
}

impl Pair<'_> {
    fn rule(self) -> FailoverRule {
        rule_for(self.catalog, self.service)
    }

    fn holds(self, rule: &FailoverRule) -> bool {
        rule.trigger
            .holds(passing(self.catalog, self.service, self.region))
    }

    fn input(self, rule: &FailoverRule) -> Input<'_> {
        Input {
            registered: live(self.catalog, self.service).any(|i| i.region == self.region),
            forced: self.forced.contains_key(self.service),
            rule,
        }
    }

    /// A new state for the pair, first seen at `now`.
    fn new_track(self, now: Time) -> Track {
        let rule = self.rule();
        Track::new(now, self.holds(&rule), self.input(&rule))
    }

    /// Observes the trigger at `now` and steps `track` until it settles; returns the
    /// changes (the first one's reason prefixed with `cause`).
    fn advance(self, track: &mut Track, now: Time, mut cause: Option<&str>) -> Vec<RuleChange> {
        let rule = self.rule();
        track.observe(now, self.holds(&rule));
        let input = self.input(&rule);
        let mut out = Vec::new();
        for _ in 0..MAX_STEPS {
            let Some(next) = track.next(now, input) else {
                break;
            };
            let from = track.state;
            track.enter(now, next);
            out.push(self.change(track, now, from, cause.take()));
        }
        out
    }

    /// The change from `from` to `track`'s state, explained as a caller that does not
    /// count warning as healthy would see it.
    fn change(self, track: &Track, now: Time, from: RuleState, cause: Option<&str>) -> RuleChange {
        let rule = self.rule();
        let healthy = healthy_by_region(self.catalog, self.service, false);
        let forced = self.forced.get(self.service).map(String::as_str);
        let regions = regions_in_force(
            self.catalog,
            &rule,
            &healthy,
            self.region,
            track.state,
            forced,
        );
        let why = reason(
            track,
            now,
            Facts {
                service: self.service,
                region: self.region,
                passing: passing(self.catalog, self.service, self.region),
                rule: &rule,
                regions: &regions,
                forced,
            },
        );
        RuleChange {
            service: self.service.into(),
            region: self.region.into(),
            from,
            to: track.state,
            reason: match cause {
                Some(cause) => format!("{cause}: {why}"),
                None => why,
            },
        }
    }
}

/// The regions in force for a caller in `region` in `state`, in order.
fn regions_in_force<T>(
    catalog: &Catalog,
    rule: &FailoverRule,
    healthy: &BTreeMap<&str, T>,
    region: &str,
    state: RuleState,
    forced: Option<&str>,
) -> Vec<String> {
    if state == RuleState::Forced {
        return forced.map(String::from).into_iter().collect();
    }
    if !state.uses_action() {
        return vec![region.into()];
    }
    let mut regions = action_regions(&rule.action, healthy, region, &catalog.region_rtt);
    if healthy.contains_key(region) {
        regions.push(region.into());
    }
    regions
}

/// The service's instances on live members.
fn live<'a>(catalog: &'a Catalog, service: &str) -> impl Iterator<Item = &'a Instance> {
    catalog
        .services
        .get(service)
        .into_iter()
        .flatten()
        .filter(|i| i.member.is_live())
}

/// Whether any live member has an instance of the service.
fn exists(catalog: &Catalog, service: &str) -> bool {
    live(catalog, service).next().is_some()
}

/// Passing instances of the service in `region`: what the trigger counts.
fn passing(catalog: &Catalog, service: &str, region: &str) -> usize {
    live(catalog, service)
        .filter(|i| i.region == region && i.status.takes_traffic(false))
        .count()
}

/// The service's healthy instances by region (regions without one are absent).
fn healthy_by_region<'a>(
    catalog: &'a Catalog,
    service: &str,
    warning_ok: bool,
) -> BTreeMap<&'a str, Vec<&'a Instance>> {
    let mut by_region: BTreeMap<&str, Vec<&Instance>> = BTreeMap::new();
    for i in live(catalog, service).filter(|i| i.status.takes_traffic(warning_ok)) {
        by_region.entry(i.region.as_str()).or_default().push(i);
    }
    by_region
}

/// Regions the catalog names (any live instance or a measured RTT), plus `home`.
fn known_regions(catalog: &Catalog, home: &str) -> BTreeSet<String> {
    let mut known: BTreeSet<String> = catalog
        .services
        .values()
        .flatten()
        .filter(|i| i.member.is_live())
        .map(|i| i.region.clone())
        .collect();
    known.extend(catalog.region_rtt.keys().cloned());
    known.insert(home.into());
    known
}

/// The service's rule, or the default one.
fn rule_for(catalog: &Catalog, service: &str) -> FailoverRule {
    catalog.rules.get(service).cloned().unwrap_or_default()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
