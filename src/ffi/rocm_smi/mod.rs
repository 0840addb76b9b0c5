//! The safe layer over ROCm SMI (librocm_smi64, loaded at run time): opening it quietly, its version and
//! the struct layouts that version writes; the calls that describe GPUs and the links between them are
//! in topology.rs, those that read a GPU's clocks, power, temperature, PCIe link, ECC and throttle
//! status in telemetry.rs. Every failure is a `String` with ROCm SMI's own words (rsmi_status_string).

use super::c_text;
use super::quiet::quietly;
use super::rocm_smi_sys as sys;
use super::search::{self, Attempt, Family};
use std::ffi::c_char;
use std::path::{Path, PathBuf};

/// Environment variables that turn ROCm SMI's own logging on: then its lines are the user's to see.
const LOGGING_VARIABLES: [&str; 2] = ["RSMI_LOGGING", "RSMI_DEBUG"];

/// Which release family's struct layouts the library writes (sys/rocm_smi_api.h says what changed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// ROCm 5: 32 frequency levels, no deep-sleep flag, only the ASIC-specific throttle status.
    Rocm5,
    /// ROCm 6 and later: 33 levels after `has_deep_sleep`, and the ASIC-independent throttle status.
    Rocm6,
}

impl Layout {
    /// The layout of a library whose rsmi_version_get reports `major`: the library is 6.x in ROCm 6.0
    /// and 7.x from ROCm 6.1 on, where the layouts changed; ROCm 5's reports 5.x (Debian's 5.2.3 build,
    /// made without its version tags, reports 1.0.0).
    pub fn for_library_major(major: u32) -> Layout {
        if major >= 6 {
            Layout::Rocm6
        } else {
            Layout::Rocm5
        }
    }
}

/// The firmware's throttle status, as the library's release gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    /// The kernel's ASIC-independent SMU_THROTTLER_* bits (ROCm 6).
    Independent(u64),
    /// The firmware's own bits, whose meaning depends on the chip (ROCm 5).
    AsicSpecific(u32),
}

/// rsmi_clk_type_t: the clock domains telemetry reads.
#[derive(Debug, Clone, Copy)]
pub enum ClockDomain {
    /// The graphics (shader) clock.
    System,
    Memory,
}

/// A loaded and initialised ROCm SMI.
pub struct RocmSmi {
    lib: sys::RocmSmiLib,
    path: PathBuf,
    version: (u32, u32, u32),
    layout: Layout,
    amd_smi_present: bool,
}

/// Candidates' names when AMD SMI (ROCm SMI's successor) is present: said in the description, since a
/// machine may have one without the other.
const AMD_SMI_NAMES: [&str; 2] = ["libamd_smi.so", "/opt/rocm/lib/libamd_smi.so"];

fn amd_smi_present() -> bool {
    AMD_SMI_NAMES.iter().any(|name| {
        // SAFETY: loading runs the library's constructors, which only set up its own state; the handle
        // is dropped at once.
        unsafe { libloading::Library::new(name) }.is_ok()
    })
}

impl RocmSmi {
    /// Finds, opens and initialises ROCm SMI: `explicit` only, when given, else the places of
    /// `search::Family::RocmSmi`. Whatever the library prints meanwhile is kept off the terminal and
    /// goes into the error.
    pub fn open(explicit: Option<&Path>) -> Result<RocmSmi, String> {
        let (opened, printed) = quietly(&LOGGING_VARIABLES, || Self::open_loud(explicit));
        opened.map_err(|e| format!("{e}{}", printed.as_suffix("ROCm SMI")))
    }

    fn open_loud(explicit: Option<&Path>) -> Result<RocmSmi, String> {
        let candidates: Vec<search::Candidate> = match explicit {
            Some(path) => vec![search::Candidate::explicit(path, "COLLBENCH_TEST_ROCM_SMI")],
            None => search::static_candidates(Family::RocmSmi, None, &search::process_env),
        };
        let mut attempts = Vec::new();
        let mut found = None;
        for candidate in candidates {
            // SAFETY: the symbols are typed by sys/rocm_smi_api.h, which tests/abi.rs checks against the
            // real rocm_smi.h of ROCm 5 and 6.
            match super::open_resident(&candidate.target)
                .and_then(|l| unsafe { sys::RocmSmiLib::from_library(l) })
            {
                Ok(lib) => {
                    found = Some((lib, candidate));
                    break;
                }
                Err(e) => attempts.push(Attempt {
                    candidate,
                    reason: e.to_string(),
                }),
            }
        }
        let amd_smi_present = amd_smi_present();
        let Some((lib, candidate)) = found else {
            let also = if amd_smi_present {
                "; AMD SMI (libamd_smi.so) is present, which collbench does not read"
            } else {
                ""
            };
            return Err(format!("ROCm SMI not found ({}{also})", tried(&attempts)));
        };
        let path = if candidate.target.is_absolute() {
            candidate.target.clone()
        } else {
            search::mapped_path("librocm_smi64.so").unwrap_or(candidate.target.clone())
        };
        let mut smi = RocmSmi {
            lib,
            path,
            version: (0, 0, 0),
            layout: Layout::Rocm5,
            amd_smi_present,
        };
        smi.version = smi.library_version()?;
        smi.layout = Layout::for_library_major(smi.version.0);
        let init = smi
            .lib
            .rsmi_init
            .as_ref()
            .map_err(|e| format!("{}: {e}", smi.describe()))?;
        // SAFETY: rsmi_init(0): default flags, paired with rsmi_shut_down on drop.
        let rc = unsafe { init(0) };
        smi.check(rc, "rsmi_init")
            .map_err(|e| format!("{}: {e}", smi.describe()))?;
        Ok(smi)
    }

    fn library_version(&self) -> Result<(u32, u32, u32), String> {
        let f = self
            .lib
            .rsmi_version_get
            .as_ref()
            .map_err(|e| format!("ROCm SMI at {}: {e}", self.path.display()))?;
        let mut v = sys::rsmi_version_t {
            major: 0,
            minor: 0,
            patch: 0,
            build: std::ptr::null(),
        };
        // SAFETY: v is a valid out-pointer of the declared layout (the same in every release).
        let rc = unsafe { f(&mut v) };
        self.check(rc, "rsmi_version_get")
            .map_err(|e| format!("ROCm SMI at {}: {e}", self.path.display()))?;
        Ok((v.major, v.minor, v.patch))
    }

    /// "ROCm SMI 7.6.0 (/usr/lib/x86_64-linux-gnu/librocm_smi64.so.1.0)": the library's own version.
    pub fn describe(&self) -> String {
        let (x, y, z) = self.version;
        let also = if self.amd_smi_present {
            " (AMD SMI also present)"
        } else {
            ""
        };
        format!("ROCm SMI {x}.{y}.{z} ({}){also}", self.path.display())
    }

    /// The struct layouts this library writes.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The library's words for a status: "An error occurred during initialization ... (rsmi_status_t 8)".
    fn words(&self, rc: sys::rsmi_status_t) -> String {
        let mut text: *const c_char = std::ptr::null();
        let said = match self.lib.rsmi_status_string.as_ref() {
            // SAFETY: the library writes a pointer to one of its static strings.
            Ok(f) => (unsafe { f(rc, &mut text) }) == sys::rsmi_status_t::RSMI_STATUS_SUCCESS,
            Err(_) => false,
        };
        match said.then(|| c_text(text)).flatten() {
            Some(t) => format!("{t} (rsmi_status_t {})", rc.0),
            None => format!("rsmi_status_t {}", rc.0),
        }
    }

    fn check(&self, rc: sys::rsmi_status_t, call: &str) -> Result<(), String> {
        if rc == sys::rsmi_status_t::RSMI_STATUS_SUCCESS {
            Ok(())
        } else {
            Err(format!("{call}: {}", self.words(rc)))
        }
    }
}

/// A symbol the library must have, or the caller's error.
macro_rules! symbol {
    ($self:ident, $name:ident) => {
        $self
            .lib
            .$name
            .as_ref()
            .map_err(|e| format!("{}: {e}", stringify!($name)))?
    };
}

// After `symbol!`, which they use.
mod telemetry;
mod topology;
pub use topology::{decode_bdfid, LinkType};

/// The places tried, on one line: a file that is not there by its name alone, any other failure (a
/// dependency missing, a newer C library needed) with the loader's words.
fn tried(attempts: &[Attempt]) -> String {
    let each: Vec<String> = attempts
        .iter()
        .map(|a| {
            let target = a.candidate.target.display().to_string();
            if a.reason
                .starts_with(&format!("{target}: cannot open shared object file"))
            {
                format!("no {target}")
            } else {
                format!("{target}: {}", a.reason)
            }
        })
        .collect();
    each.join(", ")
}

impl Drop for RocmSmi {
    fn drop(&mut self) {
        if let Ok(f) = self.lib.rsmi_shut_down.as_ref() {
            // SAFETY: paired with the successful rsmi_init of `open`.
            let _ = unsafe { f() };
        }
    }
}

#[cfg(test)]
mod tests;
