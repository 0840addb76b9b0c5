//! The header rank 0 prints before the table: version, backend and libraries, parameters, one line per rank.
//! It lives in app/, not report/, because it renders from the Plan, which report/ must not know.

use crate::plan::{Iterations, Plan};
use crate::report::document::{LayoutReport, RunDocument};
use crate::size::HumanSize;

pub fn render(doc: &RunDocument, plan: &Plan) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!(
        "# collbench {} (nccl-tests compatible metrics)",
        doc.header.collbench_version
    ));
    line(format!(
        "# Backend: {} ({})",
        doc.header.backend.name, doc.header.backend.reason
    ));
    for lib in &doc.header.backend.libraries {
        line(format!("# Library: {} {}", lib.library, lib.version));
    }
    let sizes = &doc.plan.sizes;
    let collectives: Vec<&str> = plan.collectives.iter().map(|c| c.name()).collect();
    let dtypes: Vec<&str> = plan.dtypes.iter().map(|t| t.name()).collect();
    let ops: Vec<&str> = plan.ops.iter().map(|o| o.name()).collect();
    line(format!(
        "# Collectives: {}   Types: {}   Ops: {}",
        collectives.join(" "),
        dtypes.join(" "),
        ops.join(" ")
    ));
    if let (Some(first), Some(last)) = (sizes.first(), sizes.last()) {
        let step = match plan.step {
            crate::size::Step::Factor(f) => format!("x{f}"),
            crate::size::Step::Bytes(b) => format!("+{}", HumanSize(b)),
        };
        line(format!(
            "# Sizes: {} to {} ({step}, {} sizes)   nranks {}   iters {}   warmup {}   agg {}   check {}   average {}   blocking {}   cycles {}",
            HumanSize(*first),
            HumanSize(*last),
            sizes.len(),
            doc.header.ranks.len(),
            match plan.iters {
                Iterations::Fixed(n) => n.to_string(),
                Iterations::Auto { ci_target_percent, min, cap_s } => {
                    format!("auto (95% CI within {ci_target_percent}%, at least {min}, at most {cap_s} s per size)")
                }
            },
            plan.warmup_iters,
            plan.agg_iters,
            plan.check_iters,
            serde_json::to_value(plan.average).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
            plan.blocking.code(),
            plan.run_cycles
        ));
    }
    if let Some(habits) = rccl_tests_line(plan) {
        line(habits);
    }
    for note in &doc.notes {
        line(format!("# Note: {note}"));
    }
    line("#".into());
    line("# Using devices".into());
    for r in &doc.header.ranks {
        let index = r
            .device
            .index
            .map(|i| i.to_string())
            .unwrap_or_else(|| "-".into());
        let bus = r.device.pci_bus_id.clone().unwrap_or_else(|| "-".into());
        line(format!(
            "#  Rank {:3} Pid {:7} on {:>16} device {:>2} [{}] {}",
            r.rank, r.pid, r.host, index, bus, r.device.name
        ));
    }
    line("#".into());
    out
}

/// The --groups lines: where the layouts came from (the flag, or NCCL_TESTS_SPLIT honoured) and each
/// layout's groups with their members and hosts.
pub fn layout_lines(from: &str, layouts: &[LayoutReport]) -> String {
    let mut out = format!(
        "# Groups from {from}: {} layout(s), every group of a layout measured at once\n",
        layouts.len()
    );
    for l in layouts {
        let groups: Vec<String> = l
            .groups
            .iter()
            .map(|g| {
                let members: Vec<String> = g.members.iter().map(|r| r.to_string()).collect();
                let mut hosts = g.hosts.clone();
                hosts.dedup();
                format!("[{}] on {}", members.join(" "), hosts.join(","))
            })
            .collect();
        out.push_str(&format!(
            "#   {} ({}): {}\n",
            l.label,
            l.spec,
            groups.join("; ")
        ));
    }
    out
}

/// The rccl-tests flags in force, in their own spelling, when any is: "# rccl-tests: -Y fine -O 1 ...".
pub fn rccl_tests_line(plan: &Plan) -> Option<String> {
    let mut said = Vec::new();
    if plan.memory != crate::backend::MemoryKind::Coarse {
        said.push(format!("-Y {} (buffers' memory)", plan.memory.name()));
    }
    match (plan.placements.out_of_place, plan.placements.in_place) {
        (true, false) => said.push("-O 1 (out-of-place only)".into()),
        (false, true) => said.push("-O 0 (in-place only)".into()),
        _ => {}
    }
    if plan.delay_inout_place_us > 0 {
        said.push(format!(
            "-q {} (us between out-of-place and in-place)",
            plan.delay_inout_place_us
        ));
    }
    if plan.rotating_tensor {
        said.push("-E 1 (iterations alternate between offsets 192 MiB apart)".into());
    }
    if plan.algo_columns {
        said.push(
            "-A 1 (the library's algo, proto, channels per size; N/A where it does not tell)"
                .into(),
        );
    }
    if let Some((format, path)) = &plan.rccl_output {
        said.push(format!(
            "-Z {} -X {}",
            serde_json::to_value(format)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            path.display()
        ));
    }
    (!said.is_empty()).then(|| format!("# rccl-tests: {}", said.join("   ")))
}
