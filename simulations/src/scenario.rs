//! Scenario files: the cluster, the network and the faults of one simulated run, as
//! TOML. `simulations/scenarios/*.toml` are the shipped ones; `docs/simulator.md`
//! documents every key.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use muster::proto::SwimConfig;
use serde::Deserialize;

/// How the cluster forms at time zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Start {
    /// Every node starts knowing every other (as after a completed join), so the run
    /// measures steady-state behaviour from the first second.
    #[default]
    Converged,
    /// Every node joins through the seeds, spread over `join_spread`.
    Join,
}

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, used in reports.
    pub name: String,
    /// What the scenario shows.
    #[serde(default)]
    pub description: String,
    /// Cluster size (overridden by `--nodes`).
    pub nodes: usize,
    /// Virtual time to run.
    #[serde(with = "muster::duration")]
    pub duration: Duration,
    /// World seed (overridden by `--seed`).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Protocol preset: `lan`, `wan` or `local`.
    #[serde(default = "default_profile")]
    pub profile: String,
    /// How the cluster forms.
    #[serde(default)]
    pub start: Start,
    /// With `start = "join"`: join times are spread uniformly over this window.
    #[serde(default, with = "muster::duration::option")]
    pub join_spread: Option<Duration>,
    /// Number of seed nodes (the first ones).
    #[serde(default = "default_seeds")]
    pub seeds: usize,
    /// Overrides of protocol settings.
    #[serde(default)]
    pub config: ConfigOverrides,
    /// The network model.
    #[serde(default)]
    pub network: NetworkSpec,
    /// Scheduled faults.
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
    /// Writes to the nodes' replicated key-value state, if any.
    #[serde(default)]
    pub state: Option<StateSpec>,
    /// `primary`-mode services every node runs, if any (see `kill-primary`).
    #[serde(default)]
    pub primaries: Option<PrimarySpec>,
}

/// Services in `primary` mode on every node, and how often the nodes' views of their
/// primaries are compared. The services fail back (the default): claims, which services
/// without failback use, are made by the agent's service runtime, which the simulator
/// does not run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrimarySpec {
    /// How many services (`svc-0`, `svc-1`, ...), each with its own priority order.
    pub services: usize,
    /// How often every running node's answer is checked.
    #[serde(default = "default_primary_check", with = "muster::duration")]
    pub check: Duration,
}

fn default_primary_check() -> Duration {
    Duration::from_millis(100)
}

/// A workload on the replicated key-value state: random running nodes write (or delete)
/// random keys of their own maps, a Poisson stream of writes cluster-wide.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSpec {
    /// Writes per second across the cluster.
    pub writes_per_sec: f64,
    /// Keys per node the writes pick from.
    #[serde(default = "default_state_keys")]
    pub keys: usize,
    /// Longest value in bytes; each write picks a length up to it (values above half a
    /// datagram travel as notices plus a pull).
    #[serde(default = "default_value_len")]
    pub value_len: usize,
    /// Share of writes that delete the key instead.
    #[serde(default)]
    pub delete_share: f64,
    /// When writing starts.
    #[serde(default, with = "muster::duration")]
    pub from: Duration,
    /// When writing stops (the report checks state agreement at the end).
    #[serde(with = "muster::duration")]
    pub until: Duration,
}

fn default_state_keys() -> usize {
    8
}
fn default_value_len() -> usize {
    64
}

fn default_seed() -> u64 {
    1
}
fn default_profile() -> String {
    "lan".into()
}
fn default_seeds() -> usize {
    3
}

/// Protocol settings a scenario (or `sweep`) may change.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ConfigOverrides {
    #[serde(default, with = "muster::duration::option")]
    pub probe_interval: Option<Duration>,
    #[serde(default, with = "muster::duration::option")]
    pub probe_timeout: Option<Duration>,
    pub indirect_checks: Option<u32>,
    pub suspicion_mult: Option<f64>,
    pub suspicion_max_mult: Option<f64>,
    pub expected_confirmations: Option<u32>,
    pub confirm_probes: Option<f64>,
    pub awareness_max: Option<u32>,
    #[serde(default, with = "muster::duration::option")]
    pub gossip_interval: Option<Duration>,
    pub gossip_fanout: Option<u32>,
    pub retransmit_mult: Option<u32>,
    #[serde(default, with = "muster::duration::option")]
    pub push_pull_interval: Option<Duration>,
    #[serde(default, with = "muster::duration::option")]
    pub reconnect_interval: Option<Duration>,
    #[serde(default, with = "muster::duration::option")]
    pub dead_retention: Option<Duration>,
    #[serde(default, with = "muster::duration::option")]
    pub left_retention: Option<Duration>,
}

impl ConfigOverrides {
    /// Applies the overrides to a preset and validates the result.
    pub fn apply(&self, mut c: SwimConfig) -> anyhow::Result<SwimConfig> {
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { c.$f = v; } )* };
        }
        set!(
            probe_interval,
            probe_timeout,
            indirect_checks,
            suspicion_mult,
            suspicion_max_mult,
            expected_confirmations,
            confirm_probes,
            awareness_max,
            gossip_interval,
            gossip_fanout,
            retransmit_mult,
            push_pull_interval,
            reconnect_interval,
            dead_retention,
            left_retention
        );
        c.validate()?;
        Ok(c)
    }

    /// Sets one override by name from a string (for `sweep --param`).
    pub fn set(&mut self, param: &str, value: &str) -> anyhow::Result<()> {
        let dur = || muster::duration::parse_duration(value).map_err(anyhow::Error::msg);
        let float = || {
            value
                .parse::<f64>()
                .with_context(|| format!("{param} wants a number, got {value:?}"))
        };
        let int = || {
            value
                .parse::<u32>()
                .with_context(|| format!("{param} wants a whole number, got {value:?}"))
        };
        match param {
            "probe_interval" => self.probe_interval = Some(dur()?),
            "probe_timeout" => self.probe_timeout = Some(dur()?),
            "indirect_checks" => self.indirect_checks = Some(int()?),
            "suspicion_mult" => self.suspicion_mult = Some(float()?),
            "suspicion_max_mult" => self.suspicion_max_mult = Some(float()?),
            "expected_confirmations" => self.expected_confirmations = Some(int()?),
            "confirm_probes" => self.confirm_probes = Some(float()?),
            "awareness_max" => self.awareness_max = Some(int()?),
            "gossip_interval" => self.gossip_interval = Some(dur()?),
            "gossip_fanout" => self.gossip_fanout = Some(int()?),
            "retransmit_mult" => self.retransmit_mult = Some(int()?),
            "push_pull_interval" => self.push_pull_interval = Some(dur()?),
            "reconnect_interval" => self.reconnect_interval = Some(dur()?),
            "dead_retention" => self.dead_retention = Some(dur()?),
            "left_retention" => self.left_retention = Some(dur()?),
            other => bail!("unknown parameter {other:?}"),
        }
        Ok(())
    }
}

/// The modelled network.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Random loss applied to every datagram (0.0–1.0).
    #[serde(default)]
    pub loss: f64,
    /// Regions; nodes are spread over them by weight, and over each region's zones evenly.
    #[serde(default = "default_regions")]
    pub regions: Vec<RegionSpec>,
    /// Latency inside a zone.
    #[serde(default = "default_zone_latency")]
    pub zone_latency: LinkSpec,
    /// Latency between zones of one region.
    #[serde(default = "default_region_latency")]
    pub region_latency: LinkSpec,
    /// Latency between regions, per pair; pairs not listed get 30 ms + 40 ms per step of
    /// distance in the region list (capped at 150 ms), with 10% jitter.
    #[serde(default)]
    pub links: Vec<RegionLink>,
}

impl Default for NetworkSpec {
    fn default() -> Self {
        NetworkSpec {
            loss: 0.0,
            regions: default_regions(),
            zone_latency: default_zone_latency(),
            region_latency: default_region_latency(),
            links: Vec::new(),
        }
    }
}

fn default_regions() -> Vec<RegionSpec> {
    vec![RegionSpec {
        name: "local".into(),
        zones: vec!["local-a".into()],
        weight: 1.0,
    }]
}
fn default_zone_latency() -> LinkSpec {
    LinkSpec {
        mean: Duration::from_micros(500),
        jitter: Duration::from_micros(100),
        loss: 0.0,
    }
}
fn default_region_latency() -> LinkSpec {
    LinkSpec {
        mean: Duration::from_millis(2),
        jitter: Duration::from_micros(500),
        loss: 0.0,
    }
}

/// One region.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSpec {
    /// Region name.
    pub name: String,
    /// Its zones.
    pub zones: Vec<String>,
    /// Share of the nodes, relative to the other regions.
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

/// Latency and extra loss of a class of links.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// Mean one-way latency.
    #[serde(with = "muster::duration")]
    pub mean: Duration,
    /// Uniform jitter around the mean (±).
    #[serde(with = "muster::duration")]
    pub jitter: Duration,
    /// Extra random loss on these links, added to the global loss.
    #[serde(default)]
    pub loss: f64,
}

/// Latency between two regions (both directions).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionLink {
    /// One region.
    pub from: String,
    /// The other.
    pub to: String,
    /// The link.
    #[serde(flatten)]
    pub link: LinkSpec,
}

/// Which direction a partition cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Nothing crosses.
    #[default]
    Both,
    /// The cut-off side cannot send out (it still hears the rest).
    Outbound,
    /// The cut-off side hears nothing from outside (it can still send).
    Inbound,
}

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultAction {
    /// The selected nodes stop silently.
    Crash,
    /// The selected (crashed) nodes start again: same name and address, fresh state.
    Restart,
    /// The selected nodes leave gracefully.
    Leave,
    /// The selected nodes (or regions) are cut off from the rest.
    Partition,
    /// Every partition is removed.
    Heal,
    /// The global loss rate becomes `loss`.
    Loss,
    /// The selected nodes handle every input `delay` late (a CPU-starved or paused process).
    Slow,
    /// Every node of the selected regions crashes.
    RegionOutage,
    /// From `at` until `until`, `rate` of the nodes per minute crash and as many new ones join.
    Churn,
    /// From `at`, restart the selected nodes one after another, `interval` apart, each down
    /// for `downtime`.
    RollingRestart,
    /// From `at` until `until`, every `interval`: crash the primary of the next service
    /// (round robin, as the first running node sees it) and restart it `downtime` later.
    KillPrimary,
}

/// One scheduled fault.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// When it happens.
    #[serde(with = "muster::duration")]
    pub at: Duration,
    /// What happens.
    pub action: FaultAction,
    /// One node by index.
    pub node: Option<usize>,
    /// Several nodes by index.
    pub nodes: Option<Vec<usize>>,
    /// This many random nodes (seeds excluded), chosen from the world seed.
    pub random: Option<usize>,
    /// This share of the nodes, chosen at random (seeds excluded).
    pub fraction: Option<f64>,
    /// Whole regions by name.
    pub regions: Option<Vec<String>>,
    /// For `partition`.
    #[serde(default)]
    pub direction: Direction,
    /// For `loss`.
    pub loss: Option<f64>,
    /// For `slow`.
    #[serde(default, with = "muster::duration::option")]
    pub delay: Option<Duration>,
    /// For `churn`: end of the churn window.
    #[serde(default, with = "muster::duration::option")]
    pub until: Option<Duration>,
    /// For `churn`: share of the nodes replaced per minute.
    pub rate: Option<f64>,
    /// For `rolling-restart`: time between successive restarts.
    #[serde(default, with = "muster::duration::option")]
    pub interval: Option<Duration>,
    /// For `rolling-restart`: how long each node is down.
    #[serde(default, with = "muster::duration::option")]
    pub downtime: Option<Duration>,
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let s: Scenario =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        s.check()
            .with_context(|| format!("checking {}", path.display()))?;
        Ok(s)
    }

    /// Checks what serde cannot: ranges and references.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.nodes == 0 {
            bail!("nodes must be at least 1");
        }
        if self.network.regions.is_empty()
            || self.network.regions.iter().any(|r| r.zones.is_empty())
        {
            bail!("network.regions needs at least one region, each with at least one zone");
        }
        if !(0.0..=1.0).contains(&self.network.loss) {
            bail!("network.loss must be between 0 and 1");
        }
        if let Some(p) = &self.primaries
            && (p.services == 0 || p.check.is_zero())
        {
            bail!("primaries.services and primaries.check must be above 0");
        }
        let kills = self
            .faults
            .iter()
            .any(|f| matches!(f.action, FaultAction::KillPrimary));
        if kills && self.primaries.is_none() {
            bail!("a kill-primary fault needs a [primaries] section");
        }
        if let Some(st) = &self.state {
            if !(st.writes_per_sec.is_finite() && st.writes_per_sec > 0.0) {
                bail!("state.writes_per_sec must be a number above 0");
            }
            if !(0.0..=1.0).contains(&st.delete_share) {
                bail!("state.delete_share must be between 0 and 1");
            }
            if st.keys == 0 || st.value_len == 0 {
                bail!("state.keys and state.value_len must be at least 1");
            }
            if st.until < st.from {
                bail!("state.until must not be before state.from");
            }
        }
        let region_known = |name: &str| self.network.regions.iter().any(|r| r.name == name);
        for l in &self.network.links {
            if !region_known(&l.from) || !region_known(&l.to) {
                bail!(
                    "network.links names an unknown region ({} -> {})",
                    l.from,
                    l.to
                );
            }
        }
        for (i, f) in self.faults.iter().enumerate() {
            if let Some(rs) = &f.regions
                && let Some(r) = rs.iter().find(|r| !region_known(r))
            {
                bail!("faults[{i}] names unknown region {r:?}");
            }
            let needs = |what: bool, field: &str| {
                if what {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!(
                        "faults[{i}] ({:?}) needs `{field}`",
                        f.action
                    ))
                }
            };
            match f.action {
                FaultAction::Loss => needs(
                    f.loss.is_some_and(|l| (0.0..=1.0).contains(&l)),
                    "loss (0..1)",
                )?,
                FaultAction::Slow => needs(f.delay.is_some(), "delay")?,
                FaultAction::Churn => {
                    needs(f.rate.is_some() && f.until.is_some(), "rate and until")?
                }
                FaultAction::RegionOutage => needs(f.regions.is_some(), "regions")?,
                FaultAction::KillPrimary => needs(
                    f.interval.is_some_and(|i| !i.is_zero()) && f.until.is_some(),
                    "interval and until",
                )?,
                _ => {}
            }
        }
        self.config.apply(SwimConfig::preset(&self.profile)?)?;
        Ok(())
    }

    /// The protocol configuration of this scenario.
    pub fn swim_config(&self) -> anyhow::Result<SwimConfig> {
        self.config.apply(SwimConfig::preset(&self.profile)?)
    }
}
