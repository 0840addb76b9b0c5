//! Each group's own figures from every rank's numbers, and which group was the slowest.

use super::Layout;
use crate::metrics::Average;
use crate::metrics::{algbw_gbps, busbw_gbps, combine_rank_times};
use crate::report::document::GroupFigures;
use crate::topo::peak::percent_of_peak;

/// Every group's time (its members' times combined by -a), bandwidth and wrong elements, and the index of
/// the slowest group. `factor` gives the bus factor for a group of n ranks.
pub fn group_figures(
    layout: &Layout,
    average: Average,
    rank_time_us: &[f64],
    rank_wrong: Option<&[u64]>,
    size_bytes: u64,
    factor: impl Fn(usize) -> f64,
) -> (Vec<GroupFigures>, usize) {
    let figures: Vec<GroupFigures> = layout
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let times: Vec<f64> = g.members.iter().map(|&r| rank_time_us[r]).collect();
            let time_us = combine_rank_times(average, &times);
            let algbw = algbw_gbps(size_bytes, time_us);
            let busbw = busbw_gbps(algbw, factor(g.members.len()));
            let peak = layout.peaks.get(i).and_then(Option::as_ref);
            GroupFigures {
                time_us,
                algbw_gbps: algbw,
                busbw_gbps: busbw,
                peak_percent: peak
                    .and_then(|p| percent_of_peak(busbw, p))
                    .map(|p| p.percent),
                wrong: rank_wrong.map(|w| g.members.iter().map(|&r| w[r]).sum()),
            }
        })
        .collect();
    let slowest = figures
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.time_us.total_cmp(&b.1.time_us))
        .map_or(0, |(i, _)| i);
    (figures, slowest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::GroupSpec;

    #[test]
    fn each_group_combines_its_own_members_and_the_slowest_is_named() {
        let hosts: Vec<String> = ["a", "a", "b", "b"].map(String::from).to_vec();
        let layout = Layout::resolve(GroupSpec::Stride(2), &hosts, 0).unwrap();
        // Group 0 = ranks 0 and 2, group 1 = ranks 1 and 3.
        let times = [10.0, 30.0, 20.0, 50.0];
        let wrong = [0, 1, 2, 3];
        let (g, slowest) = group_figures(
            &layout,
            Average::Mean,
            &times,
            Some(&wrong),
            1_000_000,
            |n| (n as f64 - 1.0) / n as f64,
        );
        assert_eq!(slowest, 1);
        assert_eq!((g[0].time_us, g[1].time_us), (15.0, 40.0));
        assert_eq!((g[0].wrong, g[1].wrong), (Some(2), Some(4)));
        assert_eq!(g[1].algbw_gbps, 1_000_000.0 / 40.0 / 1e3);
        assert_eq!(g[1].busbw_gbps, g[1].algbw_gbps * 0.5);
        let (max, _) = group_figures(&layout, Average::Max, &times, None, 1, |_| 1.0);
        assert_eq!((max[0].time_us, max[1].time_us), (20.0, 50.0));
        assert_eq!(max[0].wrong, None);
        let (first, _) = group_figures(&layout, Average::Rank0, &times, None, 1, |_| 1.0);
        // Rank 0 of group 1 is job rank 1.
        assert_eq!(first[1].time_us, 30.0);
    }
}
