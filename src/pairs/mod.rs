//! `collbench pairs`: every pair of hosts (or ranks) exchanging by bidirectional sendrecv, measured by
//! the engine, to name the one bad host or link. The command itself runs in app/pairs.rs.

pub mod document;
pub mod expect;
pub mod plot;
pub mod probe;
pub mod render;
pub mod rounds;
pub mod rounds_plot;
pub mod schedule;
pub mod search;
pub mod verdict;
