//! Fleet tools around a run's results: slow-rank attribution, the `--expect` gate, the RDMA ports whose
//! error counters rose, `compare` and `plot`. They read the results document (report::document) and never
//! talk to MPI or a device.

pub mod blame;
pub mod compare;
pub mod font;
pub mod gate;
pub mod link_errors;
pub mod plot;
pub mod slow;
