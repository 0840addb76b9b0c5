//! A rank's input and expected output as stretches that each follow one source (a rank's input or the
//! fold over ranks) from one base index, so they can be tabulated per period instead of per element.

use super::pattern::{Pattern, Source};
use crate::collective::Collective;

/// Elements `start..start + len` of a rank's buffer: element `start + i` is `source`'s value at input
/// index `base + i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub start: u64,
    pub len: u64,
    pub source: Source,
    pub base: u64,
}

impl Pattern {
    /// `rank`'s input: one stretch of its own generator (none where it provides no input).
    pub fn input_segments(&self, rank: usize) -> Vec<Segment> {
        let len = self.input_len(rank);
        let whole = Segment {
            start: 0,
            len,
            source: Source::Input(rank),
            base: 0,
        };
        (len > 0).then_some(whole).into_iter().collect()
    }

    /// `rank`'s expected output, in order and without gaps: the same values as `Pattern::expected`.
    pub fn output_segments(&self, rank: usize) -> Vec<Segment> {
        let len = self.output_len(rank);
        if len == 0 {
            return Vec::new();
        }
        let n = self.ranks as u64;
        let chunk = self.shape.count;
        let r = rank as u64;
        let whole = |source, base| {
            vec![Segment {
                start: 0,
                len,
                source,
                base,
            }]
        };
        // Block s of a gathered output comes from rank s, from `base` on in its input.
        let blocks = |base| -> Vec<Segment> {
            (0..self.ranks)
                .map(|s| Segment {
                    start: s as u64 * chunk,
                    len: chunk,
                    source: Source::Input(s),
                    base,
                })
                .filter(|s| s.len > 0)
                .collect()
        };
        match self.collective {
            Collective::AllReduce | Collective::Reduce => whole(Source::Fold, 0),
            Collective::ReduceScatter => whole(Source::Fold, r * chunk),
            Collective::Broadcast => whole(Source::Input(self.root), 0),
            Collective::AllGather | Collective::Gather | Collective::Hypercube => blocks(0),
            Collective::Scatter => whole(Source::Input(self.root), r * chunk),
            Collective::AllToAll => blocks(r * chunk),
            Collective::SendRecv => whole(Source::Input(((r + n - 1) % n) as usize), 0),
            // Piece s of the output comes from rank s, from where s packed its piece for this rank.
            Collective::AllToAllv => {
                let m = self.counts.as_deref().expect("all_to_allv has counts");
                let elt = self.dtype.size() as u64;
                let starts = m.recv_displacements(rank);
                (0..self.ranks)
                    .map(|s| Segment {
                        start: starts[s] / elt,
                        len: m.get(s, rank) / elt,
                        source: Source::Input(s),
                        base: m.send_displacements(s)[rank] / elt,
                    })
                    .filter(|s| s.len > 0)
                    .collect()
            }
        }
    }
}
