//! The AMD GPU source behind a trait: xGMI links between AMD GPUs as ROCm SMI reports them
//! (live, through `ffi::rocm_smi`, opened only when asked), or a recorded machine's answers
//! (amdsmi.json).

use crate::ffi::rocm_smi::{LinkType, RocmSmi};
use serde::Deserialize;
use std::path::Path;

/// One GPU as ROCm SMI / AMD SMI enumerates it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AmdGpuAnswer {
    /// PCI address in sysfs form ("0000:0c:00.0").
    pub bus_id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Bytes of VRAM (rsmi_dev_memory_total_get).
    #[serde(default)]
    pub memory_total: Option<u64>,
}

/// The link between two GPUs (rsmi_topo_get_link_type / amdsmi_topo_get_link_type).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AmdLinkAnswer {
    /// "XGMI", "PCIE" or "UNDEFINED", as amd-smi prints RSMI_IO_LINK_TYPE.
    pub link_type: String,
    pub hops: u64,
}

pub trait AmdSource {
    /// Where the answers come from, or why there are none ("ROCm SMI not found").
    fn open(&self) -> Result<String, String>;
    fn gpus(&self) -> Result<Vec<AmdGpuAnswer>, String>;
    /// Link from GPU `src` to GPU `dst` (indices into `gpus()`).
    fn link(&self, src: usize, dst: usize) -> Result<AmdLinkAnswer, String>;
}

/// Recorded answers. Format (tests/fixtures/*/amdsmi.json):
/// `{"library": "...", "gpus": [{"bus_id", "name"}], "links": [[{"link_type", "hops"} | null, ...], ...]}`
/// with `links[src][dst]`; `"init_error"` stands for a library that is missing or fails.
#[derive(Debug, Clone, Deserialize)]
pub struct FixtureAmd {
    #[serde(default)]
    pub library: Option<String>,
    #[serde(default)]
    pub init_error: Option<String>,
    #[serde(default)]
    pub gpus: Vec<AmdGpuAnswer>,
    #[serde(default)]
    pub links: Vec<Vec<Option<AmdLinkAnswer>>>,
    #[serde(skip)]
    origin: String,
}

impl FixtureAmd {
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut f: FixtureAmd =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        f.origin = path.display().to_string();
        Ok(f)
    }

    pub fn absent(why: &str) -> Self {
        FixtureAmd {
            library: None,
            init_error: Some(why.to_string()),
            gpus: vec![],
            links: vec![],
            origin: String::new(),
        }
    }
}

impl AmdSource for FixtureAmd {
    fn open(&self) -> Result<String, String> {
        match &self.init_error {
            Some(e) => Err(e.clone()),
            None => Ok(format!(
                "{} answers recorded in {}",
                self.library.as_deref().unwrap_or("AMD SMI"),
                self.origin
            )),
        }
    }
    fn gpus(&self) -> Result<Vec<AmdGpuAnswer>, String> {
        self.open()?;
        Ok(self.gpus.clone())
    }
    fn link(&self, src: usize, dst: usize) -> Result<AmdLinkAnswer, String> {
        self.links
            .get(src)
            .and_then(|row| row.get(dst))
            .cloned()
            .flatten()
            .ok_or_else(|| "NOT_SUPPORTED".to_string())
    }
}

/// The live library: ROCm SMI, opened the first time it is asked (discovery asks only when the PCI bus
/// has an AMD GPU, so a machine without one never loads it, nor hears what it prints).
pub struct LiveAmd {
    library: Option<String>,
    smi: std::sync::OnceLock<Result<RocmSmi, String>>,
}

impl LiveAmd {
    pub fn new() -> Self {
        LiveAmd {
            library: None,
            smi: std::sync::OnceLock::new(),
        }
    }

    /// ROCm SMI from a given file (a ROCm install outside the loader's path).
    pub fn with_library(path: &str) -> Self {
        LiveAmd {
            library: Some(path.to_string()),
            smi: std::sync::OnceLock::new(),
        }
    }

    fn smi(&self) -> Result<&RocmSmi, String> {
        self.smi
            .get_or_init(|| RocmSmi::open(self.library.as_deref().map(Path::new)))
            .as_ref()
            .map_err(|e| e.clone())
    }
}

impl Default for LiveAmd {
    fn default() -> Self {
        Self::new()
    }
}

impl AmdSource for LiveAmd {
    fn open(&self) -> Result<String, String> {
        let smi = self.smi()?;
        match smi.device_count()? {
            0 => Err(format!("{}: no GPU", smi.describe())),
            _ => Ok(smi.describe()),
        }
    }
    fn gpus(&self) -> Result<Vec<AmdGpuAnswer>, String> {
        let smi = self.smi()?;
        (0..smi.device_count()?)
            .map(|i| {
                Ok(AmdGpuAnswer {
                    bus_id: smi.bus_id(i)?,
                    name: smi.name(i).ok(),
                    memory_total: smi.memory_total(i).ok(),
                })
            })
            .collect()
    }
    fn link(&self, src: usize, dst: usize) -> Result<AmdLinkAnswer, String> {
        let (kind, hops) = self.smi()?.link_type(src as u32, dst as u32)?;
        let link_type = match kind {
            LinkType::Pcie => "PCIE",
            LinkType::Xgmi => "XGMI",
            LinkType::Undefined => "UNDEFINED",
        };
        Ok(AmdLinkAnswer {
            link_type: link_type.to_string(),
            hops,
        })
    }
}
