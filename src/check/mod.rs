//! The correctness check: deterministic inputs per (seed, rank, index), expected outputs computed on the
//! host independently of the library, and an exact element-by-element comparison.

pub mod pattern;
pub mod period;
pub mod segments;
pub mod verify;
