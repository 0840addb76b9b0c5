//! The period tables against the per-element definition (`Pattern::input`, `Pattern::expected`): the
//! same bytes for every collective, type, operator, rank count and seed, and the same wrong-element
//! counts when chosen elements are corrupted.

use super::pattern::{Element, Pattern};
use super::segments::Segment;
use super::table::{Tables, TABLE_BYTES};
use super::verify::{count_output, fill_input};
use crate::collective::{Collective, Shape};
use crate::dtype::{DataType, ReduceOp};

fn ops(c: Collective) -> Vec<Option<ReduceOp>> {
    if c.reduces() {
        ReduceOp::ALL.map(Some).to_vec()
    } else {
        vec![None]
    }
}

/// Shapes with any chunk, not only the 16-byte multiples of `Collective::shape`, so odd counts are
/// covered.
fn shape(c: Collective, chunk: u64, n: usize) -> Shape {
    let n = n as u64;
    let (send_count, recv_count) = match c {
        Collective::AllReduce
        | Collective::Broadcast
        | Collective::Reduce
        | Collective::SendRecv => (chunk, chunk),
        Collective::AllGather | Collective::Gather | Collective::Hypercube => (chunk, n * chunk),
        Collective::ReduceScatter | Collective::Scatter => (n * chunk, chunk),
        Collective::AllToAll => (n * chunk, n * chunk),
        // Its buffers come from a matrix (`v_pattern`), not a chunk.
        Collective::AllToAllv => (0, 0),
    };
    Shape {
        count: chunk,
        send_count,
        recv_count,
        size_bytes: send_count.max(recv_count),
    }
}

fn pattern(c: Collective, t: DataType, op: Option<ReduceOp>, n: usize, seed: u64) -> Pattern {
    Pattern {
        collective: c,
        dtype: t,
        op,
        // Not rank 0, so a root mixed up with rank 0 shows.
        root: n - 1,
        ranks: n,
        seed,
        shape: shape(c, 1, n),
        counts: None,
    }
}

/// The definition: every element computed on its own.
fn expected_bytes(p: &Pattern, rank: usize) -> Vec<u8> {
    let elt = p.dtype.size();
    let mut out = vec![0u8; p.output_len(rank) as usize * elt];
    for (i, e) in out.chunks_mut(elt).enumerate() {
        p.expected(rank, i as u64).encode(p.dtype, e);
    }
    out
}

fn input_bytes(p: &Pattern, rank: usize) -> Vec<u8> {
    let elt = p.dtype.size();
    let mut out = vec![0u8; p.input_len(rank) as usize * elt];
    for (i, e) in out.chunks_mut(elt).enumerate() {
        p.dtype.encode(p.input(rank, i as u64), e);
    }
    out
}

/// The tables' bytes, filled in uneven pieces so pieces starting mid-segment and mid-period are covered.
fn tabled_bytes(p: &Pattern, segments: &[Segment], table_bytes: usize) -> Vec<u8> {
    let elt = p.dtype.size();
    let tables = Tables::with_table_bytes(p, segments, table_bytes).expect("a period");
    let len = segments.iter().map(|s| s.len).sum::<u64>() as usize;
    let mut out = vec![0u8; len * elt];
    let mut start = 0;
    for (k, piece) in out.chunks_mut(997 * elt).enumerate() {
        // Pieces of 997 elements, the first filled in two halves of 500 and 497.
        if k == 0 && piece.len() > 500 * elt {
            let (a, b) = piece.split_at_mut(500 * elt);
            tables.fill(0, a);
            tables.fill(500, b);
        } else {
            tables.fill(start, piece);
        }
        start += (piece.len() / elt) as u64;
    }
    out
}

/// Chunks: one element, a short odd count, and an odd count beyond the smallest table (two periods), so
/// the wrap-around from the table's end back to the period's phase is taken.
fn chunks(p: &Pattern) -> [u64; 3] {
    let period = p.period(1 << 20).expect("a period");
    [1, 37, 2 * period + period / 2 + 3]
}

#[test]
fn tables_equal_the_definition_for_every_case() {
    for c in Collective::ALL.into_iter().chain([Collective::Hypercube]) {
        for t in DataType::ALL {
            for op in ops(c) {
                for n in [1, 2, 3, 4, 8] {
                    for seed in [0, 3, 987_654_321] {
                        let base = pattern(c, t, op, n, seed);
                        for (k, chunk) in chunks(&base).into_iter().enumerate() {
                            // The long chunk with one seed only, to keep debug builds quick.
                            if k == 2 && seed != 3 {
                                continue;
                            }
                            let p = Pattern {
                                shape: shape(c, chunk, n),
                                ..base.clone()
                            };
                            for r in 0..n {
                                let what = format!(
                                    "{c} {t} {op:?} n={n} seed={seed} chunk={chunk} rank {r}"
                                );
                                let table_bytes = if k == 2 { 1 } else { TABLE_BYTES };
                                let input = tabled_bytes(&p, &p.input_segments(r), table_bytes);
                                assert!(input == input_bytes(&p, r), "input of {what}");
                                let expected = expected_bytes(&p, r);
                                let output = tabled_bytes(&p, &p.output_segments(r), table_bytes);
                                assert!(output == expected, "output of {what}");
                                let tables = Tables::new(&p, &p.output_segments(r));
                                assert_eq!(
                                    count_output(&p, tables.as_ref(), r, 0, &expected),
                                    0,
                                    "{what}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The verify entry points write the same inputs through the tables as element by element.
#[test]
fn fill_input_equals_the_element_path() {
    for t in [DataType::Int8, DataType::Half, DataType::Double] {
        let p = Pattern {
            shape: shape(Collective::AllToAll, 40_001, 3),
            ..pattern(Collective::AllToAll, t, None, 3, 11)
        };
        let elt = t.size();
        let mut fast = vec![0u8; p.input_len(2) as usize * elt];
        let mut slow = fast.clone();
        let tables = Tables::new(&p, &p.input_segments(2));
        assert!(tables.is_some());
        fill_input(&p, tables.as_ref(), 2, 0, &mut fast);
        fill_input(&p, None, 2, 0, &mut slow);
        assert!(fast == slow, "{t}");
    }
}

/// Flips the top bit of each chosen element (every type's value changes).
fn corrupt(bytes: &mut [u8], elt: usize, positions: &[u64]) {
    for &i in positions {
        bytes[i as usize * elt + elt - 1] ^= 0x80;
    }
}

/// Positions at the edges, in the middle, on both sides of every segment boundary, and past two periods
/// into a segment (where the table wraps back to the period's phase).
fn chosen_positions(p: &Pattern, rank: usize) -> Vec<u64> {
    let len = p.output_len(rank);
    let period = p.period(1 << 40).expect("a period");
    let mut at = vec![0, len / 2, len - 1];
    for s in p.output_segments(rank) {
        at.extend([s.start, s.start + s.len - 1, s.start + s.len / 2]);
        at.push(s.start.saturating_sub(1));
        at.push(s.start + (2 * period + 1).min(s.len - 1));
    }
    at.sort_unstable();
    at.dedup();
    at
}

#[test]
fn wrong_counts_are_exact_wherever_the_wrong_elements_lie() {
    for c in Collective::ALL.into_iter().chain([Collective::Hypercube]) {
        for t in [
            DataType::Int8,
            DataType::Bfloat16,
            DataType::Float,
            DataType::Uint64,
            DataType::F8e5m2,
        ] {
            for op in ops(c) {
                for n in [1, 3, 4, 8] {
                    let base = pattern(c, t, op, n, 5);
                    let chunk = chunks(&base)[2];
                    let p = Pattern {
                        shape: shape(c, chunk, n),
                        ..base.clone()
                    };
                    for r in [0, n - 1] {
                        if p.output_len(r) == 0 {
                            continue;
                        }
                        let what = format!("{c} {t} {op:?} n={n} rank {r}");
                        let positions = chosen_positions(&p, r);
                        let mut got = expected_bytes(&p, r);
                        corrupt(&mut got, t.size(), &positions);
                        let want = positions.len() as u64;
                        let segments = p.output_segments(r);
                        for table_bytes in [1, TABLE_BYTES] {
                            let tables = Tables::with_table_bytes(&p, &segments, table_bytes);
                            assert_eq!(
                                count_output(&p, tables.as_ref(), r, 0, &got),
                                want,
                                "{what}"
                            );
                            // In two pieces, split mid-buffer.
                            let half = got.len() / t.size() / 2 * t.size();
                            let (a, b) = got.split_at(half);
                            let pieces = count_output(&p, tables.as_ref(), r, 0, a)
                                + count_output(&p, tables.as_ref(), r, (half / t.size()) as u64, b);
                            assert_eq!(pieces, want, "{what} in pieces");
                        }
                        assert_eq!(
                            count_output(&p, None, r, 0, &got),
                            want,
                            "{what} per element"
                        );
                    }
                }
            }
        }
    }
}

/// Float averages: 2 ulp pass, 3 ulp count, on the tables as element by element.
#[test]
fn averages_keep_their_two_ulp_tolerance() {
    for n in [3, 8] {
        let p = Pattern {
            shape: shape(Collective::AllReduce, 100_001, n),
            ..pattern(
                Collective::AllReduce,
                DataType::Float,
                Some(ReduceOp::Avg),
                n,
                1,
            )
        };
        let mut got = expected_bytes(&p, 0);
        // Averages of 3 ranks are mostly inexact thirds: a nonzero value to nudge by ulps.
        let nonzero: Vec<usize> = (0..got.len() / 4)
            .filter(|&i| got[4 * i..4 * i + 4] != [0; 4])
            .take(4)
            .collect();
        let mut nudge = |i: usize, ulps: i32| {
            let v = u32::from_ne_bytes(got[4 * i..4 * i + 4].try_into().unwrap());
            got[4 * i..4 * i + 4].copy_from_slice(&(v as i64 + ulps as i64).to_ne_bytes()[..4]);
        };
        nudge(nonzero[0], 1);
        nudge(nonzero[1], -2);
        nudge(nonzero[2], 3);
        nudge(nonzero[3], -3);
        let tables = Tables::new(&p, &p.output_segments(0));
        assert!(tables.is_some());
        assert_eq!(count_output(&p, tables.as_ref(), 0, 0, &got), 2, "n={n}");
        assert_eq!(count_output(&p, None, 0, 0, &got), 2, "n={n}");
        assert!(matches!(p.expected(0, 0), Element::Average(_)));
    }
}

/// A seed whose arithmetic wraps mid-buffer has no period; the element path still checks it exactly.
#[test]
fn wrapping_seeds_fall_back_to_the_element_path() {
    // Sum's mix is all wrapping arithmetic (the data-movement generator's final `+ 1` would overflow in a
    // debug build at such a seed), so the definition itself is defined here.
    let p = Pattern {
        shape: shape(Collective::AllReduce, 2000, 2),
        ..pattern(
            Collective::AllReduce,
            DataType::Int32,
            Some(ReduceOp::Sum),
            2,
            u64::MAX,
        )
    };
    assert!(Tables::new(&p, &p.output_segments(0)).is_none());
    let mut got = expected_bytes(&p, 0);
    corrupt(&mut got, 4, &[0, 999, 1000, 1999]);
    assert_eq!(count_output(&p, None, 0, 0, &got), 4);
}

/// all_to_allv: every rank's input and output through the tables equal the per-element definition, for
/// uneven matrices with empty pieces (to itself, to some peers) and pieces longer than a period.
#[test]
fn all_to_allv_tables_equal_the_definition() {
    use crate::traffic::matrix::PeerBytes;
    let matrices = [
        "0 12 0 4\n8 0 40 0\n0 0 0 0\n4 4 4 4\n",
        "4000 4 0\n0 0 1236\n996 8 4\n",
    ];
    for text in matrices {
        let m = std::sync::Arc::new(PeerBytes::parse(text).unwrap());
        for t in [DataType::Int32, DataType::Float] {
            for seed in [0, 3] {
                let p = Pattern {
                    shape: m.shape(t.size()),
                    counts: Some(m.clone()),
                    ..pattern(Collective::AllToAllv, t, None, m.ranks(), seed)
                };
                for r in 0..m.ranks() {
                    let what = format!("{text:?} {t} seed={seed} rank {r}");
                    assert_eq!(p.input_len(r) * 4, m.sent(r), "{what}");
                    assert_eq!(p.output_len(r) * 4, m.received(r), "{what}");
                    let input = tabled_bytes(&p, &p.input_segments(r), 1);
                    assert!(input == input_bytes(&p, r), "input of {what}");
                    let expected = expected_bytes(&p, r);
                    let output = tabled_bytes(&p, &p.output_segments(r), 1);
                    assert!(output == expected, "output of {what}");
                }
            }
        }
    }
    // Hand-checked: rank 1 of the first matrix receives 3 elements from rank 0, then 1 from rank 3,
    // each starting where its sender packed rank 1's piece (rank 0: element 0; rank 3: element 1).
    let m = std::sync::Arc::new(PeerBytes::parse(matrices[0]).unwrap());
    let p = Pattern {
        shape: m.shape(4),
        counts: Some(m.clone()),
        ..pattern(Collective::AllToAllv, DataType::Int32, None, 4, 0)
    };
    let want = [p.input(0, 0), p.input(0, 1), p.input(0, 2), p.input(3, 1)];
    let got: Vec<u64> = (0..4)
        .map(|i| match p.expected(1, i) {
            Element::Exact(v) => v,
            e => panic!("{e:?}"),
        })
        .collect();
    assert_eq!(got, want);
}
