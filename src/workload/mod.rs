//! `collbench workload`: the messages one step of a real model moves on candidate TP and EP layouts,
//! each measured by the one engine on its layout's groups, and the layouts ranked per phase. The
//! command itself runs in src/app/workload.rs.

pub mod candidates;
pub mod document;
pub mod messages;
pub mod model;
pub mod ranking;
pub mod render;
pub mod routing;
