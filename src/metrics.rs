//! The numbers of a row: algorithm and bus bandwidth (nccl-tests' definitions), how ranks' times combine
//! into one (-a) and the distribution of per-iteration times.

use crate::report::document::Stats;
use serde::Serialize;

/// How per-rank times are combined into the reported time (-a).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Average {
    Rank0,
    Mean,
    Min,
    Max,
}

/// size / time in GB/s (1 GB = 1e9 bytes), as nccl-tests; 0 when the time is 0.
pub fn algbw_gbps(size_bytes: u64, time_us: f64) -> f64 {
    if time_us > 0.0 {
        size_bytes as f64 / (time_us * 1e3)
    } else {
        0.0
    }
}

/// The time of a communicator from its ranks' times (in its rank order), as -a asks: rank 0's, the mean,
/// the least or the most.
pub fn combine_rank_times(average: Average, times: &[f64]) -> f64 {
    match average {
        Average::Rank0 => times.first().copied().unwrap_or(0.0),
        Average::Mean => times.iter().sum::<f64>() / times.len().max(1) as f64,
        Average::Min => times.iter().copied().fold(f64::INFINITY, f64::min),
        Average::Max => times.iter().copied().fold(0.0, f64::max),
    }
}

/// algbw x the collective's bus factor.
pub fn busbw_gbps(algbw_gbps: f64, factor: f64) -> f64 {
    algbw_gbps * factor
}

/// The median of `values` (the mean of the middle two for an even count); NaN when there are none.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 0 {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

/// Percentile by nearest rank on sorted samples (p in 0..=100).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Stats {
    /// The distribution of samples (microseconds); None without samples.
    pub fn from_samples(samples: &[f64]) -> Option<Stats> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len() as f64;
        let mean = sorted.iter().sum::<f64>() / n;
        let variance = if sorted.len() > 1 {
            sorted.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        let stdev = variance.sqrt();
        Some(Stats {
            samples: sorted.len(),
            min_us: sorted[0],
            p50_us: percentile(&sorted, 50.0),
            p95_us: percentile(&sorted, 95.0),
            p99_us: percentile(&sorted, 99.0),
            max_us: sorted[sorted.len() - 1],
            mean_us: mean,
            stdev_us: stdev,
            cv_percent: if mean > 0.0 {
                100.0 * stdev / mean
            } else {
                0.0
            },
            ci95_percent: if mean > 0.0 {
                100.0 * 1.96 * stdev / n.sqrt() / mean
            } else {
                0.0
            },
            source: String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_takes_the_middle_or_the_mean_of_the_middle_two() {
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn bandwidths_follow_nccl_tests() {
        // 1 GB in 1e6 us is 1 GB/s; an all_reduce on 4 ranks has bus factor 1.5.
        assert_eq!(algbw_gbps(1_000_000_000, 1e6), 1.0);
        assert_eq!(busbw_gbps(2.0, 1.5), 3.0);
        assert_eq!(algbw_gbps(1024, 0.0), 0.0);
    }

    #[test]
    fn distribution_of_one_to_hundred() {
        let samples: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let s = Stats::from_samples(&samples).unwrap();
        assert_eq!(
            (s.min_us, s.p50_us, s.p95_us, s.p99_us, s.max_us),
            (1.0, 50.0, 95.0, 99.0, 100.0)
        );
        assert_eq!(s.mean_us, 50.5);
        assert!((s.stdev_us - 29.011491975882016).abs() < 1e-9);
        assert!((s.ci95_percent - 100.0 * 1.96 * s.stdev_us / 10.0 / 50.5).abs() < 1e-9);
        assert!(Stats::from_samples(&[]).is_none());
        assert_eq!(Stats::from_samples(&[4.0]).unwrap().stdev_us, 0.0);
    }
}
