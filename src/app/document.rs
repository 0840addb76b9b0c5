//! The start of every command's results document (run, pairs, workload): the run's id agreed across
//! ranks, `-J`'s target taken and the first document written by rank 0 before the backend opens, so that
//! every outcome leaves one; and the header's backend and ranks once they are known.

use super::launch::fail_job;
use super::record;
use crate::backend::{Backend, LibraryVersion};
use crate::error::Result;
use crate::report::document::{DocumentHeader, RankInfo};
use crate::report::growing::Growing;
use crate::report::json::{self, JsonWriter};
use crate::watchdog::Watchdog;
use crate::world::{all_gather_value, World};
use std::path::Path;

/// Every rank of any command: agrees on the run's id and learns where the document is, so that whatever
/// ends the run marks it (src/app/record.rs); rank 0 takes charge of `-J`'s target and writes the
/// document `make` builds from the header of a `kind` document, now. Returns rank 0's document (None on
/// the others). Err is the exit code of a failure, already reported: only rank 0 can fail to take the
/// target, so it ends the job itself, since the other ranks are not waiting to hear of it.
pub fn start<D>(
    world: &dyn World,
    json: Option<&Path>,
    header: impl FnOnce(&str) -> DocumentHeader,
    make: impl FnOnce(DocumentHeader) -> D,
) -> std::result::Result<Option<D>, i32>
where
    D: Growing,
{
    let run_id = share_run_id(world, json).map_err(|e| fail_job(world, None, e))?;
    if world.rank() != 0 {
        return Ok(None);
    }
    let mut doc = make(header(&run_id));
    let written = json
        .map(JsonWriter::new)
        .transpose()
        .and_then(record::own)
        .and_then(|()| record::save(&mut doc));
    match written {
        Ok(()) => Ok(Some(doc)),
        Err(e) => {
            let code = fail_job(world, None, e);
            if world.size() > 1 {
                world.abort(code);
            }
            Err(code)
        }
    }
}

/// The header of a `kind` document for `argv`, asking for `backend` ("auto", "nccl", ...).
pub fn header(kind: &str, argv: &[String], backend: &str, run_id: &str) -> DocumentHeader {
    DocumentHeader::starting(kind, argv, run_id, backend, json::relevant_environment())
}

/// Every rank agrees on the run's id (rank 0's) and remembers where the document is.
fn share_run_id(world: &dyn World, json: Option<&Path>) -> Result<String> {
    let mut id = if world.rank() == 0 {
        record::new_run_id(world.host()).into_bytes()
    } else {
        Vec::new()
    };
    world.broadcast_bytes(0, &mut id)?;
    let run_id = String::from_utf8_lossy(&id).into_owned();
    record::know(json, &run_id);
    Ok(run_id)
}

/// Every rank: who each rank is (host, process, local rank, device), in rank order.
pub fn gather_ranks(
    world: &dyn World,
    backend: &dyn Backend,
    watchdog: &Watchdog,
) -> Result<Vec<RankInfo>> {
    watchdog.arm(|| "gathering rank information".into());
    let me = RankInfo {
        rank: world.rank(),
        host: world.host().to_string(),
        pid: std::process::id(),
        local_rank: world.local_rank(),
        device: backend.device(),
    };
    let ranks = all_gather_value(world, &me);
    watchdog.disarm();
    ranks
}

/// The header once the backend is open: its name, why it was chosen, every library it loaded and the
/// world's MPI, and the ranks.
pub fn backend_opened(
    header: &mut DocumentHeader,
    backend: &dyn Backend,
    reason: &str,
    world: &dyn World,
    ranks: Vec<RankInfo>,
) {
    let mut libraries = backend.versions();
    if let Some(v) = world.library_version() {
        if !libraries.iter().any(|l| l.library == "MPI") {
            libraries.push(LibraryVersion {
                library: "MPI".into(),
                version: v,
            });
        }
    }
    header.backend.name = backend.name().to_string();
    header.backend.reason = reason.to_string();
    header.backend.libraries = libraries;
    header.ranks = ranks;
}
