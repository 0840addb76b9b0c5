//! The correctness check: deterministic inputs per (seed, rank, index), expected outputs computed on the
//! host independently of the library, and an exact element-by-element comparison, made at memory speed
//! by tabulating the inputs' period.

pub mod pattern;
pub mod period;
pub mod segments;
pub mod table;
pub mod verify;

#[cfg(test)]
mod tests;
