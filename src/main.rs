//! The collbench command: a benchmark run (the default), or the topo, compare, plot, pairs and workload subcommands.

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let sub = |name: &str| -> Vec<String> {
        std::iter::once(format!("collbench {name}"))
            .chain(argv.iter().skip(2).cloned())
            .collect()
    };
    let code = match argv.get(1).map(String::as_str) {
        Some("topo") => collbench::app::topo_main(&sub("topo")),
        Some("compare") => collbench::fleet::compare::compare_main(&sub("compare")),
        Some("pairs") => collbench::app::pairs_main(&sub("pairs")),
        Some("workload") => collbench::app::workload_main(&sub("workload")),
        Some("plot") => collbench::fleet::plot::plot_main(&sub("plot")),
        _ => collbench::app::main_with_args(argv),
    };
    std::process::exit(code);
}
