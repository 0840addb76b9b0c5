//! Everything rank 0 shows or writes: the results model, the terminal table and footer, the JSON file, the
//! CSV file (the header, which renders from the Plan, is app/header.rs).
//! Reporters never talk to MPI; they receive rows from the engine.

pub mod csv;
pub mod document;
pub mod formats;
pub mod gpu_readings;
pub mod growing;
pub mod json;
pub mod json_file;
pub mod link_probe;
pub mod nccl_tests;
pub mod port_errors;
pub mod rccl_results;
pub mod summary;
pub mod table;
#[cfg(test)]
pub(crate) mod testdata;
pub mod verdicts;
