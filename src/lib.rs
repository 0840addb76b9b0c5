//! collbench: a collective-communication benchmark for NCCL, RCCL and MPI, compatible with nccl-tests.

pub mod cli;
pub mod collective;
pub mod dtype;
pub mod error;
pub mod plan;
pub mod size;
pub mod topo;
pub mod backend;
pub mod world;
