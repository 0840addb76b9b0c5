//! The topology part of a run: each host's first rank discovers its node, rank 0 learns every node and
//! where each rank runs, and the communicator's speed of light follows (or --peak replaces it).

use crate::error::Result;
use crate::report::document::{RankInfo, TopologyReport};
use crate::topo::peak::{communicator_peak_explained, Peak, RankPlacement};
use crate::topo::NodeTopology;
use crate::world::{all_gather_value, World};
use std::collections::BTreeMap;

/// Discovers this host (first rank of each host only: the others would find the same) and gathers every
/// host's answer on every rank.
pub fn gather_nodes(world: &dyn World) -> Result<Vec<NodeTopology>> {
    let mine = (world.local_rank() == 0).then(crate::topo::discover_live);
    Ok(all_gather_value(world, &mine)?
        .into_iter()
        .flatten()
        .collect())
}

/// Where each rank runs, as the peak model needs it.
pub fn placements(ranks: &[RankInfo]) -> Vec<RankPlacement> {
    ranks
        .iter()
        .map(|r| RankPlacement {
            rank: r.rank,
            host: r.host.clone(),
            local_device: r.device.index.unwrap_or(r.local_rank) as u32,
            bus_id: r.device.pci_bus_id.clone(),
        })
        .collect()
}

/// The communicator's peak and each host's, or why it is unknown.
pub fn report(
    nodes: Vec<NodeTopology>,
    ranks: &[RankInfo],
    backend: &str,
    override_gbps: Option<f64>,
) -> TopologyReport {
    let placements = placements(ranks);
    let (peak, peak_unknown) = match override_gbps {
        Some(gbps) => (Some(Peak::from_override(gbps)), None),
        None if backend == "mpi" => (
            None,
            Some("the mpi backend moves host memory, which the GPU fabric model does not describe: give --peak GBPS".into()),
        ),
        None => match communicator_peak_explained(&nodes, &placements) {
            Ok(p) => (Some(p), None),
            Err(why) => (None, Some(format!("{why}; give --peak GBPS"))),
        },
    };
    let mut host_peaks = BTreeMap::new();
    for node in &nodes {
        let on_host: Vec<RankPlacement> = placements
            .iter()
            .filter(|p| p.host == node.host)
            .cloned()
            .collect();
        let host_peak = (backend != "mpi" && on_host.len() > 1)
            .then(|| communicator_peak_explained(&nodes, &on_host).ok())
            .flatten();
        host_peaks.insert(node.host.clone(), host_peak);
    }
    TopologyReport {
        nodes,
        placements,
        peak,
        peak_unknown,
        host_peaks,
    }
}

/// Header lines naming the fabric and its peak with the derivation.
pub fn header_lines(report: &TopologyReport) -> String {
    match (&report.peak, &report.peak_unknown) {
        (Some(p), _) => format!(
            "# Peak: {:.2} GB/s per GPU per direction ({}): {}\n",
            p.gbps, p.fabric, p.derivation
        ),
        (None, Some(why)) => format!("# Peak: unknown ({why})\n"),
        (None, None) => "# Peak: unknown\n".to_string(),
    }
}

/// The peak of a communicator over every GPU of each host, for `collbench topo`.
pub fn host_peak_lines(nodes: &[NodeTopology]) -> String {
    let mut out = String::new();
    for node in nodes {
        let all: Vec<RankPlacement> = node
            .gpus
            .iter()
            .enumerate()
            .map(|(rank, g)| RankPlacement {
                rank,
                host: node.host.clone(),
                local_device: g.index,
                bus_id: Some(g.bus_id.clone()),
            })
            .collect();
        if all.is_empty() {
            out.push_str(&format!("peak on {}: none (no GPU found)\n", node.host));
            continue;
        }
        let line = match communicator_peak_explained(std::slice::from_ref(node), &all) {
            Ok(p) => format!(
                "{:.2} GB/s per GPU per direction ({}): {}",
                p.gbps, p.fabric, p.derivation
            ),
            Err(why) => format!("unknown ({why})"),
        };
        out.push_str(&format!(
            "peak of all {} GPU(s) on {}: {line}\n",
            all.len(),
            node.host
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::DeviceInfo;

    fn rank(rank: usize, host: &str, index: usize) -> RankInfo {
        RankInfo {
            rank,
            host: host.into(),
            pid: 1,
            local_rank: index,
            device: DeviceInfo {
                kind: "cuda".into(),
                index: Some(index),
                name: "GPU".into(),
                pci_bus_id: None,
            },
        }
    }

    #[test]
    fn the_override_wins_and_the_mpi_backend_has_no_model() {
        let ranks = [rank(0, "a", 0), rank(1, "a", 1)];
        let r = report(vec![], &ranks, "nccl", Some(123.0));
        assert_eq!(r.peak.as_ref().map(|p| p.gbps), Some(123.0));
        assert!(header_lines(&r).contains("123.00 GB/s"));
        let r = report(vec![], &ranks, "mpi", None);
        assert!(r.peak.is_none());
        assert!(header_lines(&r).contains("--peak"));
    }

    #[test]
    fn a_recorded_dgx_h100_gives_its_nvlink_peak() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dgx-h100");
        let node = crate::topo::discover_fixture(&dir);
        let host = node.host.clone();
        let ranks: Vec<RankInfo> = (0..8).map(|i| rank(i, &host, i)).collect();
        let r = report(vec![node], &ranks, "nccl", None);
        assert_eq!(r.peak.as_ref().map(|p| p.gbps), Some(450.0), "{r:?}");
        assert!(header_lines(&r).contains("NVLink"));
        assert_eq!(r.host_peaks[&host].as_ref().map(|p| p.gbps), Some(450.0));
    }
}
