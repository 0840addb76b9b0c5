//! One sweep on one World with one backend: what fits in memory, who the ranks are, the header, the rows,
//! and the verdicts at the end (check, slow ranks, gate) that decide the exit code.

use super::header;
use super::reporter::Reporter;
use super::topology;
use crate::backend::Backend;
use crate::collective::Collective;
use crate::engine::{
    buffer_bytes, check_traffic, combinations, Combination, Engine, EngineSettings, NullSink,
};
use crate::error::{Error, ExitCode, Result};
use crate::plan::Plan;
use crate::report::document::{DocumentHeader, MemoryCap, PlanReport, RunDocument};
use crate::report::{summary, table};
use crate::size::HumanSize;
use crate::traffic::Traffic;
use crate::watchdog::Watchdog;
use crate::world::{all_gather_value, Combine, World};

/// Room left for the check's host pieces and the library's own allocations.
const HEADROOM_BYTES: u64 = 256 << 20;

/// The sizes whose two buffers (each `extra` bytes more than the operation needs: -E's second offset)
/// fit in `free_bytes` (the least any rank has), and the cap when some do not.
pub fn fit_sizes(
    requested: &[u64],
    combos: &[Combination],
    comm_sizes: &[usize],
    traffic: &Traffic,
    (free_bytes, extra): (u64, u64),
    backend: &str,
) -> (Vec<u64>, Option<MemoryCap>) {
    let usable = free_bytes.saturating_sub(HEADROOM_BYTES);
    let per_buffer = |s| buffer_bytes(combos, s, comm_sizes, traffic) + extra;
    let sizes: Vec<u64> = requested
        .iter()
        .copied()
        .filter(|&s| 2 * per_buffer(s) <= usable)
        .collect();
    let cap = (sizes.len() < requested.len()).then(|| {
        let requested_max = requested.last().copied().unwrap_or(0);
        MemoryCap {
            requested_max_bytes: requested_max,
            capped_max_bytes: sizes.last().copied().unwrap_or(0),
            reason: format!(
                "{} needs two buffers of {} per rank, but the rank with the least memory has {} free ({}), less {} of headroom",
                HumanSize(requested_max),
                HumanSize(per_buffer(requested_max)),
                HumanSize(free_bytes),
                if backend == "mpi" { "host memory, shared by the ranks of each host" } else { "device memory" },
                HumanSize(HEADROOM_BYTES)
            ),
        }
    });
    (sizes, cap)
}

/// The backend the plan asks for, as the document names it before one is chosen ("auto", "nccl", ...).
pub fn backend_asked(plan: &Plan) -> String {
    serde_json::to_value(plan.backend)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The document as rank 0 writes it when the run starts, before a backend exists: what was asked for,
/// by which command, and that it is running. The sweep fills in the rest as it learns it.
pub fn initial_document(plan: &Plan, header: DocumentHeader) -> RunDocument {
    RunDocument {
        header,
        plan: PlanReport {
            requested: serde_json::to_value(plan).unwrap_or(serde_json::Value::Null),
            sizes: Vec::new(),
            memory_cap: None,
        },
        notes: Vec::new(),
        peak_gbps: None,
        topology: None,
        telemetry: None,
        rows: Vec::new(),
        summary: None,
    }
}

pub fn sweep(
    plan: &Plan,
    world: &dyn World,
    backend: &mut dyn Backend,
    reason: &str,
    watchdog: &Watchdog,
    reporter: &mut Option<Reporter>,
) -> Result<i32> {
    let n = world.size();
    let rank = world.rank();
    watchdog.arm(|| "gathering host names and making the communicators of --groups".into());
    let hosts: Vec<String> = all_gather_value(world, &world.host().to_string())?;
    let mut layouts = crate::layout::create(&plan.groups, &hosts, world, backend)?;
    let comm_sizes: Vec<usize> = layouts
        .iter()
        .flat_map(|l| l.groups.iter().map(|g| g.members.len()))
        .collect();
    let smallest = comm_sizes.iter().copied().min().unwrap_or(n);
    watchdog.disarm();
    // Every rank judges the plan against its backend; all leave together if any cannot run it.
    let judged = combinations(plan, backend, smallest)
        .and_then(|c| check_traffic(plan, &c.0, &comm_sizes).map(|_| c));
    let mut refused = [f64::from(u8::from(judged.is_err()))];
    world.all_reduce_f64(&mut refused, Combine::Max)?;
    let (combos, mut notes) = match judged {
        Err(e) => return Err(e),
        Ok(_) if refused[0] > 0.0 => {
            return Err(Error::Usage(
                "another rank's backend cannot run this plan (rank 0 says why)".into(),
            ))
        }
        Ok(c) => c,
    };

    if plan.check_iters > 0 {
        let mut seen = Vec::new();
        for c in combos.iter().map(|c| c.collective) {
            if !seen.contains(&c) {
                seen.push(c);
                let caps = backend.capabilities();
                notes.extend(caps.in_place_undefined(c).map(str::to_string));
                if c == Collective::AllToAllv && caps.in_place_v_needs_symmetry {
                    notes.push(format!(
                        "in-place all_to_allv is measured only where the matrix is symmetric: the {} library's in-place form sends what each rank receives",
                        backend.name()
                    ));
                }
            }
        }
    }

    watchdog.arm(|| "gathering free memory from every rank".into());
    let mut free = [backend.free_memory()? as f64];
    world.all_reduce_f64(&mut free, Combine::Min)?;
    let (sizes, memory_cap) = fit_sizes(
        &plan.sizes(plan.max_bytes),
        &combos,
        &comm_sizes,
        &plan.traffic,
        (free[0] as u64, plan.extra_buffer_bytes()),
        backend.name(),
    );
    if let Some(cap) = &memory_cap {
        notes.push(format!(
            "-e capped from {} to {}: {}",
            HumanSize(cap.requested_max_bytes),
            HumanSize(cap.capped_max_bytes),
            cap.reason
        ));
    }
    let Some(&largest) = sizes.last() else {
        return Err(Error::Unsupported(format!(
            "not even -b {} fits in the memory free on every rank ({} on the rank with the least): lower -b",
            HumanSize(plan.min_bytes),
            HumanSize(free[0] as u64)
        )));
    };
    let per_buffer = buffer_bytes(&combos, largest, &comm_sizes, &plan.traffic);
    let allocated = per_buffer + plan.extra_buffer_bytes();
    watchdog.arm(|| format!("allocating buffers of {}", HumanSize(allocated)));
    backend.allocate(allocated)?;

    let ranks = super::document::gather_ranks(world, backend, watchdog)?;
    let me = ranks[rank].clone();
    watchdog.arm(|| "gathering topology information".into());
    let probe_links = crate::pairs::probe::wanted(plan.link_probe, &ranks);
    let nodes = topology::gather_nodes(world)?;
    let placements = topology::placements(&ranks);
    for layout in layouts.iter_mut().filter(|l| l.spec.is_some()) {
        layout.peaks = crate::layout::peaks::group_peaks(
            layout,
            &nodes,
            &placements,
            backend.name(),
            plan.peak_override_gbps,
        );
    }
    watchdog.arm(|| "opening each rank's GPU telemetry".into());
    let (mut telemetry, telemetry_header) =
        crate::telemetry::Telemetry::start(world, &me.device, plan.telemetry)?;
    if let Some(note) = telemetry_header.as_ref().and_then(|h| h.missing_note()) {
        notes.push(note);
    }
    watchdog.disarm();

    if let Some(r) = reporter.as_mut() {
        let topo = topology::report(nodes, &ranks, backend.name(), plan.peak_override_gbps);
        let doc = &mut r.doc;
        super::document::backend_opened(&mut doc.header, backend, reason, world, ranks.clone());
        doc.plan.sizes = sizes.clone();
        doc.plan.memory_cap = memory_cap;
        doc.notes = notes;
        doc.peak_gbps = topo.peak.as_ref().map(|p| p.gbps);
        doc.topology = Some(topo);
        doc.telemetry = telemetry_header;
        let columns = table::Columns {
            peak: doc.topology.as_ref().and_then(|t| t.peak.clone()),
            stats: plan.stats_columns,
            telemetry: plan.telemetry_columns,
            groups: !plan.groups.is_empty(),
            cputime: plan.report_cputime,
            per_iteration: plan.per_iter_timing,
            timestamps: plan.timestamps,
            alltoallv_summary: plan.alltoallv_summary,
            energy: doc.telemetry.as_ref().is_some_and(|t| t.any_energy()),
            algo: plan.algo_columns,
        };
        r.begin_table(
            columns,
            crate::engine::row_count(plan, &combos, sizes.len(), smallest, layouts.len()),
            plan.progress,
        );
        r.save()?;
        if !plan.quiet {
            let mut text = header::render(&r.doc, plan);
            if let Some(t) = &r.doc.topology {
                text.push_str(&topology::header_lines(t));
            }
            if let Some(from) = &plan.groups_from {
                let reports: Vec<_> = layouts.iter().filter_map(|l| l.report()).collect();
                text.push_str(&header::layout_lines(from, &reports));
            }
            r.print(&text);
        }
    }

    let ports = super::port_counters::PortWatch::start(world, watchdog, &me.device);
    let mut engine = Engine::new(
        EngineSettings::of(plan),
        world,
        backend,
        watchdog,
        allocated,
    )
    .observed_by(&mut telemetry);
    // -M: the device memory free before the rows and after, for what the collectives took.
    let free_before_rows = if plan.memory_report {
        Some(engine.free_memory()?)
    } else {
        None
    };
    match reporter.as_mut() {
        Some(r) => engine.run(plan, &combos, &layouts, &sizes, r)?,
        None => engine.run(plan, &combos, &layouts, &sizes, &mut NullSink)?,
    }
    let memory = match free_before_rows {
        Some(before) => {
            let after = engine.free_memory()?;
            Some(memory_report(
                world,
                backend,
                watchdog,
                before.saturating_sub(after),
            )?)
        }
        None => None,
    };
    // After the rows, which it leaves as they are: every rank takes part.
    let probe = if probe_links {
        Some(crate::pairs::probe::run(
            plan, world, backend, watchdog, &ranks, per_buffer,
        )?)
    } else {
        None
    };
    // After the probe, whose traffic crosses the same links.
    let link_errors = ports.finish(world, watchdog)?;

    // Rank 0 judges; every rank leaves with its verdict.
    let mut code = [0.0];
    if let Some(r) = reporter.as_mut() {
        r.finish_progress();
        r.finish_rccl_results()?;
        code[0] = finish(plan, r, probe, link_errors, memory)?.code() as f64;
    }
    world.all_reduce_f64(&mut code, Combine::Max)?;
    Ok(code[0] as i32)
}

/// The end of the run on rank 0: footer, slow ranks, gate; the exit code (a failed check first, then the
/// gate).
fn finish(
    plan: &Plan,
    r: &mut Reporter,
    probe: Option<crate::pairs::probe::LinkProbe>,
    link_errors: Option<crate::report::port_errors::LinkErrorReport>,
    memory: Option<crate::report::document::MemoryReport>,
) -> Result<ExitCode> {
    let mut s = summary::summarise(&r.doc.rows, plan.check_iters > 0);
    s.min_bw = plan
        .min_bw_gbps
        .map(|required| crate::fleet::gate::judge_min_bw(required, s.avg_busbw.as_ref()));
    s.memory = memory;
    let slow = crate::fleet::slow::attribute(
        &r.doc.rows,
        &r.doc.header.ranks,
        plan.slow_threshold_percent,
    );
    let mut text = summary::footer(&s);
    if let Some(m) = &s.memory {
        text.push_str(&summary::memory_line(m));
    }
    text.push_str(&crate::fleet::slow::render(&slow));
    if let Some(header) = &r.doc.telemetry {
        s.telemetry =
            crate::telemetry::findings::summarise(&r.doc.rows, &r.doc.header.ranks, header, &slow);
        if let Some(t) = &s.telemetry {
            text.push_str(&crate::telemetry::findings::render(t, r.doc.rows.len()));
        }
    }
    s.slow_ranks = Some(slow);
    if let Some(p) = &probe {
        text.push_str(&crate::pairs::probe::render(p));
    }
    s.link_probe = probe;
    if let Some(l) = &link_errors {
        text.push_str(&crate::fleet::link_errors::render(l));
    }
    // Wrong elements, or an average below 0.9 x NCCL_TESTS_MIN_BW: nccl-tests' exit code 7 for both.
    let mut exit = if s.check_passed == Some(false) || s.min_bw.as_ref().is_some_and(|m| !m.passed)
    {
        ExitCode::CheckFailed
    } else {
        ExitCode::Success
    };
    if !plan.expect.is_empty() {
        let gate = crate::fleet::gate::judge(
            &plan.expect,
            &r.doc.rows,
            r.doc.peak_gbps,
            link_errors.as_ref(),
        );
        text.push_str(&crate::fleet::gate::render(&gate));
        if exit == ExitCode::Success {
            exit = gate.exit_code();
        }
        s.gate = Some(gate);
    }
    if let Some(peak) = r.doc.topology.as_ref().and_then(|t| t.peak.as_ref()) {
        if r.doc
            .rows
            .iter()
            .flat_map(|row| [&row.out_of_place, &row.in_place])
            .flatten()
            .any(|m| m.busbw_gbps > peak.gbps)
        {
            text.push_str(&format!("# {}\n", crate::topo::peak::ABOVE_PEAK_FOOTNOTE));
        }
    }
    s.link_errors = link_errors;
    s.exit_code = exit.code();
    r.print(&text);
    r.doc.summary = Some(s);
    r.doc.header.life.complete(exit.code());
    r.save()?;
    Ok(exit)
}

/// -M's report: the communicator's and the buffers' memory as the backend measured them, and what the
/// collectives took while the rows ran (`collective_bytes`, this rank's), each the most of any rank.
fn memory_report(
    world: &dyn World,
    backend: &mut dyn crate::backend::Backend,
    watchdog: &Watchdog,
    collective_bytes: u64,
) -> Result<crate::report::document::MemoryReport> {
    let used = backend.memory_use().unwrap_or_default();
    let mut most = [
        used.initialization_bytes as f64,
        used.user_allocated_bytes as f64,
        collective_bytes as f64,
    ];
    watchdog.arm(|| "gathering the GPU memory report".into());
    world.all_reduce_f64(&mut most, Combine::Max)?;
    watchdog.disarm();
    Ok(crate::report::document::MemoryReport {
        initialization_bytes: most[0] as u64,
        user_allocated_bytes: most[1] as u64,
        collective_bytes: most[2] as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collective::Collective;
    use crate::dtype::DataType;

    #[test]
    fn sizes_beyond_free_memory_are_dropped_with_the_reason() {
        let combos = [Combination {
            collective: Collective::AllGather,
            dtype: DataType::Float,
            op: None,
        }];
        let requested = crate::size::sweep(1 << 20, 1 << 30, crate::size::Step::Factor(2));
        // all_gather's receive buffer holds the whole size: 2 x size + 256M headroom must fit.
        let (sizes, cap) = fit_sizes(
            &requested,
            &combos,
            &[4],
            &Traffic::default(),
            ((256 << 20) + (512 << 20), 0),
            "mpi",
        );
        assert_eq!(sizes.last(), Some(&(256 << 20)));
        let cap = cap.expect("capped");
        assert_eq!(
            (cap.requested_max_bytes, cap.capped_max_bytes),
            (1 << 30, 256 << 20)
        );
        assert!(cap.reason.contains("host memory"), "{}", cap.reason);
        let (all, none) = fit_sizes(
            &requested,
            &combos,
            &[4],
            &Traffic::default(),
            (64 << 30, 0),
            "nccl",
        );
        assert_eq!(all, requested);
        assert!(none.is_none());
        // -E: each buffer holds 192 MiB more, so 256M no longer fits where it did.
        let (rotating, cap) = fit_sizes(
            &requested,
            &combos,
            &[4],
            &Traffic::default(),
            (
                (256 << 20) + (512 << 20),
                crate::plan::ROTATING_TENSOR_BYTES,
            ),
            "nccl",
        );
        assert_eq!(rotating.last(), Some(&(64 << 20)));
        let why = cap.unwrap().reason;
        assert!(why.contains("1G needs two buffers of 1216M"), "{why}");
    }
}
