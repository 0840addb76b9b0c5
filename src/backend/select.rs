//! Which backend `--backend auto` means on this machine, with the reason in words for the header.

use super::options::BackendChoice;
use crate::backend::gpu::GpuVendor;
use crate::ffi::cuda;
use crate::ffi::hip::Hip;

/// What one kind of GPU runtime reports on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// This many GPUs are visible.
    Found(usize),
    /// None usable, and why (the runtime's or the loader's words).
    Absent(String),
}

/// CUDA GPUs visible to this process: the driver must load and report at least one device.
pub fn probe_cuda() -> Probe {
    if let Err(why) = cuda::driver_status() {
        return Probe::Absent(why);
    }
    match cuda::device_count(0, &crate::world::host_name()) {
        Ok(0) => Probe::Absent("the CUDA driver reports no device".into()),
        Ok(n) => Probe::Found(n),
        Err(e) => Probe::Absent(e.to_string()),
    }
}

/// HIP GPUs visible to this process. The runtime is not even opened when the PCI bus has no AMD GPU:
/// it would only say so, in lines of its own on the terminal.
pub fn probe_hip() -> Probe {
    let root = crate::topo::live_root();
    if crate::topo::amd_gpu_on_pci(&root) == Some(false) {
        return Probe::Absent(format!(
            "no AMD GPU on the PCI bus ({})",
            root.path("/sys/bus/pci/devices").display()
        ));
    }
    let host = crate::world::host_name();
    let hip = match Hip::open(0, &host) {
        Ok(h) => h,
        Err(e) => return Probe::Absent(first_line(&e.to_string())),
    };
    match hip.device_count() {
        Ok(0) => Probe::Absent("the HIP runtime reports no device".into()),
        Ok(n) => Probe::Found(n),
        Err(e) => Probe::Absent(e.to_string()),
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

/// The decision of `auto` from the two probes: NCCL when a CUDA GPU is visible, else RCCL when a HIP GPU
/// is, else MPI on host memory; with the reason in words.
pub fn decide(cuda: Probe, hip: impl FnOnce() -> Probe) -> (BackendChoice, String) {
    let cuda_why = match cuda {
        Probe::Found(n) => {
            return (
                BackendChoice::Nccl,
                format!("auto: nccl, {n} CUDA GPU(s) visible"),
            )
        }
        Probe::Absent(why) => why,
    };
    match hip() {
        Probe::Found(n) => (
            BackendChoice::Rccl,
            format!("auto: rccl, {n} HIP GPU(s) visible (no CUDA GPU: {cuda_why})"),
        ),
        Probe::Absent(hip_why) => (
            BackendChoice::Mpi,
            format!("auto: mpi on host memory, no GPU found (CUDA: {cuda_why}; HIP: {hip_why})"),
        ),
    }
}

/// The backend `--backend auto` stands for on this machine (never `Auto`), and why. Explicit choices are
/// returned as they are.
pub fn probe_auto(requested: BackendChoice) -> (BackendChoice, String) {
    match requested {
        BackendChoice::Auto => decide(probe_cuda(), probe_hip),
        chosen => (
            chosen,
            format!("--backend {}", format!("{chosen:?}").to_ascii_lowercase()),
        ),
    }
}

/// The GPU family a resolved choice runs on: Some for nccl and rccl (pass it to
/// `backend::gpu::create_gpu_backend`), None for mpi (and for an unresolved auto).
pub fn gpu_vendor(choice: BackendChoice) -> Option<GpuVendor> {
    match choice {
        BackendChoice::Nccl => Some(GpuVendor::Nvidia),
        BackendChoice::Rccl => Some(GpuVendor::Amd),
        BackendChoice::Mpi | BackendChoice::Auto => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_wins_then_hip_then_mpi() {
        let never = || panic!("HIP must not be probed when a CUDA GPU is visible");
        let (c, why) = decide(Probe::Found(8), never);
        assert_eq!(c, BackendChoice::Nccl);
        assert!(why.contains("8 CUDA GPU"), "{why}");
        let (c, why) = decide(Probe::Absent("libcuda.so.1: cannot open".into()), || {
            Probe::Found(4)
        });
        assert_eq!(c, BackendChoice::Rccl);
        assert!(
            why.contains("4 HIP GPU") && why.contains("libcuda.so.1"),
            "{why}"
        );
        let (c, why) = decide(Probe::Absent("no libcuda".into()), || {
            Probe::Absent("hipErrorNoDevice".into())
        });
        assert_eq!(c, BackendChoice::Mpi);
        assert!(
            why.contains("no libcuda") && why.contains("hipErrorNoDevice"),
            "{why}"
        );
    }

    #[test]
    fn resolved_choices_map_to_vendors() {
        assert_eq!(gpu_vendor(BackendChoice::Nccl), Some(GpuVendor::Nvidia));
        assert_eq!(gpu_vendor(BackendChoice::Rccl), Some(GpuVendor::Amd));
        assert_eq!(gpu_vendor(BackendChoice::Mpi), None);
    }

    #[test]
    fn this_machine_probes_without_panicking() {
        // Whatever the machine has, the probes answer (no GPU here: libcuda absent, HIP says no device).
        let (c, why) = decide(probe_cuda(), probe_hip);
        assert!(!why.is_empty());
        if c == BackendChoice::Mpi {
            assert!(why.contains("CUDA:") && why.contains("HIP:"), "{why}");
        }
    }
}
