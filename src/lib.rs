//! collbench: a collective-communication benchmark for NCCL, RCCL and MPI, compatible with nccl-tests.

// Every call into a foreign library goes through src/ffi/, the only module allowed `unsafe`.
#![deny(unsafe_code)]

pub mod app;
pub mod backend;
pub mod check;
pub mod cli;
pub mod collective;
pub mod device;
pub mod dtype;
pub mod engine;
pub mod error;
#[allow(unsafe_code)]
pub mod ffi;
pub mod fleet;
pub mod layout;
pub mod metrics;
pub mod pairs;
pub mod plan;
pub mod report;
pub mod size;
pub mod telemetry;
pub mod testing;
pub mod topo;
pub mod traffic;
pub mod watchdog;
pub mod workload;
pub mod world;
