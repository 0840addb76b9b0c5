//! Each group's own speed of light: the peak model (topo::peak) over the group's members only, so a TP4
//! group inside one NVLink domain is measured against NVLink and a group spanning hosts against its NICs.

use super::Layout;
use crate::topo::peak::{communicator_peak, Peak, RankPlacement};
use crate::topo::NodeTopology;

/// Every group's peak in `layout.groups` order: `--peak` for all where given, none on the mpi backend
/// (host memory has no fabric model), else the model over the group's placements (None where a node,
/// GPU or link it needs is unknown).
pub fn group_peaks(
    layout: &Layout,
    nodes: &[NodeTopology],
    placements: &[RankPlacement],
    backend: &str,
    override_gbps: Option<f64>,
) -> Vec<Option<Peak>> {
    layout
        .groups
        .iter()
        .map(|g| match override_gbps {
            Some(gbps) => Some(Peak::from_override(gbps)),
            None if backend == "mpi" => None,
            None => {
                let members: Vec<RankPlacement> = g
                    .members
                    .iter()
                    .filter_map(|&r| placements.iter().find(|p| p.rank == r).cloned())
                    .collect();
                (members.len() == g.members.len())
                    .then(|| communicator_peak(nodes, &members))
                    .flatten()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::figures::group_figures;
    use crate::layout::GroupSpec;
    use crate::metrics::Average;

    fn node(name: &str) -> NodeTopology {
        crate::topo::discover_fixture(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(name),
        )
    }

    #[test]
    fn a_group_inside_a_node_has_nvlinks_peak_and_one_across_nodes_its_nics() {
        let nodes = vec![node("two-dgx-h100/node-a"), node("two-dgx-h100/node-b")];
        // 16 ranks, 8 per node, local devices 0..8 on each.
        let hosts: Vec<String> = (0..16).map(|r| nodes[r / 8].host.clone()).collect();
        let placements: Vec<RankPlacement> = (0..16)
            .map(|r| RankPlacement::new(r, &hosts[r], (r % 8) as u32))
            .collect();
        let blocks = Layout::resolve(GroupSpec::Blocks(8), &hosts, 0).unwrap();
        let peaks = group_peaks(&blocks, &nodes, &placements, "nccl", None);
        assert_eq!(peaks.len(), 2);
        for p in &peaks {
            let p = p.as_ref().expect("a peak");
            assert_eq!(p.fabric, "NVLink4", "{p:?}");
            assert_eq!(p.gbps, 450.0);
        }
        // Even ranks, 4 on each node: bound by the network, like the whole job.
        let stride = Layout::resolve(GroupSpec::Stride(2), &hosts, 0).unwrap();
        let across = group_peaks(&stride, &nodes, &placements, "nccl", None);
        let whole = communicator_peak(&nodes, &placements).unwrap();
        let p = across[0].as_ref().expect("a peak");
        assert_ne!(p.fabric, "NVLink4", "{p:?}");
        assert!(p.gbps < 450.0 && p.gbps >= whole.gbps, "{p:?} vs {whole:?}");

        // The figures use each group's own peak.
        let mut layout = blocks;
        layout.peaks = peaks;
        let times = vec![100.0; 16];
        let (figures, _) = group_figures(&layout, Average::Mean, &times, None, 45_000_000, |_| 1.0);
        // 45 MB in 100 us = 450 GB/s = 100 % of NVLink4.
        assert!((figures[0].peak_percent.unwrap() - 100.0).abs() < 1e-9);

        assert_eq!(
            group_peaks(&layout, &nodes, &placements, "mpi", None),
            vec![None, None]
        );
        let given = group_peaks(&layout, &nodes, &placements, "mpi", Some(25.0));
        assert_eq!(given[1].as_ref().unwrap().gbps, 25.0);
    }
}
