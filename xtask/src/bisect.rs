//! `bisect`'s logic, pure: which commit to measure next, from what the commits tried so
//! far were found to be, and how a measured midpoint is classified from its
//! comparisons with GOOD and BAD. A commit is good or bad only when the statistics say
//! so; a commit that does not build or boot is skipped (`git bisect skip`), one the
//! statistics cannot place is undecided, and neither is guessed: when they are all that
//! is left, the answer is the range the first bad commit is in.

use crate::compare::{Comparison, Verdict};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Good,
    Bad,
    /// Measured, and neither side significantly closer (after the extra boots).
    Undecided,
    /// Not measurable: does not build, does not boot (why).
    Skipped(String),
}

/// What the next step is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Measure the commit at this index of the range.
    Try(usize),
    /// The first bad commit (an index).
    Culprit(usize),
    /// The first bad commit is one of these (skipped or undecided commits hide it).
    Range(Vec<usize>),
}

/// The range is the first-parent history after GOOD, oldest first, BAD last (index
/// `n - 1`, bad by definition); `tried` holds the classes found so far by index.
pub fn next(n: usize, tried: &[(usize, Class)]) -> Next {
    assert!(n > 0, "a range has at least BAD");
    let hi =
        tried.iter().filter(|(_, c)| *c == Class::Bad).map(|(i, _)| *i).min().unwrap_or(n - 1).min(n - 1);
    // The newest good commit older than the first bad one (-1: GOOD itself).
    let lo = tried
        .iter()
        .filter(|(i, c)| *c == Class::Good && *i < hi)
        .map(|(i, _)| *i as isize)
        .max()
        .unwrap_or(-1);
    let open: Vec<usize> = ((lo + 1) as usize..hi).filter(|i| !tried.iter().any(|(t, _)| t == i)).collect();
    if open.is_empty() {
        return if hi as isize - lo == 1 {
            Next::Culprit(hi)
        } else {
            Next::Range(((lo + 1) as usize..=hi).collect())
        };
    }
    // The open commit nearest the middle (the older one on a tie).
    let mid = (lo + hi as isize) as f64 / 2.0;
    let best =
        open.iter().min_by(|a, b| (**a as f64 - mid).abs().total_cmp(&(**b as f64 - mid).abs())).unwrap();
    Next::Try(*best)
}

/// Which direction the bisection looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The first commit at which the workloads got slower.
    Slower,
    /// ... faster (`--improvement`).
    Faster,
}

impl Direction {
    /// Whether a comparison (new against base) is a significant change this way, at
    /// least `threshold_pct`.
    pub fn moved(self, c: &Comparison, threshold_pct: f64) -> bool {
        let sig = matches!(c.verdict, Verdict::Regression | Verdict::Improvement);
        let way = match self {
            Direction::Slower => c.change_pct >= threshold_pct,
            Direction::Faster => c.change_pct <= -threshold_pct,
        };
        sig && way
    }
}

/// The workloads GOOD → BAD moved in the direction asked (by id), of those asked for
/// (all when none are named).
pub fn moved_workloads(
    good_bad: &[Comparison],
    d: Direction,
    threshold_pct: f64,
    asked: &[String],
) -> Vec<String> {
    good_bad
        .iter()
        .filter(|c| asked.is_empty() || asked.contains(&c.workload))
        .filter(|c| d.moved(c, threshold_pct))
        .map(|c| c.workload.clone())
        .collect()
}

/// A midpoint from its steps GOOD → MID and MID → BAD, over the workloads that moved:
/// bad when every one moved between GOOD and MID and none between MID and BAD; good
/// when the reverse; else undecided.
pub fn classify(
    good_mid: &[Comparison],
    mid_bad: &[Comparison],
    workloads: &[String],
    d: Direction,
    threshold_pct: f64,
) -> Class {
    let moved = |cs: &[Comparison], w: &str| cs.iter().any(|c| c.workload == w && d.moved(c, threshold_pct));
    let differs = |cs: &[Comparison], w: &str| {
        cs.iter().any(|c| c.workload == w && matches!(c.verdict, Verdict::Regression | Verdict::Improvement))
    };
    let bad = workloads.iter().all(|w| moved(good_mid, w) && !differs(mid_bad, w));
    let good = workloads.iter().all(|w| moved(mid_bad, w) && !differs(good_mid, w));
    match (bad, good) {
        (true, false) => Class::Bad,
        (false, true) => Class::Good,
        _ => Class::Undecided,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a bisection to its end over `n` commits with a fake measurement.
    fn run(n: usize, mut measure: impl FnMut(usize) -> Class) -> (Next, Vec<usize>) {
        let mut tried = Vec::new();
        loop {
            match next(n, &tried) {
                Next::Try(i) => {
                    assert!(!tried.iter().any(|(t, _)| *t == i), "{i} tried twice");
                    tried.push((i, measure(i)));
                }
                done => return (done, tried.iter().map(|t| t.0).collect()),
            }
        }
    }

    #[test]
    fn a_monotone_step_is_found_in_log2_steps() {
        for n in 1..40 {
            for culprit in 0..n {
                let (found, tried) = run(n, |i| if i >= culprit { Class::Bad } else { Class::Good });
                assert_eq!(found, Next::Culprit(culprit), "n {n} culprit {culprit}");
                let bound = (n as f64).log2().ceil() as usize + 1;
                assert!(tried.len() <= bound, "n {n}: {} steps", tried.len());
            }
        }
    }

    #[test]
    fn a_skipped_commit_is_stepped_around() {
        // 0 1 2 [3: does not build] 4 5 6 7; the culprit is 5.
        let (found, tried) = run(8, |i| match i {
            3 => Class::Skipped("does not build".into()),
            i if i >= 5 => Class::Bad,
            _ => Class::Good,
        });
        assert_eq!(found, Next::Culprit(5));
        assert!(tried.contains(&3));
        // When the skipped commit is the last good candidate: the range.
        let (found, _) = run(8, |i| match i {
            4 => Class::Skipped("does not boot".into()),
            i if i >= 5 => Class::Bad,
            _ => Class::Good,
        });
        assert_eq!(found, Next::Range(vec![4, 5]));
    }

    #[test]
    fn an_undecided_midpoint_is_never_guessed() {
        let (found, _) = run(5, |i| match i {
            2 => Class::Undecided,
            i if i >= 2 => Class::Bad,
            _ => Class::Good,
        });
        assert_eq!(found, Next::Range(vec![2, 3]));
    }

    #[test]
    fn good_equal_to_bad_has_only_bad() {
        // GOOD's child is BAD: nothing to measure, BAD is the culprit.
        assert_eq!(next(1, &[]), Next::Culprit(0));
    }

    fn cmp(workload: &str, change: f64, verdict: Verdict) -> Comparison {
        let side = crate::compare::Side {
            n: 4,
            failed: 0,
            median: 1.0,
            min: 1.0,
            max: 1.0,
            cv_pct: 0.0,
            values: vec![],
        };
        Comparison {
            variant: "x".into(),
            arch: "x86_64".into(),
            accel: crate::model::Accel::Tcg,
            clock: crate::model::Clock::Instructions,
            cpus: 1,
            workload: workload.into(),
            metric: "ns_per_call".into(),
            unit: "ns".into(),
            base: side.clone(),
            new: side,
            change_pct: change,
            ci_lo: change,
            ci_hi: change,
            p_value: 0.01,
            verdict,
        }
    }

    #[test]
    fn midpoints_are_classified_by_the_statistics() {
        use Verdict::*;
        let w = vec!["t".to_string()];
        let d = Direction::Slower;
        let slower = cmp("t", 6.0, Regression);
        let same = cmp("t", 0.0, NoSignificantChange);
        assert_eq!(
            classify(std::slice::from_ref(&slower), std::slice::from_ref(&same), &w, d, 1.0),
            Class::Bad
        );
        assert_eq!(
            classify(std::slice::from_ref(&same), std::slice::from_ref(&slower), &w, d, 1.0),
            Class::Good
        );
        // Half way on both sides, or noise: undecided.
        let half = cmp("t", 3.0, Regression);
        assert_eq!(
            classify(std::slice::from_ref(&half), std::slice::from_ref(&half), &w, d, 1.0),
            Class::Undecided
        );
        let noisy = cmp("t", 6.0, TooNoisy);
        assert_eq!(classify(&[noisy], std::slice::from_ref(&same), &w, d, 1.0), Class::Undecided);
        // Below the threshold is not a move.
        assert_eq!(
            classify(&[cmp("t", 0.5, Regression)], std::slice::from_ref(&same), &w, d, 1.0),
            Class::Undecided
        );
        // The other direction.
        let faster = cmp("t", -6.0, Improvement);
        assert_eq!(
            classify(std::slice::from_ref(&faster), std::slice::from_ref(&same), &w, Direction::Faster, 1.0),
            Class::Bad
        );
        assert_eq!(moved_workloads(&[faster, slower, same], d, 1.0, &[]), vec!["t".to_string()]);
    }
}
