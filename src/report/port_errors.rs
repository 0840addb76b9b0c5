//! The link error counters (RDMA ports and NVLinks) that rose while a run went, as the results document
//! stores them (`summary.link_errors`). Data only: topo/port_counters.rs and telemetry/nvlink.rs read
//! the counters and fleet/link_errors.rs compares the readings; they depend on this module, never the
//! other way round.

use serde::{Deserialize, Serialize};

/// Every host's RDMA ports and every rank's GPU's NVLinks read before and after the run, and the
/// error counters that changed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LinkErrorReport {
    /// Each RDMA port whose error counters were read both before and after the run.
    pub ports_read: Vec<PortRead>,
    /// Each active NVLink of a rank's GPU whose error counters were read both times: `device` is the
    /// GPU ("GPU 0 (0000:18:00.0)"), `port` the link's index. Empty without NVLink.
    #[serde(default)]
    pub nvlinks_read: Vec<PortRead>,
    /// Hosts of the job on which no port error counter could be read (no RDMA device or driver).
    pub hosts_without_counters: Vec<String>,
    /// Each error counter that rose or was reset while the run went, by host, device, port and
    /// counter; empty when none did.
    pub changes: Vec<CounterChange>,
}

/// Which kind of link a counter belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// An RDMA port's sysfs counter.
    #[default]
    RdmaPort,
    /// A GPU's NVLink, read through NVML.
    Nvlink,
}

/// A port or NVLink that was read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortRead {
    pub host: String,
    pub device: String,
    pub port: u32,
    /// The error counters read on it both times.
    pub counters: usize,
}

/// One error counter of one port or NVLink that changed while the run went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CounterChange {
    #[serde(default)]
    pub link: LinkKind,
    pub host: String,
    /// "mlx5_3", or the GPU of an NVLink: "GPU 0 (0000:18:00.0)".
    pub device: String,
    /// The RDMA port's number or the NVLink's index.
    pub port: u32,
    /// The sysfs file's name ("symbol_error", "out_of_sequence") or the NVLink counter's
    /// ("nvlink_crc_flit").
    pub counter: String,
    pub before: u64,
    pub after: u64,
    /// after - before; null when the counter went backwards (`reset`).
    pub delta: Option<u64>,
    /// The counter went backwards: a driver reset or someone clearing the counters during the run,
    /// so how many errors happened meanwhile cannot be known.
    pub reset: bool,
}
