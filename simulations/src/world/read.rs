//! Read access to a world, for reports.

use super::*;

impl World {
    /// The scenario being run.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }
    /// The protocol configuration in force.
    pub fn config(&self) -> &SwimConfig {
        &self.config
    }
    /// Virtual time reached.
    pub fn now(&self) -> Time {
        self.now
    }
    /// The end of the scenario.
    pub fn end(&self) -> Time {
        self.end
    }
    /// Observations.
    pub fn observer(&self) -> &Observer {
        &self.obs
    }
    /// Bandwidth samples.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }
    /// Actions processed.
    pub fn steps(&self) -> u64 {
        self.steps
    }
    /// When the last scripted fault ended.
    pub fn last_fault(&self) -> Time {
        self.last_fault
    }
    /// When every running node had the same digest and saw every other, after the last fault.
    pub fn converged_at(&self) -> Option<Time> {
        self.converged_at
    }
    /// When every running node first saw every other.
    pub fn joined_at(&self) -> Option<Time> {
        self.joined_at
    }
    /// Whether node `i` is running now.
    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].life == Life::Up
    }
    /// Node count, every node ever created included.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }
    /// Name of node `i`.
    pub fn name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }
    /// The running protocol node `i`, if up.
    pub fn node(&self, i: usize) -> Option<&Node> {
        self.nodes[i].node.as_ref()
    }
    /// Bytes and messages sent by node `i`, and how long it has been up, as of now.
    pub fn traffic(&self, i: usize) -> (u64, u64, Duration) {
        let n = &self.nodes[i];
        let up = n.up_total + n.up_since.map_or(Duration::ZERO, |s| self.now - s);
        (n.bytes_sent, n.msgs_sent, up)
    }
    /// Region names, for reports.
    pub fn regions(&self) -> Vec<String> {
        self.net.region_names().map(String::from).collect()
    }
}
