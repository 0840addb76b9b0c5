//! Which RDMA ports had their error counters rise while the run went: one host's readings before and
//! after compared (counters that went backwards are a reset, not a huge delta), every host's merged on
//! rank 0, and the footer lines that name the port to check.

use crate::report::port_errors::{CounterChange, LinkErrorReport, PortRead};
use crate::topo::port_counters::PortCounters;

/// One host's report from its readings before and after the run. Only ports and counters read both
/// times are compared; a host with none is listed in `hosts_without_counters`.
pub fn compare(host: &str, before: &[PortCounters], after: &[PortCounters]) -> LinkErrorReport {
    let mut report = LinkErrorReport::default();
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
            report.changes.push(CounterChange {
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
            report.ports_read.push(PortRead {
                host: host.to_string(),
                device: now.device.clone(),
                port: now.port,
                counters,
            });
        }
    }
    if report.ports_read.is_empty() {
        report.hosts_without_counters.push(host.to_string());
    }
    report
}

/// Every host's report in one; None when no host had a readable port (the document's null).
pub fn merge(hosts: impl IntoIterator<Item = LinkErrorReport>) -> Option<LinkErrorReport> {
    let mut all = LinkErrorReport::default();
    for h in hosts {
        all.ports_read.extend(h.ports_read);
        all.hosts_without_counters.extend(h.hosts_without_counters);
        all.changes.extend(h.changes);
    }
    (!all.ports_read.is_empty()).then_some(all)
}

/// Each port with changed counters, in the report's order, with its changes.
pub fn ports_with_changes(report: &LinkErrorReport) -> Vec<(String, Vec<&CounterChange>)> {
    let mut ports: Vec<(String, Vec<&CounterChange>)> = Vec::new();
    for c in &report.changes {
        let name = format!("{} {} port {}", c.host, c.device, c.port);
        match ports.iter_mut().find(|(n, _)| *n == name) {
            Some((_, list)) => list.push(c),
            None => ports.push((name, vec![c])),
        }
    }
    ports
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
            let mut h: Vec<&str> = report.ports_read.iter().map(|p| p.host.as_str()).collect();
            h.dedup();
            h.len()
        };
        out.push_str(&format!(
            "# Link errors          : none on {} RDMA port(s) of {hosts} host(s) (error counters read before and after the run)\n",
            report.ports_read.len()
        ));
    }
    for (port, changes) in ports {
        let what: Vec<String> = changes.iter().map(|c| describe(c)).collect();
        let advice = if changes.iter().any(|c| !c.reset) {
            "check that cable or transceiver"
        } else {
            "counters reset during the run (a driver reset or a clear): the errors meanwhile are unknown"
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
        let both = merge([a, b]).expect("one host had counters");
        assert_eq!(
            render(&both),
            "# Link errors          : none on 1 RDMA port(s) of 1 host(s) (error counters read before and after the run)\n\
             #   no RDMA port error counter could be read on: b\n"
        );
        assert_eq!(merge([compare("c", &[], &[])]), None);
        // A port gone by the end (a device reset) is not compared.
        assert_eq!(merge([compare("d", &quiet, &[])]), None);
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
}
