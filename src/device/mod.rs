//! GPU devices as the GPU backend sees them: which device a rank takes (honouring *_VISIBLE_DEVICES), and
//! the small set of device operations (memory, stream, events) that CUDA and HIP both provide.

use crate::error::{Error, Result};
pub use crate::ffi::device::{DeviceGraphs, GpuDevice};

/// Entries of a *_VISIBLE_DEVICES value: indices, GPU-/MIG- UUIDs, as the runtime reads them.
/// An empty value hides every device.
pub fn visible_entries(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .take_while(|e| !e.is_empty())
        .map(str::to_string)
        .collect()
}

/// What the device selection needs to know about this process.
#[derive(Debug, Clone)]
pub struct Placement<'a> {
    pub host: &'a str,
    /// Rank among the processes on this host.
    pub local_rank: usize,
    /// Processes on this host.
    pub local_size: usize,
    /// GPUs this process drives (-g).
    pub per_process: usize,
    /// Devices the driver reports to this process (after *_VISIBLE_DEVICES).
    pub visible_count: usize,
    /// The visibility variable in force, if any, as (name, value).
    pub visible_env: Option<(&'a str, &'a str)>,
    /// NCCL_TESTS_DEVICE: the first device this process drives, whatever its local rank (nccl-tests
    /// takes it, then the next ones for -g).
    pub first_device: Option<usize>,
}

/// NCCL_TESTS_DEVICE as nccl-tests reads it (a device ordinal), or a usage error naming it.
pub fn first_device_from_env() -> Result<Option<usize>> {
    match std::env::var("NCCL_TESTS_DEVICE") {
        Err(_) => Ok(None),
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => v.trim().parse::<usize>().map(Some).map_err(|_| {
            Error::Usage(format!(
                "NCCL_TESTS_DEVICE={v}: give the ordinal of the first GPU this process drives (0, 1, ...), or unset it"
            ))
        }),
    }
}

/// The device ordinals (as this process numbers them) that this process drives.
///
/// Normally process `local_rank` takes ordinals `local_rank * per_process ..`. When a launcher gives each
/// process its own devices (srun --gpus-per-task, a wrapper setting CUDA_VISIBLE_DEVICES per rank), the
/// process sees exactly the devices it needs and takes ordinals 0.. instead; two processes that were
/// given the same device are then reported by NCCL itself ("Duplicate GPU detected").
pub fn select_ordinals(p: &Placement) -> Result<Vec<usize>> {
    let visibility = match p.visible_env {
        Some((name, value)) => format!(" ({name}={value:?})"),
        None => String::new(),
    };
    if p.visible_count == 0 {
        return Err(Error::Unsupported(format!(
            "host {} has no visible GPU{visibility}: no usable GPU was found for local rank {}",
            p.host, p.local_rank
        )));
    }
    if p.per_process == 0 {
        return Err(Error::Internal(
            "select_ordinals with per_process = 0".into(),
        ));
    }
    if let Some(first) = p.first_device {
        let last = first + p.per_process;
        if last > p.visible_count {
            return Err(Error::Unsupported(format!(
                "host {} has {} visible GPU(s){visibility}, but NCCL_TESTS_DEVICE={first} asks for device(s) {first} to {}: lower NCCL_TESTS_DEVICE or -g",
                p.host,
                p.visible_count,
                last - 1
            )));
        }
        return Ok((first..last).collect());
    }
    if p.visible_env.is_some() && p.visible_count == p.per_process && p.local_size > 1 {
        return Ok((0..p.per_process).collect());
    }
    let first = p.local_rank * p.per_process;
    let needed = p.local_size * p.per_process;
    if needed > p.visible_count {
        let per = if p.per_process > 1 {
            format!(" x {} GPUs each (-g)", p.per_process)
        } else {
            String::new()
        };
        return Err(Error::Unsupported(format!(
            "host {} has {} visible GPU(s){visibility} but runs {} local rank(s){per}, which need {needed}: \
             launch at most {} rank(s) per host (e.g. mpirun --map-by ppr:{}:node), or lower -g",
            p.host,
            p.visible_count,
            p.local_size,
            p.visible_count / p.per_process,
            (p.visible_count / p.per_process).max(1)
        )));
    }
    Ok((first..first + p.per_process).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(
        local_rank: usize,
        local_size: usize,
        per: usize,
        count: usize,
        env: Option<(&'static str, &'static str)>,
    ) -> Placement<'static> {
        Placement {
            host: "node7",
            local_rank,
            local_size,
            per_process: per,
            visible_count: count,
            visible_env: env,
            first_device: None,
        }
    }

    #[test]
    fn nccl_tests_device_names_the_first_gpu_whatever_the_local_rank() {
        // NCCL_TESTS_DEVICE=2: every process takes device 2 (and 3 with -g 2), as nccl-tests does.
        let at = |local_rank, per, first| Placement {
            first_device: Some(first),
            ..place(local_rank, 4, per, 8, None)
        };
        assert_eq!(select_ordinals(&at(0, 1, 2)).unwrap(), vec![2]);
        assert_eq!(select_ordinals(&at(3, 1, 2)).unwrap(), vec![2]);
        assert_eq!(select_ordinals(&at(1, 2, 6)).unwrap(), vec![6, 7]);
        let err = select_ordinals(&at(0, 2, 7)).unwrap_err().to_string();
        assert!(
            err.contains("NCCL_TESTS_DEVICE=7") && err.contains("8 visible"),
            "{err}"
        );
    }

    #[test]
    fn visible_entries_parse_indices_uuids_and_empty() {
        assert_eq!(visible_entries("0,1,3"), ["0", "1", "3"]);
        assert_eq!(
            visible_entries(" GPU-8e6a5a1c-2f4b-11ee-be56-0242ac120002 , MIG-1234"),
            ["GPU-8e6a5a1c-2f4b-11ee-be56-0242ac120002", "MIG-1234"]
        );
        assert!(visible_entries("").is_empty());
        // The runtime stops at the first empty entry.
        assert_eq!(visible_entries("2,,3"), ["2"]);
    }

    #[test]
    fn each_local_rank_takes_its_own_gpu() {
        for r in 0..8 {
            assert_eq!(select_ordinals(&place(r, 8, 1, 8, None)).unwrap(), vec![r]);
        }
        // -g 2 with 4 local ranks on 8 GPUs.
        assert_eq!(
            select_ordinals(&place(3, 4, 2, 8, None)).unwrap(),
            vec![6, 7]
        );
        // Ordinals are numbered after CUDA_VISIBLE_DEVICES: "4,5" shows as 0 and 1.
        assert_eq!(
            select_ordinals(&place(1, 2, 1, 2, Some(("CUDA_VISIBLE_DEVICES", "4,5")))).unwrap(),
            vec![1]
        );
        let uuids =
            "GPU-aaaaaaaa-0000-0000-0000-000000000000,GPU-bbbbbbbb-0000-0000-0000-000000000000";
        assert_eq!(
            select_ordinals(&place(1, 2, 1, 2, Some(("CUDA_VISIBLE_DEVICES", uuids)))).unwrap(),
            vec![1]
        );
    }

    #[test]
    fn a_launcher_that_gives_each_rank_one_gpu_is_honoured() {
        // srun --gpus-per-task=1: every rank sees exactly one device.
        for r in 0..4 {
            assert_eq!(
                select_ordinals(&place(r, 4, 1, 1, Some(("CUDA_VISIBLE_DEVICES", "2")))).unwrap(),
                vec![0]
            );
        }
    }

    #[test]
    fn too_many_ranks_names_the_host_and_both_counts() {
        let err = select_ordinals(&place(4, 5, 1, 4, None)).unwrap_err();
        assert!(matches!(err, Error::Unsupported(_)));
        assert_eq!(err.exit_code(), crate::error::ExitCode::Unsupported);
        let m = err.to_string();
        assert!(
            m.contains("node7") && m.contains("4 visible GPU") && m.contains("5 local rank"),
            "{m}"
        );
        // Rank 0 of an oversubscribed host fails too, so no rank starts a communicator that cannot complete.
        assert!(select_ordinals(&place(0, 5, 1, 4, None)).is_err());
        let m = select_ordinals(&place(0, 2, 4, 4, None))
            .unwrap_err()
            .to_string();
        assert!(m.contains("x 4 GPUs each") && m.contains("need 8"), "{m}");
        let visible = Some(("CUDA_VISIBLE_DEVICES", "0,1"));
        let m = select_ordinals(&place(2, 3, 1, 2, visible))
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("CUDA_VISIBLE_DEVICES=\"0,1\"") && m.contains("3 local rank"),
            "{m}"
        );
    }

    #[test]
    fn no_visible_gpu_is_a_clear_error() {
        let m = select_ordinals(&place(0, 1, 1, 0, Some(("CUDA_VISIBLE_DEVICES", ""))))
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("no visible GPU")
                && m.contains("CUDA_VISIBLE_DEVICES=\"\"")
                && m.contains("node7"),
            "{m}"
        );
    }
}
