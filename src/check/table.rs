//! The encoded bytes of a rank's input or expected output, tabulated per segment over a few periods:
//! inputs are written by copying them and outputs compared against them slice by slice (`==` on byte
//! slices), so both run at memory speed. Every element is still compared; only slices that differ are
//! walked element by element, to count exactly how many elements are wrong.

use super::pattern::Pattern;
use super::segments::Segment;
use rayon::prelude::*;

/// Each table holds at least this many bytes beyond one period (whole periods), so copies and compares
/// run over long slices.
pub const TABLE_BYTES: usize = 64 << 10;

/// Bytes one rayon task writes or compares: large enough to amortise the walk over segments.
const BLOCK_BYTES: usize = 1 << 20;

/// Bytes compared at once before falling back to elements: a wrong element costs an element-wise walk
/// over only this many bytes.
const COMPARE_BYTES: usize = 4 << 10;

/// One segment's expected bytes: its element `j` (for `j` below the table's length) is the source's
/// value at `base + j`.
struct Tabled {
    start: u64,
    len: u64,
    bytes: Vec<u8>,
}

/// A rank's tabulated buffer: elements `0..` the segments' end, in order.
pub struct Tables {
    elt: usize,
    period: u64,
    tolerant: bool,
    segments: Vec<Tabled>,
}

impl Tables {
    /// Tabulates `segments` (in order, without gaps from 0) of pattern `p`, or None where `p` has no
    /// usable period over the indices they reach (then the caller computes element by element).
    pub fn new(p: &Pattern, segments: &[Segment]) -> Option<Tables> {
        Self::with_table_bytes(p, segments, TABLE_BYTES)
    }

    /// As `new`, with tables of at least `table_bytes` beyond one period (small in tests, so the
    /// wrap-around in `run` is exercised on small buffers).
    pub fn with_table_bytes(
        p: &Pattern,
        segments: &[Segment],
        table_bytes: usize,
    ) -> Option<Tables> {
        let end = segments.iter().map(|s| s.base + s.len).max().unwrap_or(0);
        let period = p.period(end)?;
        let elt = p.dtype.size();
        // Whole periods, at least one, so a slice of the table starting at any phase below the period
        // reaches the table's end with at least one full period.
        let periods = ((table_bytes / elt) as u64).div_ceil(period).max(1);
        let reach = period * (1 + periods);
        let segments = segments
            .par_iter()
            .filter(|s| s.len > 0)
            .map(|s| {
                // A segment shorter than the table is tabulated whole: never more work than per element.
                let elems = s.len.min(reach);
                let mut bytes = vec![0u8; elems as usize * elt];
                bytes
                    .par_chunks_mut(elt)
                    .enumerate()
                    .for_each(|(j, out)| p.value(s.source, s.base + j as u64).encode(p.dtype, out));
                Tabled {
                    start: s.start,
                    len: s.len,
                    bytes,
                }
            })
            .collect();
        Some(Tables {
            elt,
            period,
            tolerant: p.averages(),
            segments,
        })
    }

    /// Calls `f(offset, expected)` for consecutive runs of expected bytes that together cover elements
    /// `start..start + len`; `offset` counts elements from `start`.
    fn runs(&self, start: u64, len: u64, mut f: impl FnMut(usize, &[u8])) {
        let elt = self.elt;
        let end = start + len;
        let mut pos = start;
        let mut k = self.segments.partition_point(|s| s.start + s.len <= pos);
        while pos < end {
            let seg = &self.segments[k];
            let seg_end = seg.start + seg.len;
            debug_assert!(seg.start <= pos && pos < seg_end, "segments leave a gap");
            let i = pos - seg.start;
            let elems = (seg.bytes.len() / elt) as u64;
            // A whole-segment table is read in place; a shorter one holds value(base + j) for j below its
            // length, and value(base + i) == value(base + i mod P).
            let from = if elems == seg.len { i } else { i % self.period };
            let n = (elems - from).min(seg_end - pos).min(end - pos);
            f(
                (pos - start) as usize,
                &seg.bytes[from as usize * elt..(from + n) as usize * elt],
            );
            pos += n;
            if pos == seg_end {
                k += 1;
            }
        }
    }

    /// Writes elements `start..` into `host` (a whole number of elements), in parallel.
    pub fn fill(&self, start: u64, host: &mut [u8]) {
        let elt = self.elt;
        host.par_chunks_mut(BLOCK_BYTES)
            .enumerate()
            .for_each(|(b, block)| {
                let first = start + (b * (BLOCK_BYTES / elt)) as u64;
                self.runs(first, (block.len() / elt) as u64, |offset, expected| {
                    let at = offset * elt;
                    block[at..at + expected.len()].copy_from_slice(expected);
                });
            });
    }

    /// Counts the elements of `host` (elements `start..` of the buffer) that differ from the expected
    /// ones, in parallel.
    pub fn count_wrong(&self, start: u64, host: &[u8]) -> u64 {
        let elt = self.elt;
        host.par_chunks(BLOCK_BYTES)
            .enumerate()
            .map(|(b, block)| {
                let first = start + (b * (BLOCK_BYTES / elt)) as u64;
                let mut wrong = 0;
                self.runs(first, (block.len() / elt) as u64, |offset, expected| {
                    let at = offset * elt;
                    let got = &block[at..at + expected.len()];
                    wrong += count_differing(elt, self.tolerant, expected, got);
                });
                wrong
            })
            .sum()
    }
}

/// Elements of `got` that do not match `expected`: slices compare at memory speed, and only a slice that
/// differs is walked element by element.
fn count_differing(elt: usize, tolerant: bool, expected: &[u8], got: &[u8]) -> u64 {
    // COMPARE_BYTES is a multiple of every element size, so the slices split on element boundaries.
    expected
        .chunks(COMPARE_BYTES)
        .zip(got.chunks(COMPARE_BYTES))
        .filter(|(e, g)| e != g)
        .map(|(e, g)| {
            e.chunks_exact(elt)
                .zip(g.chunks_exact(elt))
                .filter(|(e, g)| !same_element(tolerant, e, g))
                .count() as u64
        })
        .sum()
}

/// Whether an element read back matches the expected bytes: bit for bit, or for a floating-point average
/// within 2 ulp (for values of one sign, ulp distance is the distance of the bit patterns).
pub fn same_element(tolerant: bool, expected: &[u8], got: &[u8]) -> bool {
    if expected == got {
        return true;
    }
    if !tolerant {
        return false;
    }
    let bits = |b: &[u8]| b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | x as u64);
    let sign_mask = 1u64 << (8 * expected.len() - 1);
    let (a, b) = (bits(expected), bits(got));
    (a & sign_mask) == (b & sign_mask) && a.abs_diff(b) <= 2
}
