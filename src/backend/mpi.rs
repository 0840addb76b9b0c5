//! The `mpi` backend: host-memory buffers and the matching MPI collective, the baseline that runs anywhere.

use super::{
    Backend, BufferId, Capabilities, Comm, CommId, DeviceInfo, GroupJoin, InPlaceConvention,
    LibraryVersion, OpDesc,
};
use crate::collective::{Collective, Shape};
use crate::dtype::{DataType, ReduceOp};
use crate::error::{Error, Result};
use crate::ffi::mpi::{self as raw, At, Buf, Buffers, Call};
use crate::traffic::matrix::PeerBytes;
use crate::world::{MpiWorld, World};
use mpi::topology::SimpleCommunicator;
use std::sync::Arc;
use std::time::Instant;

/// MPI takes counts as C ints; larger element-wise operations are issued in pieces of this many.
const MAX_PIECE: u64 = 1 << 30;

/// The largest count one MPI call takes (a test switch may lower it: src/testing.rs).
fn max_count() -> u64 {
    crate::testing::mpi_max_count().map_or(i32::MAX as u64, |n| n.min(i32::MAX as u64))
}

pub struct MpiBackend<'w> {
    world: &'w MpiWorld,
    send: Vec<u8>,
    recv: Vec<u8>,
    marks: Vec<Instant>,
    in_place: *const std::ffi::c_void,
    /// A 16-byte contiguous type, made on first use for chunks beyond MPI's int count.
    wide: Option<raw::Datatype>,
    /// The current operation's rotation of buffer offsets (OpDesc::shift_bytes).
    shift: usize,
    max_count: u64,
    capabilities: Capabilities,
    /// Sub-communicators made by `split`: CommId k is `groups[k - 1]` (0 is the job's).
    groups: Vec<SimpleCommunicator>,
    /// The current operation's communicator (OpDesc::comm).
    comm: Comm,
    /// all_to_allv's MPI counts for the last matrix, rank and type, so timed iterations reuse them.
    peer_counts: Option<PeerCountsFor>,
}

/// MPI counts made from one matrix for one rank and element type.
struct PeerCountsFor {
    made_for: super::CountsMadeFor,
    dt: raw::Datatype,
    counts: raw::PeerCounts,
}

impl<'w> MpiBackend<'w> {
    pub fn new(world: &'w MpiWorld) -> Self {
        let in_place = raw::in_place_sentinel(&world.library_version().unwrap_or_default());
        MpiBackend {
            world,
            send: Vec::new(),
            recv: Vec::new(),
            marks: Vec::new(),
            in_place,
            wide: None,
            shift: 0,
            max_count: max_count(),
            capabilities: Capabilities {
                in_place: InPlaceConvention::Mpi,
                // MPI defines every in-place form, all-to-all and point-to-point included.
                undefined_in_place: Vec::new(),
                in_place_v_needs_symmetry: true,
                paths: Vec::new(),
            },
            groups: Vec::new(),
            comm: Comm::whole(world.rank(), world.size()),
            peer_counts: None,
        }
    }

    /// MPI_Alltoallv of `desc`'s matrix: counts in the type's elements, or in 16-byte units where an
    /// element count passes MPI's int (Open MPI 4.1 has no MPI_Alltoallv_c).
    fn all_to_allv(&mut self, desc: &OpDesc) -> Result<()> {
        let matrix = desc
            .counts
            .clone()
            .ok_or_else(|| Error::Internal("all_to_allv without per-peer counts".into()))?;
        let rank = desc.comm.rank;
        let cached = self
            .peer_counts
            .as_ref()
            .is_some_and(|c| c.made_for.is(&matrix, rank, desc.dtype));
        if !cached {
            let made = self.peer_counts_for(matrix, rank, desc.dtype)?;
            self.peer_counts = Some(made);
        }
        // Taken out while the call borrows the backend, and put back for the next iteration.
        let made = self
            .peer_counts
            .take()
            .ok_or_else(|| Error::Internal("all_to_allv counts were not made".into()))?;
        let send = (!desc.in_place).then_some((Buf::Send, 0));
        let result = self.run_with("MPI_Alltoallv", |bufs, comm, _, size| {
            raw::alltoallv(
                bufs,
                comm,
                send,
                (Buf::Recv, 0),
                &made.counts,
                made.dt,
                size,
            )
        });
        self.peer_counts = Some(made);
        result
    }

    fn peer_counts_for(
        &mut self,
        matrix: Arc<PeerBytes>,
        rank: usize,
        dtype: DataType,
    ) -> Result<PeerCountsFor> {
        let lists = matrix.rank_lists(rank);
        let elt = dtype.size() as u64;
        let fits = |unit: u64, limit: u64| {
            lists
                .iter()
                .flatten()
                .all(|&b| b % unit == 0 && b / unit <= limit)
        };
        let (dt, unit) = if fits(elt, self.max_count) {
            (Self::datatype(dtype), elt)
        } else if fits(16, i32::MAX as u64) {
            (
                *self.wide.get_or_insert_with(|| raw::contiguous_bytes(16)),
                16,
            )
        } else {
            return Err(Error::Unsupported(format!(
                "all_to_allv: rank {rank}'s per-peer bytes or offsets pass MPI's int count and are not all multiples of 16 bytes (this MPI has no MPI_Alltoallv_c): use smaller or 16-byte-aligned entries"
            )));
        };
        let [sc, sd, rc, rd] = lists.map(|l| l.iter().map(|&b| (b / unit) as i32).collect());
        Ok(PeerCountsFor {
            made_for: super::CountsMadeFor {
                matrix,
                rank,
                dtype,
            },
            dt,
            counts: raw::PeerCounts {
                send_counts: sc,
                send_displs: sd,
                recv_counts: rc,
                recv_displs: rd,
            },
        })
    }

    fn buffer(&mut self, id: BufferId) -> &mut Vec<u8> {
        match id {
            BufferId::Send => &mut self.send,
            BufferId::Recv => &mut self.recv,
        }
    }

    fn error(&self, call: &str, detail: String) -> Error {
        Error::Library {
            library: "MPI".into(),
            call: call.into(),
            detail,
            rank: self.world.rank(),
            host: self.world.host().to_string(),
        }
    }

    fn run(&mut self, call: Call, name: &str) -> Result<()> {
        self.run_with(name, |bufs, comm, rank, size| {
            raw::run(&call, bufs, comm, rank, size)
        })
    }

    /// Runs one raw MPI call on this operation's communicator and turns its code into a Result.
    fn run_with(
        &mut self,
        name: &str,
        call: impl FnOnce(&mut Buffers, &SimpleCommunicator, i32, i32) -> std::ffi::c_int,
    ) -> Result<()> {
        let rank = self.comm.rank as i32;
        let size = self.comm.size as i32;
        let mut bufs = Buffers {
            send: &mut self.send,
            recv: &mut self.recv,
            in_place: self.in_place,
            shift: self.shift,
        };
        let communicator = match self.comm.id {
            0 => self.world.communicator(),
            k => self
                .groups
                .get(k - 1)
                .ok_or_else(|| Error::Internal(format!("{name}: no communicator {k} was split")))?,
        };
        let code = call(&mut bufs, communicator, rank, size);
        if code == raw::OUT_OF_BOUNDS {
            return Err(Error::Internal(format!(
                "{name}: a region lies outside the allocated buffers"
            )));
        }
        raw::check(code).map_err(|detail| self.error(name, detail))
    }

    /// The MPI datatype that carries `dtype`, and the elements per MPI element (for the wide type).
    fn datatype(dtype: DataType) -> raw::Datatype {
        match dtype {
            // No reduction is defined on these in MPI; they move as raw bits.
            DataType::Half | DataType::Bfloat16 => raw::datatype("uint16"),
            DataType::F8e4m3 | DataType::F8e5m2 => raw::datatype("uint8"),
            t => raw::datatype(t.name()),
        }
    }

    /// Datatype and count for a data-movement count that may exceed MPI's int: chunks are multiples
    /// of 16 bytes (Collective::shape), so they move as 16-byte units when too long.
    fn movement(&mut self, dtype: DataType, count: u64) -> Result<(raw::Datatype, i32)> {
        if count <= self.max_count {
            return Ok((Self::datatype(dtype), count as i32));
        }
        let units = count * dtype.size() as u64 / 16;
        if units > i32::MAX as u64 {
            return Err(Error::Unsupported(format!(
                "{count} elements per rank is beyond what one MPI call can move"
            )));
        }
        let wide = *self.wide.get_or_insert_with(|| raw::contiguous_bytes(16));
        Ok((wide, units as i32))
    }
}

fn offset(elements: u64, dtype: DataType) -> usize {
    (elements * dtype.size() as u64) as usize
}

impl Backend for MpiBackend<'_> {
    fn name(&self) -> &'static str {
        "mpi"
    }

    fn versions(&self) -> Vec<LibraryVersion> {
        self.world
            .library_version()
            .map(|v| {
                vec![LibraryVersion {
                    library: "MPI".into(),
                    version: v,
                }]
            })
            .unwrap_or_default()
    }

    fn device(&self) -> DeviceInfo {
        DeviceInfo {
            kind: "host".into(),
            index: None,
            name: "host memory".into(),
            pci_bus_id: None,
        }
    }

    fn free_memory(&self) -> Result<u64> {
        let meminfo = std::fs::read_to_string("/proc/meminfo")
            .map_err(|e| Error::io("reading /proc/meminfo", e))?;
        let available_kib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .ok_or_else(|| Error::Internal("/proc/meminfo has no MemAvailable line".into()))?;
        // Ranks on one host share its memory.
        Ok(available_kib * 1024 / self.world.local_size() as u64)
    }

    fn unsupported(
        &self,
        collective: Collective,
        dtype: DataType,
        op: Option<ReduceOp>,
    ) -> Option<String> {
        if !collective.reduces() {
            return None;
        }
        if matches!(
            dtype,
            DataType::Half | DataType::Bfloat16 | DataType::F8e4m3 | DataType::F8e5m2
        ) {
            return Some(format!(
                "MPI has no {dtype} reductions, so the mpi backend cannot run {collective} on {dtype}: use a GPU backend (--backend nccl or rccl) or another -d"
            ));
        }
        if op == Some(ReduceOp::Avg) {
            return Some(format!(
                "MPI has no avg reduction, so the mpi backend cannot run {collective} with -o avg: use -o sum, or a GPU backend"
            ));
        }
        None
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn split(&mut self, _world: &dyn World, join: &GroupJoin) -> Result<CommId> {
        let comm = self.world.split(join.color, join.rank)?;
        self.groups.push(comm);
        Ok(self.groups.len())
    }

    fn allocate(&mut self, bytes: u64) -> Result<()> {
        let bytes = usize::try_from(bytes).map_err(|_| {
            Error::Unsupported("buffer size beyond this machine's address space".into())
        })?;
        for id in [BufferId::Send, BufferId::Recv] {
            let buf = self.buffer(id);
            buf.clear();
            buf.try_reserve_exact(bytes).map_err(|e| {
                Error::Unsupported(format!(
                    "cannot allocate {bytes} bytes of host memory ({e}): lower -e"
                ))
            })?;
            buf.resize(bytes, 0);
        }
        Ok(())
    }

    fn write(&mut self, buffer: BufferId, offset: u64, data: &[u8]) -> Result<()> {
        let buf = self.buffer(buffer);
        let start = offset as usize;
        buf.get_mut(start..start + data.len())
            .ok_or_else(|| Error::Internal("write beyond the buffer".into()))?
            .copy_from_slice(data);
        Ok(())
    }

    fn read(&mut self, buffer: BufferId, offset: u64, out: &mut [u8]) -> Result<()> {
        let buf = self.buffer(buffer);
        let start = offset as usize;
        out.copy_from_slice(
            buf.get(start..start + out.len())
                .ok_or_else(|| Error::Internal("read beyond the buffer".into()))?,
        );
        Ok(())
    }

    fn fill(&mut self, buffer: BufferId, len: u64, byte: u8) -> Result<()> {
        let buf = self.buffer(buffer);
        let end = (len as usize).min(buf.len());
        buf[..end].fill(byte);
        Ok(())
    }

    fn enqueue(&mut self, desc: &OpDesc) -> Result<()> {
        self.shift = desc.shift_bytes as usize;
        self.comm = desc.comm;
        let rank = desc.comm.rank;
        let n = desc.comm.size;
        let partners = desc.peer.partners(rank, n);
        if desc.collective == Collective::SendRecv && partners == (None, None) {
            // Idle while other pairs exchange.
            return Ok(());
        }
        let t = desc.dtype;
        let Shape { count, .. } = desc.shape;
        let root = desc.root.unwrap_or(0) as i32;
        let op = raw::op(desc.op.map(|o| o.name()).unwrap_or("sum"));
        let in_place = desc.in_place;
        let layout = self
            .capabilities
            .in_place_layout(desc.collective, &desc.shape, rank);
        let send_at = |elements: u64| -> Option<At> {
            if in_place {
                None
            } else {
                Some((Buf::Send, offset(elements, t)))
            }
        };
        match desc.collective {
            // Element-wise collectives split into pieces MPI's int count can hold.
            Collective::AllReduce
            | Collective::Broadcast
            | Collective::Reduce
            | Collective::SendRecv => {
                let dt = Self::datatype(t);
                let mut done = 0u64;
                while done < count || (count == 0 && done == 0) {
                    let piece = (count - done).min(MAX_PIECE.min(self.max_count)) as i32;
                    let at = offset(done, t);
                    let call = match desc.collective {
                        Collective::AllReduce => Call::Allreduce {
                            send: if in_place {
                                None
                            } else {
                                Some((Buf::Send, at))
                            },
                            recv: (Buf::Recv, at),
                            count: piece,
                            dt,
                            op,
                        },
                        Collective::Broadcast => {
                            let from = if in_place || rank as i32 != root {
                                Buf::Recv
                            } else {
                                Buf::Send
                            };
                            Call::Bcast {
                                buf: (from, at),
                                count: piece,
                                dt,
                                root,
                            }
                        }
                        Collective::Reduce => {
                            let at_root = rank as i32 == root;
                            Call::Reduce {
                                send: match (in_place, at_root) {
                                    (false, _) => Some((Buf::Send, at)),
                                    (true, true) => None,
                                    (true, false) => Some((Buf::Recv, at)),
                                },
                                recv: (Buf::Recv, at),
                                count: piece,
                                dt,
                                op,
                                root,
                            }
                        }
                        _ => {
                            // A missing direction is MPI_PROC_NULL: the call returns at once on it.
                            let rank_or_none =
                                |r: Option<usize>| r.map_or(raw::proc_null(), |r| r as i32);
                            let (to, from) = (rank_or_none(partners.0), rank_or_none(partners.1));
                            if in_place {
                                Call::SendrecvReplace {
                                    buf: (Buf::Recv, at),
                                    count: piece,
                                    dt,
                                    to,
                                    from,
                                }
                            } else {
                                Call::Sendrecv {
                                    send: (Buf::Send, at),
                                    recv: (Buf::Recv, at),
                                    count: piece,
                                    dt,
                                    to,
                                    from,
                                }
                            }
                        }
                    };
                    self.run(call, desc.collective.name())?;
                    done += piece as u64;
                    if count == 0 {
                        break;
                    }
                }
                // NCCL's out-of-place broadcast also fills the root's receive buffer; MPI_Bcast has one
                // buffer, so the root copies its own data to match.
                if desc.collective == Collective::Broadcast && !in_place && rank as i32 == root {
                    let range = self.shift..self.shift + offset(count, t);
                    let (send, recv) = (&self.send[range.clone()], &mut self.recv[range]);
                    recv.copy_from_slice(send);
                }
                Ok(())
            }
            Collective::AllGather => {
                let (dt, c) = self.movement(t, count)?;
                let send = if in_place { None } else { Some((Buf::Send, 0)) };
                self.run(
                    Call::Allgather {
                        send,
                        recv: (Buf::Recv, 0),
                        count: c,
                        dt,
                    },
                    "MPI_Allgather",
                )
            }
            Collective::AllToAll => {
                let (dt, c) = self.movement(t, count)?;
                self.run(
                    Call::Alltoall {
                        send: send_at(0),
                        recv: (Buf::Recv, 0),
                        count: c,
                        dt,
                    },
                    "MPI_Alltoall",
                )
            }
            Collective::AllToAllv => self.all_to_allv(desc),
            Collective::ReduceScatter => {
                if count > self.max_count {
                    return Err(Error::Unsupported(format!(
                        "reduce_scatter of {count} elements per rank is beyond one MPI call: lower -e"
                    )));
                }
                let dt = Self::datatype(t);
                let call = Call::ReduceScatterBlock {
                    send: send_at(0),
                    recv: (Buf::Recv, 0),
                    count: count as i32,
                    dt,
                    op,
                };
                self.run(call, "MPI_Reduce_scatter_block")
            }
            Collective::Gather => {
                let (dt, c) = self.movement(t, count)?;
                let at_root = rank as i32 == root;
                let send = match (in_place, at_root) {
                    (false, _) => Some((Buf::Send, 0)),
                    (true, true) => None,
                    (true, false) => Some((Buf::Recv, offset(layout.input_offset, t))),
                };
                self.run(
                    Call::Gather {
                        send,
                        recv: (Buf::Recv, 0),
                        count: c,
                        dt,
                        root,
                    },
                    "MPI_Gather",
                )
            }
            Collective::Scatter => {
                let (dt, c) = self.movement(t, count)?;
                let at_root = rank as i32 == root;
                let (send, recv) = match (in_place, at_root) {
                    (false, _) => ((Buf::Send, 0), Some((Buf::Recv, 0))),
                    (true, true) => ((Buf::Recv, 0), None),
                    (true, false) => (
                        (Buf::Recv, 0),
                        Some((Buf::Recv, offset(layout.output_offset, t))),
                    ),
                };
                self.run(
                    Call::Scatter {
                        send,
                        recv,
                        count: c,
                        dt,
                        root,
                    },
                    "MPI_Scatter",
                )
            }
        }
    }

    fn wait(&mut self) -> Result<()> {
        // MPI's blocking collectives have completed when they return.
        Ok(())
    }

    fn reserve_marks(&mut self, count: usize) -> Result<()> {
        let now = Instant::now();
        self.marks.clear();
        self.marks.resize(count, now);
        Ok(())
    }

    fn mark(&mut self, index: usize) -> Result<()> {
        if let Some(slot) = self.marks.get_mut(index) {
            *slot = Instant::now();
        }
        Ok(())
    }

    fn mark_intervals_us(&mut self, count: usize) -> Result<Vec<f64>> {
        Ok(self
            .marks
            .windows(2)
            .take(count)
            .map(|w| (w[1] - w[0]).as_secs_f64() * 1e6)
            .collect())
    }
}
