//! The command line (clap): a benchmark run by default, with nccl-tests' flags (run.rs), and one
//! subcommand per other command, each in its own file. Validation lives above (plan.rs for a run, the
//! commands for theirs); this layer only reads argv.

pub mod compare;
pub mod library;
pub mod pairs;
pub mod plot;
pub mod run;
pub mod topo;
pub mod workload;

pub use library::LibraryArgs;
pub use run::{Allocator, RunArgs};

use clap::{Parser, Subcommand};

/// Measure collective communication (NCCL, RCCL or MPI) the way nccl-tests does, and more.
///
/// Launch one process per GPU with mpirun or srun; without a launcher collbench is one rank.
/// Sizes take K, M, G suffixes (powers of 1024). Flags follow nccl-tests; where the meaning differs,
/// this help says so. Without a command, collbench runs the benchmark of the COLLECTIVEs named.
#[derive(Debug, Parser)]
#[command(
    name = "collbench",
    version,
    // nccl-tests' -V is the device implementation's CTA count (run.rs): --version alone prints ours.
    disable_version_flag = true,
    after_help = run::AFTER_HELP,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    subcommand_value_name = "COMMAND",
    subcommand_help_heading = "Commands"
)]
pub struct Cli {
    /// Print the version.
    #[arg(long = "version", action = clap::ArgAction::Version)]
    version: Option<bool>,
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// The commands besides the benchmark run.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// What this machine's GPUs, links and NICs are, and their peak (every host under mpirun).
    Topo(topo::TopoArgs),
    /// Regressions between two runs (BASE.json NEW.json).
    Compare(compare::CompareArgs),
    /// busbw and time against size, from one or more runs (-o FILE.svg|.png).
    Plot(plot::PlotArgs),
    /// Every pair of hosts or ranks: the matrix, and the bad host or link named.
    Pairs(pairs::PairsArgs),
    /// A model's step on TP/EP layouts, measured and ranked.
    Workload(workload::WorkloadArgs),
}

/// What argv asks for: a benchmark run, or one of the commands.
#[derive(Debug)]
// Made once per process and moved once: the variants' sizes cost nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub enum Invocation {
    Run(RunArgs),
    Command(Command),
}

/// Reads argv (argv[0] is the program). A clap error carries its own message and exit code (2 for a
/// usage error, 0 for --help and --version).
pub fn parse(argv: &[String]) -> Result<Invocation, clap::Error> {
    let cli = Cli::try_parse_from(argv)?;
    Ok(match cli.command {
        Some(command) => Invocation::Command(command),
        None => Invocation::Run(cli.run),
    })
}

/// Whether `name` is one of the commands (for a message when one is given where a collective goes).
pub fn is_command(name: &str) -> bool {
    <Cli as clap::CommandFactory>::command()
        .get_subcommands()
        .any(|c| c.get_name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn a_collective_is_a_run_and_a_command_name_is_its_command() {
        match parse(&argv("collbench all_reduce -b 1M -e 1M")).unwrap() {
            Invocation::Run(run) => assert_eq!(run.collectives, ["all_reduce"]),
            other => panic!("{other:?}"),
        }
        match parse(&argv("collbench pairs --by rank -b 64K")).unwrap() {
            Invocation::Command(Command::Pairs(p)) => assert_eq!(p.size, "64K"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(&argv("collbench topo")).unwrap(),
            Invocation::Command(Command::Topo(_))
        ));
    }

    #[test]
    fn a_command_after_run_flags_is_a_collective_name_and_a_run_needs_one() {
        // The run's validation then names the command (plan.rs).
        match parse(&argv("collbench -n 5 pairs")).unwrap() {
            Invocation::Run(run) => assert_eq!(run.collectives, ["pairs"]),
            other => panic!("{other:?}"),
        }
        assert!(is_command("pairs") && is_command("workload") && !is_command("all_reduce"));
        let e = parse(&argv("collbench -n 5")).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("COLLECTIVE"), "{e}");
    }

    #[test]
    fn the_help_lists_every_command_from_clap() {
        let help = <Cli as clap::CommandFactory>::command()
            .render_help()
            .to_string();
        for name in ["topo", "compare", "plot", "pairs", "workload"] {
            assert!(
                help.lines().any(|l| l.trim_start().starts_with(name)),
                "{name} missing from:\n{help}"
            );
        }
        assert!(help.contains("--minbytes"), "{help}");
    }
}
