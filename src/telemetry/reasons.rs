//! NVML's clock-event reasons (nvmlClocksEventReason*, formerly nvmlClocksThrottleReason*): their bits,
//! their names in the JSON, their words in the footer, and which of them mean the GPU runs below the
//! clocks it could reach.

pub const GPU_IDLE: u64 = 0x1;
pub const APPLICATIONS_CLOCKS_SETTING: u64 = 0x2;
pub const SW_POWER_CAP: u64 = 0x4;
pub const HW_SLOWDOWN: u64 = 0x8;
pub const SYNC_BOOST: u64 = 0x10;
pub const SW_THERMAL_SLOWDOWN: u64 = 0x20;
pub const HW_THERMAL_SLOWDOWN: u64 = 0x40;
pub const HW_POWER_BRAKE_SLOWDOWN: u64 = 0x80;
pub const DISPLAY_CLOCK_SETTING: u64 = 0x100;

/// Reasons that hold the clocks down while the GPU has work: power and thermal capping, hardware
/// slowdown, the power brake. Idle, sync boost and clock settings are not counted as throttling.
pub const THROTTLING: u64 = SW_POWER_CAP
    | HW_SLOWDOWN
    | SW_THERMAL_SLOWDOWN
    | HW_THERMAL_SLOWDOWN
    | HW_POWER_BRAKE_SLOWDOWN;

/// (bit, JSON name, words), in bit order.
const REASONS: [(u64, &str, &str); 9] = [
    (GPU_IDLE, "gpu_idle", "idle"),
    (
        APPLICATIONS_CLOCKS_SETTING,
        "applications_clocks_setting",
        "applications clocks setting",
    ),
    (SW_POWER_CAP, "sw_power_cap", "power cap"),
    (HW_SLOWDOWN, "hw_slowdown", "hardware slowdown"),
    (SYNC_BOOST, "sync_boost", "sync boost"),
    (
        SW_THERMAL_SLOWDOWN,
        "sw_thermal_slowdown",
        "thermal slowdown",
    ),
    (
        HW_THERMAL_SLOWDOWN,
        "hw_thermal_slowdown",
        "hardware thermal slowdown",
    ),
    (
        HW_POWER_BRAKE_SLOWDOWN,
        "hw_power_brake_slowdown",
        "power brake slowdown",
    ),
    (
        DISPLAY_CLOCK_SETTING,
        "display_clock_setting",
        "display clock setting",
    ),
];

/// The JSON names of the bits set; bits NVML may add later are named by their value.
pub fn names(bits: u64) -> Vec<String> {
    let mut out: Vec<String> = REASONS
        .iter()
        .filter(|(bit, _, _)| bits & bit != 0)
        .map(|(_, name, _)| name.to_string())
        .collect();
    let known: u64 = REASONS.iter().map(|r| r.0).fold(0, |a, b| a | b);
    if bits & !known != 0 {
        out.push(format!("other_0x{:x}", bits & !known));
    }
    out
}

/// A JSON name in words ("sw_thermal_slowdown" -> "thermal slowdown").
pub fn words(name: &str) -> &str {
    REASONS
        .iter()
        .find(|(_, n, _)| *n == name)
        .map(|(_, _, w)| *w)
        .unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_become_names_and_words() {
        assert!(names(0).is_empty());
        assert_eq!(
            names(SW_POWER_CAP | HW_THERMAL_SLOWDOWN),
            ["sw_power_cap", "hw_thermal_slowdown"]
        );
        assert_eq!(names(0x1000 | GPU_IDLE), ["gpu_idle", "other_0x1000"]);
        assert_eq!(words("sw_thermal_slowdown"), "thermal slowdown");
        assert_eq!(words("other_0x1000"), "other_0x1000");
        assert_eq!(THROTTLING & (GPU_IDLE | SYNC_BOOST), 0);
    }
}
