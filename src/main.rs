//! The collbench command: dispatches to a benchmark run (the default) or a subcommand.

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let code = collbench::app::main_with_args(argv);
    std::process::exit(code);
}
