//! Writing check inputs into a backend's buffers and counting wrong output elements, piece by piece so
//! large buffers need no second full-size host copy, in parallel over host cores. Both go through the
//! period tables (check/table.rs) at memory speed, and element by element only where a pattern has no
//! usable period.

use super::pattern::{Element, Pattern};
use super::table::{same_element, Tables};
use crate::backend::{Backend, BufferId};
use crate::dtype::DataType;
use crate::error::Result;
use rayon::prelude::*;

/// Bytes moved between host and buffer at a time.
const PIECE_BYTES: usize = 64 << 20;

/// The test-only fault switch: `COLLBENCH_TEST_CORRUPT=RANK:COUNT` corrupts the first COUNT output
/// elements of RANK in every check, so tests can prove the check reports exactly COUNT.
pub fn corrupt_count_from_env(rank: usize) -> Option<u64> {
    let spec = std::env::var("COLLBENCH_TEST_CORRUPT").ok()?;
    let (r, c) = spec.split_once(':')?;
    (r.trim().parse::<usize>().ok()? == rank)
        .then(|| c.trim().parse().ok())
        .flatten()
}

/// Writes `rank`'s input elements into `buffer` starting at byte `offset`.
pub fn write_input(
    backend: &mut dyn Backend,
    p: &Pattern,
    rank: usize,
    buffer: BufferId,
    offset: u64,
) -> Result<()> {
    let elt = p.dtype.size();
    let total = p.input_len(rank);
    let tables = Tables::new(p, &p.input_segments(rank));
    let per_piece = (PIECE_BYTES / elt) as u64;
    let mut host = Vec::new();
    let mut start = 0u64;
    while start < total {
        let len = per_piece.min(total - start);
        host.resize(len as usize * elt, 0);
        fill_input(p, tables.as_ref(), rank, start, &mut host);
        backend.write(buffer, offset + start * elt as u64, &host)?;
        start += len;
    }
    Ok(())
}

/// Input elements `start..` of `rank` into `host`: copied from the tables, or computed one by one where
/// the pattern has no usable period.
pub(super) fn fill_input(
    p: &Pattern,
    tables: Option<&Tables>,
    rank: usize,
    start: u64,
    host: &mut [u8],
) {
    match tables {
        Some(t) => t.fill(start, host),
        None => host
            .par_chunks_mut(p.dtype.size())
            .enumerate()
            .for_each(|(i, out)| p.dtype.encode(p.input(rank, start + i as u64), out)),
    }
}

/// Whether an element read back matches what was expected: bit for bit, or within 2 ulp for a
/// floating-point average.
fn matches(dtype: DataType, expected: Element, got: &[u8], scratch: &mut [u8]) -> bool {
    expected.encode(dtype, scratch);
    same_element(matches!(expected, Element::Average(_)), scratch, got)
}

/// Reads `rank`'s output from `buffer` at byte `offset` and counts elements that differ from the
/// expected ones. `corrupt` elements at the start are corrupted first (the test-only fault switch).
pub fn count_wrong(
    backend: &mut dyn Backend,
    p: &Pattern,
    rank: usize,
    buffer: BufferId,
    offset: u64,
    corrupt: u64,
) -> Result<u64> {
    let elt = p.dtype.size();
    let total = p.output_len(rank);
    let tables = Tables::new(p, &p.output_segments(rank));
    let per_piece = (PIECE_BYTES / elt) as u64;
    let mut host = Vec::new();
    let mut wrong = 0u64;
    let mut start = 0u64;
    while start < total {
        let len = per_piece.min(total - start);
        host.resize(len as usize * elt, 0);
        backend.read(buffer, offset + start * elt as u64, &mut host)?;
        if start < corrupt {
            let n = (corrupt - start).min(len) as usize;
            // Flipping the top bit changes every type's value (sign of floats, high bit of integers).
            host.chunks_mut(elt)
                .take(n)
                .for_each(|e| e[elt - 1] ^= 0x80);
        }
        wrong += count_output(p, tables.as_ref(), rank, start, &host);
        start += len;
    }
    Ok(wrong)
}

/// Wrong elements in `host`, which holds output elements `start..` of `rank`: compared against the
/// tables, or element by element against `Pattern::expected` where the pattern has no usable period.
pub(super) fn count_output(
    p: &Pattern,
    tables: Option<&Tables>,
    rank: usize,
    start: u64,
    host: &[u8],
) -> u64 {
    match tables {
        Some(t) => t.count_wrong(start, host),
        None => host
            .par_chunks(p.dtype.size())
            .enumerate()
            .map_init(
                || vec![0u8; p.dtype.size()],
                |scratch, (i, got)| {
                    u64::from(!matches(
                        p.dtype,
                        p.expected(rank, start + i as u64),
                        got,
                        scratch,
                    ))
                },
            )
            .sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_allow_two_ulp_and_no_more() {
        let t = DataType::Float;
        let mut scratch = [0u8; 4];
        let expected = Element::Average(1.0 / 3.0);
        let exact = (1.0f32 / 3.0).to_bits();
        for (delta, ok) in [(0i64, true), (1, true), (-2, true), (3, false), (-3, false)] {
            let got = ((exact as i64 + delta) as u32).to_ne_bytes();
            assert_eq!(
                matches(t, expected, &got, &mut scratch),
                ok,
                "delta {delta}"
            );
        }
        let negative = (-1.0f32 / 3.0).to_ne_bytes();
        assert!(!matches(t, expected, &negative, &mut scratch));
    }

    #[test]
    fn exact_elements_compare_bit_for_bit() {
        let mut scratch = [0u8; 2];
        let mut got = [0u8; 2];
        DataType::Bfloat16.encode(12, &mut got);
        assert!(matches(
            DataType::Bfloat16,
            Element::Exact(12),
            &got,
            &mut scratch
        ));
        assert!(!matches(
            DataType::Bfloat16,
            Element::Exact(13),
            &got,
            &mut scratch
        ));
    }
}
