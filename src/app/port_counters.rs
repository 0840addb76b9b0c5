//! The run's watch on link error counters: each host's first rank reads its RDMA ports, and every rank
//! its own GPU's NVLinks, before the first row and again after the sweep (and the link probe); every
//! rank's changes are gathered and rank 0 reports them. A few sysfs reads per port and NVML calls per
//! NVLink, twice per run, none of them between the rows.
//!
//! Why each rank its own GPU and not each host's first rank all of them: an NVLink joins two GPUs (or a
//! GPU and an NVSwitch), and every GPU of the job is some rank's, so every NVLink the job's traffic
//! crosses is read at least at one end; a GPU of the host that no rank uses carries another job's
//! traffic, whose errors are not this run's.

use crate::backend::DeviceInfo;
use crate::error::Result;
use crate::report::port_errors::LinkErrorReport;
use crate::telemetry::source::NvmlGpu;
use crate::topo::port_counters::{read_error_counters, PortCounters};
use crate::topo::SysRoot;
use crate::watchdog::Watchdog;
use crate::world::{all_gather_value, World};

/// The readings before the run: the host's ports on the ranks that read them, this rank's GPU's
/// NVLinks where it has an NVIDIA GPU that NVML answers for.
pub struct PortWatch {
    root: SysRoot,
    before: Option<Vec<PortCounters>>,
    gpu: Option<(NvmlGpu, Vec<PortCounters>)>,
}

impl PortWatch {
    /// Reads this host's ports now if this rank reads for its host, and its own GPU's NVLinks; needs
    /// no other rank.
    pub fn start(world: &dyn World, watchdog: &Watchdog, device: &DeviceInfo) -> PortWatch {
        let root = crate::testing::port_counters_root(world.host())
            .map(SysRoot::at)
            .unwrap_or_else(SysRoot::live);
        watchdog
            .arm(|| "reading this host's RDMA port and this GPU's NVLink error counters".into());
        let before = (world.local_rank() == 0).then(|| read_error_counters(&root));
        // No NVML, or NVML not knowing the GPU, leaves its NVLinks unread: the telemetry header says
        // why NVML does not answer.
        let gpu = crate::telemetry::source::open_nvml(device, world.local_rank())
            .and_then(|opened| opened.ok())
            .map(|gpu| {
                let links = crate::telemetry::nvlink::read_error_counters(&gpu);
                (gpu, links)
            });
        watchdog.disarm();
        PortWatch { root, before, gpu }
    }

    /// Reads again and gathers every rank's changes; every rank takes part and gets the same answer,
    /// None when no port and no NVLink had a readable counter.
    pub fn finish(self, world: &dyn World, watchdog: &Watchdog) -> Result<Option<LinkErrorReport>> {
        watchdog.arm(|| "reading and gathering the RDMA port and NVLink error counters".into());
        let ports = self.before.map(|before| {
            crate::fleet::link_errors::compare(
                world.host(),
                &before,
                &read_error_counters(&self.root),
            )
        });
        let nvlinks = self.gpu.map(|(gpu, before)| {
            crate::fleet::link_errors::compare_nvlinks(
                world.host(),
                &before,
                &crate::telemetry::nvlink::read_error_counters(&gpu),
            )
        });
        let mine: Vec<LinkErrorReport> = ports.into_iter().chain(nvlinks).collect();
        let every = all_gather_value(world, &mine)?;
        watchdog.disarm();
        Ok(crate::fleet::link_errors::merge(
            every.into_iter().flatten(),
        ))
    }
}
