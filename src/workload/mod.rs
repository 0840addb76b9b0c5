//! `collbench workload`: the messages one step of a real model moves on candidate TP, EP and TP x PP
//! layouts, each measured by the one engine on its layout's groups, what one GPU of each layout holds
//! (weights and KV cache, against its memory), and the layouts ranked per phase, per replica or at
//! equal job load. The command itself runs in src/app/workload/.

pub mod candidates;
pub mod document;
pub mod fit;
pub mod messages;
pub mod model;
pub mod params;
pub mod ranking;
pub mod render;
pub mod routing;
