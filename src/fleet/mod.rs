//! Fleet tools around a run's results: slow-rank attribution, the `--expect` gate, the RDMA ports whose
//! error counters rose, `compare` and `plot`. They read the results model (report::model) and never
//! talk to MPI or a device.

pub mod blame;
pub mod compare;
pub mod gate;
pub mod link_errors;
pub mod plot;
pub mod slow;

/// Prints an error the way every collbench command does and returns its exit code.
pub(crate) fn report_error(error: &crate::error::Error) -> i32 {
    eprintln!("collbench: error: {error}");
    error.exit_code().code()
}
