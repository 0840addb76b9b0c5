//! The RDMA port error counters that rose while a run went, as the results document stores them
//! (`summary.link_errors`). Data only: topo/port_counters.rs reads the counters and
//! fleet/link_errors.rs compares the readings; both depend on this module, never the other way round.

use serde::{Deserialize, Serialize};

/// Every host's RDMA ports read before and after the run, and the error counters that changed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LinkErrorReport {
    /// Each port whose error counters were read both before and after the run.
    pub ports_read: Vec<PortRead>,
    /// Hosts of the job on which no port error counter could be read (no RDMA device or driver).
    pub hosts_without_counters: Vec<String>,
    /// Each error counter that rose or was reset while the run went, by host, device, port and
    /// counter; empty when none did.
    pub changes: Vec<CounterChange>,
}

/// A port that was read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortRead {
    pub host: String,
    pub device: String,
    pub port: u32,
    /// The error counters read on it both times.
    pub counters: usize,
}

/// One error counter of one port that changed while the run went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CounterChange {
    pub host: String,
    /// "mlx5_3".
    pub device: String,
    pub port: u32,
    /// The sysfs file's name: "symbol_error", "out_of_sequence".
    pub counter: String,
    pub before: u64,
    pub after: u64,
    /// after - before; null when the counter went backwards (`reset`).
    pub delta: Option<u64>,
    /// The counter went backwards: a driver reset or someone clearing the counters during the run,
    /// so how many errors happened meanwhile cannot be known.
    pub reset: bool,
}
