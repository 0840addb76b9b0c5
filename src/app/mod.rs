//! Every command from argv to exit code. main.rs calls `main`; each command has its file (run.rs the
//! benchmark run, topo.rs, compare.rs, plot.rs, pairs.rs, workload.rs), and they share how a command
//! meets its launcher (launch.rs), starts its document (document.rs, record.rs) and chooses its backend
//! (backend_choice.rs).

mod backend_choice;
mod compare;
mod document;
mod header;
mod job;
mod launch;
mod pairs;
mod plot;
mod port_counters;
pub mod record;
pub mod reporter;
mod run;
mod topo;
mod topology;
mod workload;

pub use job::fit_sizes;

use crate::cli::{Command, Invocation};

/// Runs the command argv names (a benchmark run when it names none); returns the process exit code.
pub fn main(argv: Vec<String>) -> i32 {
    match crate::cli::parse(&argv) {
        Err(e) => launch::usage_error_from_clap(e),
        Ok(Invocation::Run(args)) => run::main(&args, &argv),
        Ok(Invocation::Command(command)) => match command {
            Command::Topo(args) => topo::main(&args),
            Command::Compare(args) => compare::main(&args),
            Command::Plot(args) => plot::main(&args),
            Command::Pairs(args) => pairs::main(args, &argv),
            Command::Workload(args) => workload::main(args, &argv),
        },
    }
}
