//! `SysRoot`: every file topology discovery reads goes through here, so tests can point it at a
//! recorded machine under `tests/fixtures/<machine>/` instead of the live "/".

use serde::{Deserialize, Serialize};
use std::path::{Component, Path, PathBuf};

/// The directory that stands for "/" while discovering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysRoot {
    base: PathBuf,
}

impl SysRoot {
    /// The running machine.
    pub fn live() -> Self {
        SysRoot {
            base: PathBuf::from("/"),
        }
    }

    /// A recorded machine: `dir` holds `sys/...`, `proc/...` laid out as on the machine.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        SysRoot { base: dir.into() }
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    pub fn is_live(&self) -> bool {
        self.base == Path::new("/")
    }

    /// The real path of an absolute machine path such as "/sys/class/net".
    pub fn path(&self, machine_path: &str) -> PathBuf {
        self.base.join(machine_path.trim_start_matches('/'))
    }

    /// A sysfs attribute without its trailing newline. Err carries the reason for the
    /// "unknown" note (sysfs answers EINVAL for e.g. the speed of a link that is down).
    pub fn read(&self, machine_path: &str) -> Result<String, String> {
        std::fs::read_to_string(self.path(machine_path))
            .map(|s| s.trim_end_matches(['\n', '\0']).trim().to_string())
            .map_err(|e| format!("{machine_path}: {e}"))
    }

    /// Entry names of a directory, sorted so discovery is deterministic.
    pub fn list(&self, machine_path: &str) -> Result<Vec<String>, String> {
        let rd = std::fs::read_dir(self.path(machine_path))
            .map_err(|e| format!("{machine_path}: {e}"))?;
        let mut names: Vec<String> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    pub fn exists(&self, machine_path: &str) -> bool {
        self.path(machine_path).exists()
    }

    /// Where a sysfs symlink (e.g. /sys/bus/pci/devices/0000:18:00.0) really points, as a machine
    /// path ("/sys/devices/pci0000:15/.../0000:18:00.0"). The device path tells which PCIe
    /// bridges and switches sit above a device, which is how GPU-to-NIC affinity is found.
    /// Resolved by hand, one link at a time, so that a fixture's relative links stay inside it.
    pub fn resolve(&self, machine_path: &str) -> Option<String> {
        let mut parts: Vec<String> = Vec::new();
        let mut todo: Vec<String> = split(machine_path);
        todo.reverse();
        let mut hops = 0;
        while let Some(part) = todo.pop() {
            match part.as_str() {
                "." => continue,
                ".." => {
                    parts.pop();
                    continue;
                }
                _ => {}
            }
            parts.push(part);
            let here = format!("/{}", parts.join("/"));
            let real = self.path(&here);
            let meta = std::fs::symlink_metadata(&real).ok()?;
            if meta.file_type().is_symlink() {
                hops += 1;
                if hops > 40 {
                    return None;
                }
                let target = std::fs::read_link(&real).ok()?;
                let mut more: Vec<String> = target
                    .components()
                    .filter_map(|c| match c {
                        Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                        Component::ParentDir => Some("..".to_string()),
                        _ => None,
                    })
                    .collect();
                // A relative link that climbs above the root belongs to the fixture's own
                // layout (a node folder borrowing another machine's sys/), not to the machine:
                // keep it as a directory and let the file system follow it.
                let mut depth = parts.len() as i64 - 1;
                let escapes = !target.is_absolute()
                    && more.iter().any(|c| {
                        depth += if c == ".." { -1 } else { 1 };
                        depth < 0
                    });
                if escapes {
                    continue;
                }
                parts.pop();
                if target.is_absolute() {
                    // An absolute target names a machine path (live root: identical).
                    parts.clear();
                }
                more.reverse();
                todo.extend(more);
            }
        }
        Some(format!("/{}", parts.join("/")))
    }
}

fn split(p: &str) -> Vec<String> {
    p.split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}
