//! The run's watch on RDMA port error counters: each host's first rank reads its ports before the first
//! row and again after the sweep (and the link probe); every host's changes are gathered and rank 0
//! reports them. A few sysfs reads per port, twice per run, none of them between the rows.

use crate::error::Result;
use crate::report::port_errors::LinkErrorReport;
use crate::topo::port_counters::{read_error_counters, PortCounters};
use crate::topo::SysRoot;
use crate::watchdog::Watchdog;
use crate::world::{all_gather_value, World};

/// The reading before the run, on the ranks that read (None on the others).
pub struct PortWatch {
    root: SysRoot,
    before: Option<Vec<PortCounters>>,
}

impl PortWatch {
    /// Reads this host's counters now if this rank reads for its host; needs no other rank.
    pub fn start(world: &dyn World, watchdog: &Watchdog) -> PortWatch {
        let root = crate::testing::port_counters_root(world.host())
            .map(SysRoot::at)
            .unwrap_or_else(SysRoot::live);
        watchdog.arm(|| "reading this host's RDMA port error counters".into());
        let before = (world.local_rank() == 0).then(|| read_error_counters(&root));
        watchdog.disarm();
        PortWatch { root, before }
    }

    /// Reads again and gathers every host's changes; every rank takes part and gets the same answer,
    /// None when no host had a readable counter.
    pub fn finish(self, world: &dyn World, watchdog: &Watchdog) -> Result<Option<LinkErrorReport>> {
        watchdog.arm(|| "reading and gathering each host's RDMA port error counters".into());
        let mine = self.before.map(|before| {
            crate::fleet::link_errors::compare(
                world.host(),
                &before,
                &read_error_counters(&self.root),
            )
        });
        let every = all_gather_value(world, &mine)?;
        watchdog.disarm();
        Ok(crate::fleet::link_errors::merge(
            every.into_iter().flatten(),
        ))
    }
}
