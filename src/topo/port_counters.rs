//! The error counters of a node's RDMA ports, read from sysfs (InfiniBand and RoCE alike): the
//! evidence a flaky cable or transceiver leaves while a run still "works". A reading is a snapshot;
//! fleet/link_errors.rs compares two of them.
//!
//! Two groups of files under /sys/class/infiniband/<device>/ports/<port>/ (docs/FLEET.md says why these):
//! - `counters/`: the InfiniBand PortCounters the kernel documents in
//!   Documentation/ABI/stable/sysfs-class-infiniband, every one of them an error count;
//! - `hw_counters/`: the driver's own counters, of which only those that mean a packet was corrupted
//!   or lost on the wire (mlx5 names them so; other drivers may have none of them).
//!
//! A file that is missing, unreadable (some drivers answer EINVAL) or not a decimal integer is simply
//! not counted.

use super::SysRoot;
use std::collections::BTreeMap;

const CLASS: &str = "/sys/class/infiniband";

/// `counters/` files that count errors on the link or the port.
pub const PORT_ERROR_COUNTERS: [&str; 11] = [
    "symbol_error",
    "link_error_recovery",
    "link_downed",
    "port_rcv_errors",
    "port_rcv_remote_physical_errors",
    "port_xmit_discards",
    "local_link_integrity_errors",
    "excessive_buffer_overrun_errors",
    "port_xmit_constraint_errors",
    "port_rcv_constraint_errors",
    "VL15_dropped",
];

/// `hw_counters/` files that mean a packet was corrupted (ICRC) or lost (sequence errors, ack
/// timeouts). Left out on purpose: counters a program or a busy host raises by itself
/// (rnr_nak_retry_err, *_cqe_error, out_of_buffer) and congestion control's (np_*, rp_*, roce_*).
pub const HW_ERROR_COUNTERS: [&str; 5] = [
    "rx_icrc_encapsulated",
    "out_of_sequence",
    "packet_seq_err",
    "implied_nak_seq_err",
    "local_ack_timeout_err",
];

/// One port's error counters at one moment: only those that could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortCounters {
    /// "mlx5_3".
    pub device: String,
    pub port: u32,
    /// Counter name -> value.
    pub counters: BTreeMap<String, u64>,
}

/// Every RDMA port of the node with at least one readable error counter, by device then port.
/// Empty when the node has no /sys/class/infiniband (no RDMA driver loaded).
pub fn read_error_counters(root: &SysRoot) -> Vec<PortCounters> {
    let Ok(devices) = root.list(CLASS) else {
        return Vec::new();
    };
    let mut ports = Vec::new();
    for device in devices {
        let mut numbers: Vec<u32> = root
            .list(&format!("{CLASS}/{device}/ports"))
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p.parse().ok())
            .collect();
        numbers.sort_unstable();
        for port in numbers {
            let dir = format!("{CLASS}/{device}/ports/{port}");
            let counters: BTreeMap<String, u64> = PORT_ERROR_COUNTERS
                .iter()
                .map(|name| (name, format!("{dir}/counters/{name}")))
                .chain(
                    HW_ERROR_COUNTERS
                        .iter()
                        .map(|name| (name, format!("{dir}/hw_counters/{name}"))),
                )
                .filter_map(|(name, path)| {
                    let value = root.read(&path).ok()?.parse().ok()?;
                    Some((name.to_string(), value))
                })
                .collect();
            if !counters.is_empty() {
                ports.push(PortCounters {
                    device: device.clone(),
                    port,
                    counters,
                });
            }
        }
    }
    ports
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dgx-h100");

    /// The recorded DGX H100's RDMA ports (their ports/ folders, no counters recorded) copied into
    /// a temporary root, where a test adds counter files.
    fn dgx_ports() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let class = Path::new(FIXTURE).join("sys/class/infiniband");
        for dev in std::fs::read_dir(&class).expect("the fixture's infiniband class") {
            let dev = dev.unwrap().file_name();
            for port in std::fs::read_dir(class.join(&dev).join("ports")).unwrap() {
                let port = port.unwrap().file_name();
                let from = class.join(&dev).join("ports").join(&port);
                let to = dir
                    .path()
                    .join("sys/class/infiniband")
                    .join(&dev)
                    .join("ports")
                    .join(&port);
                std::fs::create_dir_all(&to).unwrap();
                for f in std::fs::read_dir(&from).unwrap() {
                    let f = f.unwrap();
                    std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
                }
            }
        }
        dir
    }

    fn write(root: &Path, machine_path: &str, text: &str) {
        let p = root.join(machine_path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn ports_without_counter_files_are_not_listed() {
        let dir = dgx_ports();
        assert!(read_error_counters(&SysRoot::at(dir.path())).is_empty());
        assert!(read_error_counters(&SysRoot::at(FIXTURE)).is_empty());
    }

    #[test]
    fn reads_the_documented_counters_and_skips_what_cannot_be_read() {
        let dir = dgx_ports();
        let port = "/sys/class/infiniband/mlx5_3/ports/1";
        write(
            dir.path(),
            &format!("{port}/counters/symbol_error"),
            "1204\n",
        );
        write(dir.path(), &format!("{port}/counters/link_downed"), "0\n");
        // Not an error counter: traffic.
        write(
            dir.path(),
            &format!("{port}/counters/port_xmit_data"),
            "99\n",
        );
        // A driver that cannot give it.
        write(
            dir.path(),
            &format!("{port}/counters/VL15_dropped"),
            "N/A\n",
        );
        // A folder where a file should be: unreadable.
        std::fs::create_dir_all(
            dir.path()
                .join("sys/class/infiniband/mlx5_3/ports/1/counters/port_rcv_errors"),
        )
        .unwrap();
        write(
            dir.path(),
            &format!("{port}/hw_counters/out_of_sequence"),
            "7\n",
        );
        write(
            dir.path(),
            &format!("{port}/hw_counters/rnr_nak_retry_err"),
            "5\n",
        );
        write(
            dir.path(),
            "/sys/class/infiniband/mlx5_0/ports/1/hw_counters/rx_icrc_encapsulated",
            "3",
        );
        let ports = read_error_counters(&SysRoot::at(dir.path()));
        assert_eq!(
            ports
                .iter()
                .map(|p| (p.device.as_str(), p.port))
                .collect::<Vec<_>>(),
            [("mlx5_0", 1), ("mlx5_3", 1)]
        );
        let named: Vec<(&str, u64)> = ports[1]
            .counters
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(
            named,
            [
                ("link_downed", 0),
                ("out_of_sequence", 7),
                ("symbol_error", 1204)
            ]
        );
        assert_eq!(ports[0].counters["rx_icrc_encapsulated"], 3);
    }

    #[test]
    fn the_live_machine_without_rdma_reads_nothing() {
        let live = SysRoot::live();
        if live.exists(CLASS) {
            eprintln!("this machine has {CLASS}: nothing to check here");
            return;
        }
        assert!(read_error_counters(&live).is_empty());
    }
}
