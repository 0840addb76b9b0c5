//! Topology discovery and the speed-of-light model on recorded machines (tests/fixtures/*),
//! and live discovery on whatever machine runs the tests.

mod common;
use collbench::topo::peak::{communicator_peak_explained, percent_of_peak};
use collbench::topo::{
    self, Affinity, FixtureAmd, FixtureNvml, LinkKind, NodeTopology, RankPlacement, Remote,
    SysRoot, Vendor,
};
use std::path::PathBuf;

fn fixture(name: &str) -> NodeTopology {
    topo::discover_fixture(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
}

/// `per_node` ranks on each node, local devices 0.., ranks numbered node by node.
fn placement(nodes: &[&NodeTopology], per_node: u32) -> Vec<RankPlacement> {
    nodes
        .iter()
        .flat_map(|n| (0..per_node).map(move |d| (n.host.clone(), d)))
        .enumerate()
        .map(|(rank, (host, local_device))| RankPlacement::new(rank, &host, local_device))
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn dgx_h100_discovery() {
    let n = fixture("dgx-h100");
    assert_eq!(n.host, "dgx-h100-01");
    assert_eq!(n.gpus.len(), 8);
    for (i, g) in n.gpus.iter().enumerate() {
        assert_eq!(g.index, i as u32);
        assert_eq!(g.vendor, Vendor::Nvidia);
        assert_eq!(g.name.as_deref(), Some("NVIDIA H100 80GB HBM3"));
        assert_eq!(g.architecture.as_deref(), Some("Hopper"));
        // 81559 MiB, what an H100 SXM5 80GB reports.
        assert_eq!(g.memory_bytes, Some(85_520_809_984));
        assert_eq!(g.links.len(), 18, "GPU {i} active NVLinks");
        assert!(g.links.iter().all(|l| l.kind == LinkKind::NvLink
            && l.generation == Some(4)
            && l.nvml_version == Some(6)
            && l.gbps_per_direction == Some(25.0)
            && l.remote == Remote::Switch));
        let p = g.pcie.as_ref().unwrap();
        assert_eq!(
            (p.max_gen, p.max_width, p.source.as_str()),
            (Some(5), Some(16), "NVML")
        );
        assert_eq!(g.numa_node, Some(if i < 4 { 0 } else { 1 }));
    }
    assert_eq!(n.gpus[0].bus_id, "0000:1b:00.0");
    assert_eq!(n.nvswitch_present, Some(true));
    assert_eq!(n.nvswitches.len(), 4);
    // 8 compute NICs and one storage NIC.
    assert_eq!(n.rdma_nics.len(), 9);
    let nic0 = &n.rdma_nics[0];
    assert_eq!(nic0.name, "mlx5_0");
    assert_eq!(nic0.bus_id.as_deref(), Some("0000:1a:00.0"));
    assert_eq!(nic0.ports[0].rate.as_deref(), Some("400 Gb/sec (4X NDR)"));
    assert_eq!(nic0.ports[0].link_layer.as_deref(), Some("InfiniBand"));
    assert!(nic0.ports[0].active);
    assert_eq!(nic0.pcie.as_ref().and_then(|p| p.max_gen), Some(5));
    let aff = |gpu: u32, nic: &str| {
        n.affinity
            .iter()
            .find(|a| a.gpu == gpu && a.nic == nic)
            .unwrap()
            .affinity
    };
    assert_eq!(aff(0, "mlx5_0"), Affinity::SamePcieSwitch);
    assert_eq!(aff(0, "mlx5_1"), Affinity::SameNumaNode);
    assert_eq!(aff(0, "mlx5_7"), Affinity::CrossNuma);
    assert_eq!(aff(7, "mlx5_8"), Affinity::SameNumaNode);
    let eth = n
        .net_interfaces
        .iter()
        .find(|i| i.name == "enp170s0np0")
        .unwrap();
    assert_eq!(
        (eth.speed_mbit, eth.rdma_device.as_deref()),
        (Some(400_000), Some("mlx5_8"))
    );
    assert!(
        n.sources.iter().all(|s| s.ok || s.name == "ROCm SMI"),
        "{:?}",
        n.sources
    );
}

#[test]
fn dgx_h100_peak_is_18_nvlink4_links() {
    let n = fixture("dgx-h100");
    let p = communicator_peak_explained(std::slice::from_ref(&n), &placement(&[&n], 8)).unwrap();
    assert!(close(p.gbps, 450.0), "{p:?}");
    assert_eq!(p.fabric, "NVLink4");
    assert_eq!(
        p.derivation,
        "18 x NVLink4 at 25 GB/s per direction = 450 GB/s per GPU"
    );
    // Through NVSwitch, any two GPUs have all 18 links.
    let two = vec![
        RankPlacement::new(0, &n.host, 2),
        RankPlacement::new(1, &n.host, 5),
    ];
    assert!(close(
        topo::communicator_peak(std::slice::from_ref(&n), &two)
            .unwrap()
            .gbps,
        450.0
    ));
    // One GPU and nothing to cross: no peak.
    assert!(topo::communicator_peak(std::slice::from_ref(&n), &two[..1]).is_none());
}

#[test]
fn hgx_a100_peak_and_idle_pcie() {
    let n = fixture("hgx-a100");
    assert_eq!(n.gpus.len(), 8);
    assert!(n
        .gpus
        .iter()
        .all(|g| g.links.len() == 12 && g.links.iter().all(|l| l.generation == Some(3))));
    // NVML's answer (5, "3.1") is kept as said; the generation comes from the architecture.
    assert_eq!(n.gpus[0].links[0].nvml_version, Some(5));
    assert_eq!(n.nvswitches.len(), 6);
    let p = n.gpus[0].pcie.as_ref().unwrap();
    assert_eq!((p.current_gen, p.max_gen), (Some(1), Some(4)));
    assert_eq!(p.describe(), "Gen4 x16 (now Gen1 x16)");
    assert_eq!(n.rdma_nics.len(), 4);
    assert!(n
        .rdma_nics
        .iter()
        .all(|r| r.ports[0].gbit_per_s == Some(200.0)));
    let aff = |gpu: u32, nic: &str| {
        n.affinity
            .iter()
            .find(|a| a.gpu == gpu && a.nic == nic)
            .unwrap()
            .affinity
    };
    assert_eq!(aff(0, "mlx5_0"), Affinity::SamePcieSwitch);
    assert_eq!(aff(1, "mlx5_0"), Affinity::SamePcieSwitch);
    assert_ne!(aff(2, "mlx5_0"), Affinity::SamePcieSwitch);

    let peak = topo::communicator_peak(std::slice::from_ref(&n), &placement(&[&n], 8)).unwrap();
    assert!(close(peak.gbps, 300.0), "{peak:?}");
    assert_eq!(
        peak.derivation,
        "12 x NVLink3 at 25 GB/s per direction = 300 GB/s per GPU"
    );
}

#[test]
fn l40s_is_pcie_gen4_x16() {
    let n = fixture("l40s-pcie");
    assert_eq!(n.gpus.len(), 4);
    assert!(n.gpus.iter().all(|g| g.links_known && g.links.is_empty()));
    assert_eq!(n.gpus[0].name.as_deref(), Some("NVIDIA L40S"));
    assert_eq!(n.nvswitch_present, Some(false));
    assert!(n
        .rdma_nics
        .iter()
        .all(|r| r.ports[0].link_layer.as_deref() == Some("Ethernet")));
    assert_eq!(
        n.net_interfaces
            .iter()
            .filter(|i| i.rdma_device.is_some())
            .count(),
        2
    );

    let peak = topo::communicator_peak(std::slice::from_ref(&n), &placement(&[&n], 4)).unwrap();
    let gen4_x16 = 16.0 * 16.0 * (128.0 / 130.0) / 8.0;
    assert!(close(peak.gbps, gen4_x16), "{peak:?}");
    assert_eq!(peak.fabric, "PCIe Gen4 x16");
    assert!(
        peak.derivation
            .contains("16 GT/s x 16 lanes x 128/130 (128b/130b) / 8 = 31.5 GB/s"),
        "{}",
        peak.derivation
    );
}

#[test]
fn mi300x_is_a_full_xgmi_mesh() {
    let n = fixture("mi300x");
    assert_eq!(n.gpus.len(), 8);
    for g in &n.gpus {
        assert_eq!(g.vendor, Vendor::Amd);
        assert_eq!(g.name.as_deref(), Some("AMD Instinct MI300X"));
        assert_eq!(g.links.len(), 7);
        assert!(g
            .links
            .iter()
            .all(|l| l.kind == LinkKind::Xgmi && l.gbps_per_direction == Some(64.0)));
    }
    // No NVIDIA GPU: NVML's absence is noted as a source, not as something unknown about a GPU.
    let nvml = n.sources.iter().find(|s| s.name == "NVML").unwrap();
    assert!(
        !nvml.ok && nvml.detail.starts_with("skipped: NVML not found"),
        "{nvml:?}"
    );
    assert!(
        n.unknown.iter().all(|u| !u.what.contains("NVLink")),
        "{:?}",
        n.unknown
    );

    let peak = topo::communicator_peak(std::slice::from_ref(&n), &placement(&[&n], 8)).unwrap();
    assert!(close(peak.gbps, 448.0), "{peak:?}");
    assert_eq!(
        peak.derivation,
        "7 x xGMI at 64 GB/s per direction = 448 GB/s per GPU"
    );
    // Two GPUs of a mesh share one direct link.
    let pair = topo::communicator_peak(std::slice::from_ref(&n), &placement(&[&n], 2)).unwrap();
    assert!(close(pair.gbps, 64.0), "{pair:?}");
}

#[test]
fn two_dgx_h100_nodes_are_bound_by_infiniband() {
    let a = fixture("two-dgx-h100/node-a");
    let b = fixture("two-dgx-h100/node-b");
    assert_ne!(a.host, b.host);
    // The node folders borrow dgx-h100's sys/ through a symlink; device paths stay machine paths.
    assert_eq!(
        a.gpus[0].device_path,
        fixture("dgx-h100").gpus[0].device_path
    );
    let nodes = vec![a.clone(), b.clone()];
    let peak = communicator_peak_explained(&nodes, &placement(&[&a, &b], 8)).unwrap();
    // min(450 NVLink, 8 x 400 Gb/s / 8 bits / 8 GPUs = 50): the storage NIC does not count.
    assert!(close(peak.gbps, 50.0), "{peak:?}");
    assert_eq!(peak.fabric, "RDMA");
    assert_eq!(
        peak.derivation,
        "lowest over 2 nodes, on dgx-h100-a: min(NVLink4 450, PCIe Gen5 x16 63.02, RDMA 50) = 50: \
         8 x 400 Gb/s InfiniBand RDMA ports = 3200 Gb/s / 8 = 400 GB/s shared by 8 GPUs = 50 GB/s per GPU"
    );
    // One GPU per node: the NICs could carry 400 GB/s, the GPU's PCIe Gen5 x16 link cannot.
    let one = communicator_peak_explained(&nodes, &placement(&[&a, &b], 1)).unwrap();
    assert!(
        close(one.gbps, 32.0 * 16.0 * (128.0 / 130.0) / 8.0),
        "{one:?}"
    );
    // A rank on a host with no topology: no peak.
    let mut stray = placement(&[&a, &b], 8);
    stray[3].host = "elsewhere".into();
    assert!(topo::communicator_peak(&nodes, &stray).is_none());
}

#[test]
fn without_nvml_the_nvlink_peak_is_unknown_not_pcie() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dgx-h100");
    let n = topo::discover(
        &SysRoot::at(&dir),
        &FixtureNvml::absent("NVML not found (libnvidia-ml.so.1: cannot open shared object file)"),
        &FixtureAmd::absent("AMD SMI / ROCm SMI not found"),
    );
    assert_eq!(n.gpus.len(), 8);
    // Named from the PCI id, PCIe from sysfs, links unknown.
    assert_eq!(n.gpus[0].name.as_deref(), Some("NVIDIA H100 80GB HBM3"));
    assert_eq!(
        n.gpus[0].pcie.as_ref().map(|p| p.source.as_str()),
        Some("sysfs")
    );
    assert!(n.gpus.iter().all(|g| !g.links_known));
    assert_eq!(
        n.nvswitch_present,
        Some(true),
        "NVSwitches are on the PCI bus"
    );
    assert!(
        n.unknown
            .iter()
            .any(|u| u.why.starts_with("skipped: NVML not found")),
        "{:?}",
        n.unknown
    );
    let err =
        communicator_peak_explained(std::slice::from_ref(&n), &placement(&[&n], 8)).unwrap_err();
    assert!(err.contains("links are unknown"), "{err}");
}

/// A container that exposes GPUs 4-7 of a DGX H100: NVML numbers them 0-3 (as CUDA inside the
/// container does) while /sys still lists all eight.
#[test]
fn container_with_half_the_gpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dgx-h100");
    let mut nvml = FixtureNvml::from_file(&dir.join("nvml.json")).unwrap();
    nvml.devices.drain(..4);
    let n = topo::discover(&SysRoot::at(&dir), &nvml, &FixtureAmd::absent("none"));
    let visible: Vec<(u32, &str)> = n
        .gpus
        .iter()
        .take(4)
        .map(|g| (g.index, g.bus_id.as_str()))
        .collect();
    assert_eq!(
        visible,
        [
            (0, "0000:9d:00.0"),
            (1, "0000:c3:00.0"),
            (2, "0000:d1:00.0"),
            (3, "0000:df:00.0")
        ]
    );
    assert!(n.gpus[4..]
        .iter()
        .all(|g| g.library_index.is_none() && !g.links_known));
    assert_eq!(
        n.unknown
            .iter()
            .filter(|u| u.why.contains("not visible"))
            .count(),
        4,
        "{:?}",
        n.unknown
    );
    let four = topo::communicator_peak(std::slice::from_ref(&n), &placement(&[&n], 4)).unwrap();
    assert!(close(four.gbps, 450.0), "{four:?}");
    // The same GPUs named by PCI address, as NVML writes it.
    let by_bus: Vec<RankPlacement> = ["00000000:9D:00.0", "00000000:DF:00.0"]
        .iter()
        .enumerate()
        .map(|(rank, b)| RankPlacement {
            bus_id: Some(b.to_string()),
            ..RankPlacement::new(rank, &n.host, 99)
        })
        .collect();
    assert!(close(
        topo::communicator_peak(std::slice::from_ref(&n), &by_bus)
            .unwrap()
            .gbps,
        450.0
    ));
    // A GPU the container does not see has unknown links: no peak rather than a guess.
    let hidden = vec![
        RankPlacement::new(0, &n.host, 0),
        RankPlacement::new(1, &n.host, 5),
    ];
    assert!(topo::communicator_peak(std::slice::from_ref(&n), &hidden).is_none());
}

#[test]
fn render_says_what_was_and_was_not_found() {
    let text = topo::render(&[fixture("dgx-h100"), fixture("l40s-pcie")]);
    assert!(text.contains("host dgx-h100-01"), "{text}");
    assert!(
        text.contains("18 x NVLink4 (25 GB/s per direction) to NVSwitch"),
        "{text}"
    );
    assert!(
        text.contains("port 1: 400 Gb/sec (4X NDR) 4: ACTIVE InfiniBand"),
        "{text}"
    );
    assert!(text.contains("GPU 0: mlx5_0 (SamePcieSwitch)"), "{text}");
    assert!(text.contains("host l40s-01"), "{text}");
    assert!(text.contains("links: none (PCIe only)"), "{text}");
    assert!(text.contains("NVSwitch: no"), "{text}");
}

#[test]
fn topology_travels_as_json() {
    let n = fixture("hgx-a100");
    let json = serde_json::to_string(&n).unwrap();
    let back: NodeTopology = serde_json::from_str(&json).unwrap();
    assert_eq!(back, n);
    let peak = topo::communicator_peak(std::slice::from_ref(&n), &placement(&[&n], 8)).unwrap();
    let p2: topo::Peak = serde_json::from_str(&serde_json::to_string(&peak).unwrap()).unwrap();
    assert_eq!(p2, peak);
}

#[test]
fn percent_above_the_model_peak_is_marked() {
    let n = fixture("dgx-h100");
    let peak = topo::communicator_peak(std::slice::from_ref(&n), &placement(&[&n], 8)).unwrap();
    assert_eq!(percent_of_peak(360.0, &peak).unwrap().to_string(), "80%");
    // NVLS all_reduce on H100 reports busbw near 480 GB/s.
    let nvls = percent_of_peak(480.0, &peak).unwrap();
    assert!(nvls.above_peak);
    assert_eq!(
        nvls.to_string(),
        "107% (above link peak: in-network reduction?)"
    );
    assert_eq!(
        topo::Peak::from_override(400.0).derivation,
        "given with --peak: 400 GB/s"
    );
}

#[test]
fn live_discovery_never_fails() {
    let n = topo::discover_live();
    assert!(!n.host.is_empty());
    let nvml = n
        .sources
        .iter()
        .find(|s| s.name == "NVML")
        .expect("NVML is always listed");
    if n.gpus.is_empty() {
        // This build machine: no GPU, no NVML, no RDMA NIC.
        assert!(
            n.unknown.iter().any(|u| u.what == "GPUs"),
            "{:?}",
            n.unknown
        );
        assert!(!n.unknown.is_empty());
        let text = topo::render(std::slice::from_ref(&n));
        assert!(text.contains("unknown:"), "{text}");
        let me = vec![RankPlacement::new(0, &n.host, 0)];
        assert!(topo::communicator_peak(std::slice::from_ref(&n), &me).is_none());
    }
    if !nvml.ok {
        assert!(nvml.detail.contains("NVML"), "{nvml:?}");
    }
}

/// The live ROCm SMI path (dlopen, symbol types, answers) against a stand-in library built from
/// tests/fixtures/fake_rocm_smi.c: the mi300x GPUs with the GPU 0 - GPU 7 xGMI link missing.
#[test]
fn live_rocm_smi_through_dlopen() {
    let missing = topo::LiveAmd::with_library("/nonexistent/librocm_smi64.so");
    assert!(topo::AmdSource::open(&missing)
        .unwrap_err()
        .contains("not found"));

    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dir = tempfile::tempdir().unwrap();
    let Some(so) = common::build_stand_in("fake_rocm_smi.c", "libfake-rocm-smi64.so", dir.path())
    else {
        return;
    };
    let amd = topo::LiveAmd::with_library(&so);
    let n = topo::discover(
        &SysRoot::at(fixtures.join("mi300x")),
        &FixtureNvml::absent("NVML not found"),
        &amd,
    );
    let rocm = n.sources.iter().find(|s| s.name == "ROCm SMI").unwrap();
    assert!(
        rocm.ok && rocm.detail.contains("libfake-rocm-smi64.so"),
        "{rocm:?}"
    );
    assert_eq!(n.gpus.len(), 8);
    assert!(n
        .gpus
        .iter()
        .all(|g| g.name.as_deref() == Some("AMD Instinct MI300X")
            && g.memory_bytes == Some(192 << 30)));
    let links: Vec<usize> = n.gpus.iter().map(|g| g.links.len()).collect();
    assert_eq!(links, [6, 7, 7, 7, 7, 7, 7, 6]);
    assert_eq!(
        n.gpus[1].links[0].remote,
        Remote::Gpu("0000:11:00.0".into())
    );
    // GPU 0 cannot reach GPU 7 over xGMI, so the 8-GPU ring is bound by PCIe Gen5 x16...
    let all = topo::communicator_peak(std::slice::from_ref(&n), &placement(&[&n], 8)).unwrap();
    assert_eq!(all.fabric, "PCIe Gen5 x16");
    // ...while GPUs 1 to 6 keep their five links to each other.
    let six: Vec<RankPlacement> = (1..=6)
        .map(|d| RankPlacement::new(d as usize - 1, &n.host, d))
        .collect();
    let p = topo::communicator_peak(std::slice::from_ref(&n), &six).unwrap();
    assert_eq!(
        p.derivation,
        "5 x xGMI at 64 GB/s per direction = 320 GB/s per GPU"
    );

    // A machine whose PCI bus has no AMD GPU does not open ROCm SMI at all, even when it is there.
    let nvidia = topo::discover(
        &SysRoot::at(fixtures.join("dgx-h100")),
        &FixtureNvml::absent("NVML not found"),
        &topo::LiveAmd::with_library(&so),
    );
    let rocm = nvidia
        .sources
        .iter()
        .find(|s| s.name == "ROCm SMI")
        .unwrap();
    assert!(
        !rocm.ok
            && rocm
                .detail
                .starts_with("skipped: no AMD GPU on the PCI bus ("),
        "{rocm:?}"
    );
}

/// The live NVML path (nvml-wrapper, error names, the NVLink loop) against a stand-in library
/// giving the answers recorded in h100-nvl/nvml.json: both paths must discover the same GPUs.
#[test]
fn live_nvml_agrees_with_the_recorded_answers() {
    let missing = topo::LiveNvml::with_library("/nonexistent/libnvidia-ml.so.1");
    assert!(topo::NvmlSource::open(&missing)
        .unwrap_err()
        .starts_with("NVML not found"));

    let dir = tempfile::tempdir().unwrap();
    let Some(so) = common::fake_nvml(dir.path()) else {
        return;
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/h100-nvl");
    let live = topo::discover(
        &SysRoot::at(&root),
        &topo::LiveNvml::with_library(&so),
        &FixtureAmd::absent("none"),
    );
    let recorded = fixture("h100-nvl");
    let nvml = live.sources.iter().find(|s| s.name == "NVML").unwrap();
    assert_eq!(nvml.detail, "NVML, driver 550.54.15");
    assert_eq!(live.gpus, recorded.gpus);
    assert_eq!(live.unknown, recorded.unknown);

    let g = &live.gpus[0];
    assert_eq!(g.name.as_deref(), Some("NVIDIA H100 NVL"));
    assert_eq!(
        g.memory_bytes,
        Some(95_830 << 20),
        "nvmlDeviceGetMemoryInfo_v2"
    );
    assert_eq!(g.links.len(), 12, "links 12-17 are inactive");
    // NVML said 7 ("5.0"); Hopper has NVLink4 at 25 GB/s, not NVLink5 at 50.
    assert!(g
        .links
        .iter()
        .all(|l| l.nvml_version == Some(7) && l.generation == Some(4)));
    assert_eq!(g.links[0].remote, Remote::Gpu("0000:42:00.0".into()));
    assert_eq!(live.nvswitch_present, Some(false));
    let peak =
        topo::communicator_peak(std::slice::from_ref(&live), &placement(&[&live], 2)).unwrap();
    assert_eq!(
        peak.derivation,
        "12 x NVLink4 at 25 GB/s per direction = 300 GB/s per GPU"
    );
}

/// `cargo test --test topo_fixtures show -- --ignored --nocapture` prints what `collbench topo`
/// would say about each recorded machine and this one.
#[test]
#[ignore]
fn show() {
    for m in ["dgx-h100", "hgx-a100", "l40s-pcie", "mi300x"] {
        let n = fixture(m);
        println!("{}", topo::render(std::slice::from_ref(&n)));
        println!(
            "peak: {:?}\n",
            communicator_peak_explained(std::slice::from_ref(&n), &placement(&[&n], 8))
        );
    }
    println!("{}", topo::render(&[topo::discover_live()]));
}
