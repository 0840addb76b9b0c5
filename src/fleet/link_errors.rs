//! Which RDMA ports had their error counters rise while the run went: one host's readings before and
//! after compared (counters that went backwards are a reset, not a huge delta), every host's merged on
//! rank 0, and the footer lines that name the port to check.

use crate::report::port_errors::{CounterChange, LinkErrorReport, LinkKind, PortRead};
use crate::topo::port_counters::PortCounters;

/// One host's report from its RDMA ports' readings before and after the run. Only ports and counters
/// read both times are compared; a host with none is listed in `hosts_without_counters`.
pub fn compare(host: &str, before: &[PortCounters], after: &[PortCounters]) -> LinkErrorReport {
    let (ports_read, changes) = compare_links(host, LinkKind::RdmaPort, before, after);
    LinkErrorReport {
        hosts_without_counters: if ports_read.is_empty() {
            vec![host.to_string()]
        } else {
            Vec::new()
        },
        ports_read,
        nvlinks_read: Vec::new(),
        changes,
    }
}

/// One GPU's report from its NVLinks' readings before and after the run. A GPU without NVLink adds
/// nothing: NVLinks are judged where they exist, never required.
pub fn compare_nvlinks(
    host: &str,
    before: &[PortCounters],
    after: &[PortCounters],
) -> LinkErrorReport {
    let (nvlinks_read, changes) = compare_links(host, LinkKind::Nvlink, before, after);
    LinkErrorReport {
        nvlinks_read,
        changes,
        ..LinkErrorReport::default()
    }
}

/// The links read both times and each of their counters that changed.
fn compare_links(
    host: &str,
    link: LinkKind,
    before: &[PortCounters],
    after: &[PortCounters],
) -> (Vec<PortRead>, Vec<CounterChange>) {
    let mut read = Vec::new();
    let mut changes = Vec::new();
    for now in after {
        let Some(then) = before
            .iter()
            .find(|b| b.device == now.device && b.port == now.port)
        else {
            continue;
        };
        let mut counters = 0;
        for (name, &after_value) in &now.counters {
            let Some(&before_value) = then.counters.get(name) else {
                continue;
            };
            counters += 1;
            if after_value == before_value {
                continue;
            }
            changes.push(CounterChange {
                link,
                host: host.to_string(),
                device: now.device.clone(),
                port: now.port,
                counter: name.clone(),
                before: before_value,
                after: after_value,
                delta: after_value.checked_sub(before_value),
                reset: after_value < before_value,
            });
        }
        if counters > 0 {
            read.push(PortRead {
                host: host.to_string(),
                device: now.device.clone(),
                port: now.port,
                counters,
            });
        }
    }
    (read, changes)
}

/// Every host's and GPU's report in one; None when no RDMA port and no NVLink was read (the
/// document's null). A GPU reported twice (two ranks on one GPU) counts once. A job on one host sends
/// nothing through its RDMA ports, so there a host without them is not listed as one that cannot be
/// judged: its NVLinks are its links.
pub fn merge(reports: impl IntoIterator<Item = LinkErrorReport>) -> Option<LinkErrorReport> {
    let mut all = LinkErrorReport::default();
    for r in reports {
        let known: Vec<(String, String)> = all
            .nvlinks_read
            .iter()
            .map(|l| (l.host.clone(), l.device.clone()))
            .collect();
        let new_gpu =
            |host: &str, device: &str| !known.iter().any(|(h, d)| h == host && d == device);
        all.ports_read.extend(r.ports_read);
        all.hosts_without_counters.extend(r.hosts_without_counters);
        all.nvlinks_read.extend(
            r.nvlinks_read
                .into_iter()
                .filter(|l| new_gpu(&l.host, &l.device)),
        );
        all.changes.extend(
            r.changes
                .into_iter()
                .filter(|c| c.link == LinkKind::RdmaPort || new_gpu(&c.host, &c.device)),
        );
    }
    let mut hosts: Vec<&str> = all
        .ports_read
        .iter()
        .chain(&all.nvlinks_read)
        .map(|l| l.host.as_str())
        .chain(all.hosts_without_counters.iter().map(String::as_str))
        .collect();
    hosts.sort_unstable();
    hosts.dedup();
    if hosts.len() == 1 {
        all.hosts_without_counters.clear();
    }
    (!all.ports_read.is_empty() || !all.nvlinks_read.is_empty()).then_some(all)
}

/// Each port or NVLink with changed counters, in the report's order, with its changes.
pub fn ports_with_changes(report: &LinkErrorReport) -> Vec<(String, Vec<&CounterChange>)> {
    let mut ports: Vec<(String, Vec<&CounterChange>)> = Vec::new();
    for c in &report.changes {
        let name = match c.link {
            LinkKind::RdmaPort => format!("{} {} port {}", c.host, c.device, c.port),
            LinkKind::Nvlink => format!("{} {} NVLink {}", c.host, c.device, c.port),
        };
        match ports.iter_mut().find(|(n, _)| *n == name) {
            Some((_, list)) => list.push(c),
            None => ports.push((name, vec![c])),
        }
    }
    ports
}

/// What was read: "9 RDMA port(s)", "24 NVLink(s)" or "9 RDMA port(s) and 24 NVLink(s)".
pub fn links_read(report: &LinkErrorReport) -> String {
    let ports = format!("{} RDMA port(s)", report.ports_read.len());
    match report.nvlinks_read.len() {
        0 => ports,
        n if report.ports_read.is_empty() => format!("{n} NVLink(s)"),
        n => format!("{ports} and {n} NVLink(s)"),
    }
}

/// "symbol_error +1204" or "port_rcv_errors reset (52 -> 0)".
pub fn describe(change: &CounterChange) -> String {
    match change.delta {
        Some(d) if !change.reset => format!("{} +{d}", change.counter),
        _ => format!(
            "{} reset ({} -> {})",
            change.counter, change.before, change.after
        ),
    }
}

/// The footer's lines: each port whose counters rose, or that nothing did and how much was read.
pub fn render(report: &LinkErrorReport) -> String {
    let mut out = String::new();
    let ports = ports_with_changes(report);
    if ports.is_empty() {
        let hosts = {
            let mut h: Vec<&str> = report
                .ports_read
                .iter()
                .chain(&report.nvlinks_read)
                .map(|p| p.host.as_str())
                .collect();
            h.sort_unstable();
            h.dedup();
            h.len()
        };
        out.push_str(&format!(
            "# Link errors          : none on {} of {hosts} host(s) (error counters read before and after the run)\n",
            links_read(report)
        ));
    }
    for (port, changes) in ports {
        let what: Vec<String> = changes.iter().map(|c| describe(c)).collect();
        let advice = if changes.iter().all(|c| c.reset) {
            "counters reset during the run (a driver reset or a clear): the errors meanwhile are unknown"
        } else if changes[0].link == LinkKind::Nvlink {
            "check that GPU's NVLink (the GPU, its baseboard, the NVSwitch or GPU at the other end)"
        } else {
            "check that cable or transceiver"
        };
        out.push_str(&format!(
            "# Link errors during the run: {port}: {}: {advice}\n",
            what.join(", ")
        ));
    }
    if !report.hosts_without_counters.is_empty() {
        out.push_str(&format!(
            "#   no RDMA port error counter could be read on: {}\n",
            report.hosts_without_counters.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(device: &str, counters: &[(&str, u64)]) -> PortCounters {
        PortCounters {
            device: device.into(),
            port: 1,
            counters: counters.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn rises_are_deltas_and_a_counter_that_went_back_is_a_reset() {
        let before = [
            port("mlx5_0", &[("symbol_error", 5), ("link_downed", 0)]),
            port(
                "mlx5_3",
                &[
                    ("symbol_error", 10),
                    ("link_downed", 2),
                    ("port_rcv_errors", 52),
                ],
            ),
        ];
        let after = [
            port("mlx5_0", &[("symbol_error", 5), ("link_downed", 0)]),
            port(
                "mlx5_3",
                &[
                    ("symbol_error", 1214),
                    ("link_downed", 3),
                    ("port_rcv_errors", 0),
                    // Only in the second reading: not compared.
                    ("VL15_dropped", 9),
                ],
            ),
        ];
        let r = compare("node7", &before, &after);
        assert!(r.hosts_without_counters.is_empty());
        assert_eq!(
            r.ports_read
                .iter()
                .map(|p| (p.device.as_str(), p.counters))
                .collect::<Vec<_>>(),
            [("mlx5_0", 2), ("mlx5_3", 3)]
        );
        let got: Vec<(&str, Option<u64>, bool)> = r
            .changes
            .iter()
            .map(|c| (c.counter.as_str(), c.delta, c.reset))
            .collect();
        assert_eq!(
            got,
            [
                ("link_downed", Some(1), false),
                ("port_rcv_errors", None, true),
                ("symbol_error", Some(1204), false),
            ]
        );
        let text = render(&r);
        assert_eq!(
            text,
            "# Link errors during the run: node7 mlx5_3 port 1: link_downed +1, port_rcv_errors reset (52 -> 0), symbol_error +1204: check that cable or transceiver\n"
        );
    }

    #[test]
    fn a_quiet_run_names_nothing_and_a_host_without_counters_is_listed() {
        let quiet = [port("mlx5_0", &[("symbol_error", 5)])];
        let a = compare("a", &quiet, &quiet);
        assert!(a.changes.is_empty());
        let b = compare("b", &[], &[]);
        assert_eq!(b.hosts_without_counters, ["b"]);
        let both = merge([a, b.clone()]).expect("one host had counters");
        assert_eq!(
            render(&both),
            "# Link errors          : none on 1 RDMA port(s) of 1 host(s) (error counters read before and after the run)\n\
             #   no RDMA port error counter could be read on: b\n"
        );
        assert_eq!(merge([compare("c", &[], &[])]), None);
        // A port gone by the end (a device reset) is not compared.
        assert_eq!(merge([compare("d", &quiet, &[])]), None);
        // One host without RDMA ports but with NVLinks: its traffic never left it, so nothing is missing.
        let gpu = [PortCounters {
            port: 0,
            ..port("GPU 0 (0000:18:00.0)", &[("nvlink_crc_flit", 0)])
        }];
        let alone =
            merge([b.clone(), compare_nvlinks("b", &gpu, &gpu)]).expect("NVLinks were read");
        assert!(alone.hosts_without_counters.is_empty(), "{alone:?}");
        // On two hosts the same host's network links cannot be judged.
        let two = merge([
            b,
            compare_nvlinks("b", &gpu, &gpu),
            compare("e", &quiet, &quiet),
        ])
        .expect("links were read");
        assert_eq!(two.hosts_without_counters, ["b"]);
    }

    #[test]
    fn a_port_with_only_resets_is_not_blamed_on_its_cable() {
        let r = compare(
            "n",
            &[port("mlx5_1", &[("link_downed", 4)])],
            &[port("mlx5_1", &[("link_downed", 0)])],
        );
        let text = render(&r);
        assert!(text.contains("link_downed reset (4 -> 0)"), "{text}");
        assert!(!text.contains("cable"), "{text}");
    }

    fn nvlink(gpu: &str, link: u32, counters: &[(&str, u64)]) -> PortCounters {
        PortCounters {
            port: link,
            ..port(gpu, counters)
        }
    }

    #[test]
    fn an_nvlink_rise_names_the_gpu_and_link_and_a_gpu_read_twice_counts_once() {
        let gpu = "GPU 1 (0000:42:00.0)";
        let before = [
            nvlink(gpu, 0, &[("nvlink_crc_flit", 0)]),
            nvlink(gpu, 3, &[("nvlink_crc_flit", 5), ("nvlink_replay", 0)]),
        ];
        let after = [
            nvlink(gpu, 0, &[("nvlink_crc_flit", 0)]),
            nvlink(gpu, 3, &[("nvlink_crc_flit", 17), ("nvlink_replay", 2)]),
        ];
        let one = compare_nvlinks("n", &before, &after);
        // NVLinks never make a host "without counters": only RDMA ports are required.
        assert!(one.hosts_without_counters.is_empty());
        assert!(one.ports_read.is_empty());
        assert_eq!(one.nvlinks_read.len(), 2);
        assert!(one.changes.iter().all(|c| c.link == LinkKind::Nvlink));
        // Two ranks on the same GPU report it twice; a GPU without NVLink reports nothing.
        let all = merge([
            one.clone(),
            one,
            compare_nvlinks("n", &[], &[]),
            compare(
                "n",
                &[port("mlx5_0", &[("symbol_error", 1)])],
                &[port("mlx5_0", &[("symbol_error", 1)])],
            ),
        ])
        .expect("links were read");
        assert_eq!(all.nvlinks_read.len(), 2);
        assert_eq!(all.changes.len(), 2);
        assert_eq!(links_read(&all), "1 RDMA port(s) and 2 NVLink(s)");
        assert_eq!(
            render(&all),
            "# Link errors during the run: n GPU 1 (0000:42:00.0) NVLink 3: nvlink_crc_flit +12, nvlink_replay +2: check that GPU's NVLink (the GPU, its baseboard, the NVSwitch or GPU at the other end)\n"
        );
    }

    #[test]
    fn nvlinks_alone_make_a_report_and_a_quiet_one_says_what_was_read() {
        let links = [nvlink("GPU 0 (0000:41:00.0)", 0, &[("nvlink_replay", 0)])];
        assert_eq!(merge([compare_nvlinks("a", &[], &[])]), None);
        let r = merge([compare_nvlinks("a", &links, &links), compare("a", &[], &[])])
            .expect("an NVLink was read");
        // One host: its traffic never left it, so the missing RDMA counters are not said.
        assert_eq!(
            render(&r),
            "# Link errors          : none on 1 NVLink(s) of 1 host(s) (error counters read before and after the run)\n"
        );
    }
}
