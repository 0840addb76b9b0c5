//! What a backend's library defines and how it carries each collective, as one value fixed when the
//! library is loaded: the engine and the check ask it, never assume.

use super::PathTaken;
use crate::collective::{Collective, InPlaceLayout, Shape};

/// Where a library puts an in-place operation's input and output inside the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InPlaceConvention {
    /// NCCL's and RCCL's: a rank's chunk sits at rank x chunk (all_gather's input, reduce_scatter's
    /// output).
    Nccl,
    /// MPI's: MPI_Reduce_scatter_block in place leaves each rank's block at the start of its buffer;
    /// otherwise as NCCL.
    Mpi,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Capabilities {
    pub in_place: InPlaceConvention,
    /// The collectives whose in-place form the library leaves undefined (overlapping send and receive
    /// buffers), with why in words. The engine still times an undefined form, as nccl-tests does, but
    /// never checks it: its result is whatever the library happened to leave.
    pub undefined_in_place: Vec<(Collective, String)>,
    /// The library's in-place all_to_allv sends what each rank receives (MPI_IN_PLACE takes the receive
    /// counts for both), so it has an in-place form only for a symmetric matrix.
    pub in_place_v_needs_symmetry: bool,
    /// How the library carries each collective; one not listed is carried natively.
    pub paths: Vec<(Collective, PathTaken)>,
}

impl Capabilities {
    /// Where an in-place operation's input and output lie in the receive buffer on `rank`.
    pub fn in_place_layout(
        &self,
        collective: Collective,
        shape: &Shape,
        rank: usize,
    ) -> InPlaceLayout {
        match (self.in_place, collective) {
            (InPlaceConvention::Mpi, Collective::ReduceScatter) => InPlaceLayout {
                input_offset: 0,
                output_offset: 0,
            },
            _ => collective.in_place_layout(shape, rank),
        }
    }

    /// Why the library leaves the in-place form of `collective` undefined, or None where it defines it.
    pub fn in_place_undefined(&self, collective: Collective) -> Option<&str> {
        self.undefined_in_place
            .iter()
            .find(|(c, _)| *c == collective)
            .map(|(_, why)| why.as_str())
    }

    /// How the library carries `collective`.
    pub fn path(&self, collective: Collective) -> PathTaken {
        self.paths
            .iter()
            .find(|(c, _)| *c == collective)
            .map_or("native", |(_, p)| p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpi_keeps_reduce_scatter_in_place_at_the_start_and_nccl_at_the_rank() {
        let shape = Collective::ReduceScatter.shape(4096, 4, 4);
        let caps = |in_place| Capabilities {
            in_place,
            undefined_in_place: vec![],
            in_place_v_needs_symmetry: false,
            paths: vec![],
        };
        let mpi =
            caps(InPlaceConvention::Mpi).in_place_layout(Collective::ReduceScatter, &shape, 2);
        assert_eq!((mpi.input_offset, mpi.output_offset), (0, 0));
        let nccl =
            caps(InPlaceConvention::Nccl).in_place_layout(Collective::ReduceScatter, &shape, 2);
        assert_eq!(
            (nccl.input_offset, nccl.output_offset),
            (0, 2 * shape.count)
        );
        // Elsewhere the two agree.
        let gather = Collective::AllGather.shape(4096, 4, 4);
        assert_eq!(
            caps(InPlaceConvention::Mpi).in_place_layout(Collective::AllGather, &gather, 3),
            Collective::AllGather.in_place_layout(&gather, 3)
        );
    }

    #[test]
    fn unlisted_collectives_are_native_and_defined() {
        let caps = Capabilities {
            in_place: InPlaceConvention::Nccl,
            undefined_in_place: vec![(Collective::SendRecv, "no in-place p2p".into())],
            in_place_v_needs_symmetry: false,
            paths: vec![(Collective::AllToAll, "grouped send/recv")],
        };
        assert_eq!(caps.path(Collective::AllToAll), "grouped send/recv");
        assert_eq!(caps.path(Collective::AllReduce), "native");
        assert_eq!(
            caps.in_place_undefined(Collective::SendRecv),
            Some("no in-place p2p")
        );
        assert_eq!(caps.in_place_undefined(Collective::AllReduce), None);
    }
}
