//! The `--expect` rules that only `collbench pairs` knows: on its verdict rather than on a figure.
//! `no-bad-host` and `no-bad-link` fail (exit 8, as any rule) when the verdict names one, so a script
//! can stop on a finding without knowing what bandwidth the links should have.

use super::verdict::PairsVerdict;
use crate::fleet::gate::Verdict;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerdictRule {
    NoBadHost,
    NoBadLink,
}

impl VerdictRule {
    fn parse(text: &str) -> Option<VerdictRule> {
        let bare: String = text
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_lowercase();
        match bare.as_str() {
            "no-bad-host" => Some(VerdictRule::NoBadHost),
            "no-bad-link" => Some(VerdictRule::NoBadLink),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            VerdictRule::NoBadHost => "no-bad-host",
            VerdictRule::NoBadLink => "no-bad-link",
        }
    }

    /// Passes when the verdict names no bad host (or link).
    pub fn judge(self, v: &PairsVerdict) -> Verdict {
        let named: Vec<String> = match self {
            // A flaky host is a bad host that is sometimes fast: a script stopping on a bad host
            // stops on it too.
            VerdictRule::NoBadHost => v
                .bad_hosts
                .iter()
                .map(|h| h.name.clone())
                .chain(v.flaky_hosts.iter().map(|h| format!("{} (flaky)", h.name)))
                .collect(),
            VerdictRule::NoBadLink => v
                .bad_links
                .iter()
                .map(|l| format!("{} <-> {}", l.a, l.b))
                .collect(),
        };
        let what = match self {
            VerdictRule::NoBadHost => "bad host",
            VerdictRule::NoBadLink => "bad link",
        };
        Verdict {
            rule: self.name().into(),
            passed: named.is_empty(),
            values_judged: 1,
            values_failed: usize::from(!named.is_empty()),
            worst_value: Some(named.len() as f64),
            worst_at: (!named.is_empty()).then(|| named.join(", ")),
            bound: Some(0.0),
            unit: format!("{what}s"),
            reason: if named.is_empty() {
                format!("the verdict names no {what}")
            } else {
                format!(
                    "the verdict names {} {what}(s): {}",
                    named.len(),
                    named.join(", ")
                )
            },
        }
    }
}

/// Splits the --expect texts into verdict rules and the rest (figure rules for fleet::gate).
pub fn split(texts: &[String]) -> (Vec<VerdictRule>, Vec<String>) {
    let mut verdict_rules = Vec::new();
    let mut rest = Vec::new();
    for t in texts {
        match VerdictRule::parse(t) {
            Some(r) => verdict_rules.push(r),
            None => rest.push(t.clone()),
        }
    }
    (verdict_rules, rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::blame::by_majority;
    use crate::pairs::verdict::{BadHost, SlowPair};

    fn verdict(bad_host: bool, bad_link: bool) -> PairsVerdict {
        let pair = SlowPair {
            a: "h1".into(),
            b: "h3".into(),
            bandwidth_gbps: 0.01,
            percent_of_median: 20.0,
            consistency: by_majority(3, 3),
        };
        PairsVerdict {
            threshold_percent: 10.0,
            median_gbps: 0.05,
            slow_pairs: if bad_host || bad_link {
                vec![pair.clone()]
            } else {
                vec![]
            },
            bad_hosts: if bad_host {
                vec![BadHost {
                    name: "h2".into(),
                    consistency: by_majority(3, 3),
                    slow_with: Vec::new(),
                    rounds: None,
                }]
            } else {
                vec![]
            },
            bad_links: if bad_link { vec![pair] } else { vec![] },
            flaky_hosts: vec![],
            undecided_links: vec![],
            undecided_hosts: vec![],
        }
    }

    #[test]
    fn verdict_rules_are_told_from_figure_rules() {
        let texts: Vec<String> = ["busbw>=1@4M", " No-Bad-Host ", "no-bad-link"]
            .map(String::from)
            .to_vec();
        let (rules, rest) = split(&texts);
        assert_eq!(rules, [VerdictRule::NoBadHost, VerdictRule::NoBadLink]);
        assert_eq!(rest, ["busbw>=1@4M"]);
    }

    #[test]
    fn a_named_host_or_link_fails_its_rule_only() {
        let host = verdict(true, false);
        let failed = VerdictRule::NoBadHost.judge(&host);
        assert!(!failed.passed);
        assert_eq!(failed.worst_at.as_deref(), Some("h2"));
        assert!(VerdictRule::NoBadLink.judge(&host).passed);
        let link = VerdictRule::NoBadLink.judge(&verdict(false, true));
        assert!(!link.passed);
        assert!(link.reason.contains("h1 <-> h3"), "{}", link.reason);
        assert!(VerdictRule::NoBadHost.judge(&verdict(false, false)).passed);
        let mut flaky = verdict(false, false);
        flaky.flaky_hosts = host.bad_hosts.clone();
        let failed = VerdictRule::NoBadHost.judge(&flaky);
        assert_eq!(failed.worst_at.as_deref(), Some("h2 (flaky)"));
    }
}
