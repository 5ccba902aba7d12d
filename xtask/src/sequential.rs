//! `--reps auto`: boot in rounds and stop a cell as soon as every workload in it is
//! decided, without a weaker verdict. Pure.
//!
//! The rule is group-sequential with a Pocock-type boundary: the cell is looked at
//! after planned rounds n_1 < n_2 < ... = max (boots of each kernel), every look at
//! the same nominal level c, chosen so that the chance of a false "significant" at any
//! look is at most alpha. c is calibrated for the rank test itself: under no change
//! the ranks of continuous samples are a uniformly random order whatever the
//! distribution, so the joint law of the looks' Mann-Whitney p-values is the same for
//! every distribution, and c is the alpha-quantile (with a margin for simulation
//! error) of the smallest p over the looks in 20,000 simulated sequences (fixed seed:
//! the same c every time). A workload is *significant* at a look when its p is below c,
//! its change is at least `min_change_pct`, and the Hodges-Lehmann interval at level
//! 1 - c excludes zero; it is *equivalent* ("no change larger than min_change_pct")
//! when that interval at level 1 - 2c (two one-sided tests at c) lies inside
//! +/- min_change_pct. The first look is at the fewest rounds where a rank test can
//! reach c (5 boots a side for alpha 0.05), so a clean difference (the instruction
//! clock) stops there; later looks at about 1.4x the rounds each, the last at the
//! budget. The report's verdict for a cell is computed from the boots of the rounds up
//! to its stopping look, at level c.

use crate::compare::{min_p, Thresholds};
use crate::model::{ArchName, Clock, Variant};
use crate::record::Stored;
use crate::stats;
use crate::suite::Suite;
use anyhow::{bail, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, OnceLock};

/// The looks of a run and the one nominal level they share.
#[derive(Debug, Clone, PartialEq)]
pub struct Design {
    /// Rounds (boots of each kernel) after which a cell is looked at; the last is the budget.
    pub looks: Vec<usize>,
    /// Every look's nominal level.
    pub level: f64,
    /// The run's thresholds (alpha, min_change_pct, noise); the verdicts use `level`.
    pub thresholds: Thresholds,
}

/// A look: after `n` rounds, at nominal level `alpha`, of a design whose last look is
/// at `budget` rounds (a fixed run: `budget == n`, never futile).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Look {
    pub n: usize,
    pub alpha: f64,
    pub budget: usize,
}

impl Design {
    pub fn look(&self, i: usize) -> Look {
        Look { n: self.looks[i], alpha: self.level, budget: self.max() }
    }

    pub fn all(&self) -> Vec<Look> {
        (0..self.looks.len()).map(|i| self.look(i)).collect()
    }

    /// The budget: the most boots of each kernel a cell takes.
    pub fn max(&self) -> usize {
        *self.looks.last().expect("a design has looks")
    }

    /// The thresholds of the verdicts: p below the looks' level.
    pub fn verdict_thresholds(&self) -> Thresholds {
        Thresholds { alpha: self.level, ..self.thresholds }
    }

    /// The rule in words, for the report (and the plan key).
    pub fn describe(&self) -> String {
        let looks: Vec<String> = self.looks.iter().map(usize::to_string).collect();
        format!(
            "group-sequential (Pocock-type boundary, overall alpha {}): looks after {} boots of each kernel, each at p < {:.4}; a cell stops when every workload is significant, within +/-{}%, or futile (too noisy, or out of reach in the budget) from {FUTILE_FROM} boots",
            self.thresholds.alpha,
            looks.join(", "),
            self.level,
            self.thresholds.min_change_pct
        )
    }
}

/// `--max-reps`' default: the budget of boots of each kernel a cell may take.
pub const DEFAULT_MAX_REPS: usize = 15;

/// Null sequences simulated to calibrate the level.
const CALIBRATION: usize = 20_000;

/// The design for the thresholds and at most `max_reps` rounds (calibrated once per
/// process).
pub fn design(t: &Thresholds, max_reps: usize) -> Result<Design> {
    let alpha = t.alpha;
    if !(alpha > 0.0 && alpha < 0.5) {
        bail!("alpha {alpha}: use a level between 0 and 0.5");
    }
    // The first look: where a rank test can get well under alpha at all.
    let Some(n0) = (2..=max_reps).find(|&n| min_p(n, n) <= alpha / 4.0) else {
        let need = (2..100).find(|&n| min_p(n, n) <= alpha / 4.0).unwrap_or(100);
        bail!("--max-reps {max_reps}: too few boots to decide anything at alpha {alpha}; use --max-reps {need} or more");
    };
    let mut looks = vec![n0];
    loop {
        let last = *looks.last().unwrap();
        if last == max_reps {
            break;
        }
        let next = ((last as f64 * 1.4).round() as usize).max(last + 1);
        looks.push(if next + 2 >= max_reps { max_reps } else { next });
    }
    // The calibrated level by (alpha's bits, looks).
    type Levels = HashMap<(u64, Vec<usize>), f64>;
    static CACHE: OnceLock<Mutex<Levels>> = OnceLock::new();
    let key = (alpha.to_bits(), looks.clone());
    let cache = CACHE.get_or_init(Default::default);
    if let Some(&level) = cache.lock().unwrap().get(&key) {
        return Ok(Design { looks, level, thresholds: *t });
    }
    let level = calibrate(alpha, &looks);
    cache.lock().unwrap().insert(key, level);
    Ok(Design { looks, level, thresholds: *t })
}

/// The largest c with P(min over the looks of p < c) <= alpha under no change, from
/// simulated null sequences, with a margin of two standard errors of the simulation.
fn calibrate(alpha: f64, looks: &[usize]) -> f64 {
    let max = *looks.last().unwrap();
    let mut rng = stats::SplitMix64(0x706f636f636b); // "pocock"
    let mut uniform = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let mut mins: Vec<f64> = (0..CALIBRATION)
        .map(|_| {
            let a: Vec<f64> = (0..max).map(|_| uniform()).collect();
            let b: Vec<f64> = (0..max).map(|_| uniform()).collect();
            looks.iter().map(|&n| stats::mann_whitney(&a[..n], &b[..n]).1).fold(1.0, f64::min)
        })
        .collect();
    mins.sort_by(|a, b| a.total_cmp(b));
    let margin = 2.0 * (alpha * (1.0 - alpha) / CALIBRATION as f64).sqrt();
    let target = ((alpha - margin) * CALIBRATION as f64).floor() as usize;
    mins[target.min(CALIBRATION - 1)]
}

/// What a look says of one workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Significant,
    Equivalent,
    Undecided,
    /// Futile: from [`FUTILE_FROM`] boots on, a side's boot-to-boot CV is over
    /// [`FUTILE_CV`] times `noisy_cv_pct`; more boots would end in "too noisy" too.
    TooNoisy,
    /// Futile: from [`FUTILE_FROM`] boots on, neither verdict is in reach of the
    /// budget. The interval, shrunk to the budget's boots (width ~ 1/sqrt(n)), would
    /// still be wider than +/- `min_change_pct` (no "no change"), and the estimated
    /// change is under a third of what the budget's interval would need to exclude
    /// zero (a "significant" would need the change to triple).
    OutOfReach,
}

/// From how many boots of each kernel a noisy workload may be given up on (the CV of
/// fewer is itself too uncertain).
pub const FUTILE_FROM: usize = 7;

/// How far over `noisy_cv_pct` a workload's CV must be (from [`FUTILE_FROM`] boots) for
/// more boots to be futile. Stopping for futility never declares a change, so the
/// false-positive rate cannot rise; a workload just over the threshold keeps going.
pub const FUTILE_CV: f64 = 1.5;

/// The exact null distributions of U, cumulated, by (n1, n2): shared by every look.
#[derive(Default)]
pub struct Tables(HashMap<(usize, usize), Vec<f64>>);

impl Tables {
    /// P(U <= u) under the null, for u = 0..=n1*n2.
    fn cdf(&mut self, n1: usize, n2: usize) -> &[f64] {
        self.0.entry((n1, n2)).or_insert_with(|| {
            let counts = stats::u_counts(n1, n2);
            let total: f64 = counts.iter().sum();
            let mut acc = 0.0;
            counts
                .iter()
                .map(|c| {
                    acc += c / total;
                    acc
                })
                .collect()
        })
    }

    /// The Hodges-Lehmann (Moses) interval for the shift `new - base` at confidence
    /// 1 - `gamma`, in percent of the base median; None when the samples are too few
    /// to have one at that level.
    pub fn shift_interval(&mut self, base: &[f64], new: &[f64], gamma: f64) -> Option<(f64, f64)> {
        let (m, n) = (base.len(), new.len());
        if m == 0 || n == 0 {
            return None;
        }
        let cdf = self.cdf(m, n);
        // k: the most differences that can be cut from each end, P(U < k) <= gamma / 2.
        let k = cdf.iter().take_while(|&&p| p <= gamma / 2.0).count();
        if k == 0 {
            return None;
        }
        let mut d: Vec<f64> = base.iter().flat_map(|b| new.iter().map(move |x| x - b)).collect();
        d.sort_by(|a, b| a.total_cmp(b));
        let scale = 100.0 / stats::median(base);
        Some((d[k - 1] * scale, d[m * n - k] * scale))
    }

    /// One workload at one look.
    pub fn decide(&mut self, base: &[f64], new: &[f64], look: Look, t: &Thresholds) -> Decision {
        if base.len() < look.n.min(t.min_runs.max(2)) || new.len() < look.n.min(t.min_runs.max(2)) {
            return Decision::Undecided;
        }
        let cv = stats::cv_percent(base).max(stats::cv_percent(new));
        let noisy = cv > t.noisy_cv_pct;
        if noisy && look.n >= FUTILE_FROM && cv > FUTILE_CV * t.noisy_cv_pct {
            return Decision::TooNoisy;
        }
        let significance = self.shift_interval(base, new, look.alpha);
        // Over the noise threshold no verdict is drawn, only whether more boots could.
        if !noisy {
            let change = (stats::median(new) / stats::median(base) - 1.0) * 100.0;
            let p = stats::mann_whitney(base, new).1;
            if p < look.alpha && change.abs() >= t.min_change_pct {
                if let Some((lo, hi)) = significance {
                    if lo > 0.0 || hi < 0.0 {
                        return Decision::Significant;
                    }
                }
            }
        }
        let equivalence = self.shift_interval(base, new, 2.0 * look.alpha);
        if let Some((lo, hi)) = equivalence {
            if !noisy && lo >= -t.min_change_pct && hi <= t.min_change_pct {
                return Decision::Equivalent;
            }
        }
        // Not at the last look: there, what is open is simply undecided.
        if look.n >= FUTILE_FROM && look.n < look.budget {
            if let (Some((lo2, hi2)), Some((lo1, hi1))) = (equivalence, significance) {
                let shrink = (look.n as f64 / look.budget as f64).sqrt();
                let estimate = shift_estimate(base, new);
                if (hi2 - lo2) / 2.0 * shrink > t.min_change_pct
                    && estimate.abs() < (hi1 - lo1) / 6.0 * shrink
                {
                    return Decision::OutOfReach;
                }
            }
        }
        Decision::Undecided
    }
}

/// The Hodges-Lehmann estimate of the shift `new - base` (the median of all pairwise
/// differences), in percent of the base median.
pub fn shift_estimate(base: &[f64], new: &[f64]) -> f64 {
    let d: Vec<f64> = base.iter().flat_map(|b| new.iter().map(move |x| x - b)).collect();
    stats::median(&d) * 100.0 / stats::median(base)
}

/// How a cell ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Stop {
    /// The look it ended at (its rounds and level).
    pub look: Look,
    /// Every workload decided; else the budget ran out with these undecided.
    pub undecided: Vec<String>,
    /// Workloads given up on as too noisy (their verdict says so).
    pub noisy: Vec<String>,
    /// Workloads given up on as out of the budget's reach (neither verdict possible).
    pub out_of_reach: Vec<String>,
    /// Workloads decided as no change larger than `min_change_pct`.
    pub equivalent: Vec<String>,
    /// Workloads in the cell (decided ones included).
    pub workloads: usize,
}

impl Stop {
    pub fn why(&self) -> String {
        let given_up = self.noisy.len() + self.out_of_reach.len();
        let decided = self.workloads - self.undecided.len() - given_up;
        let mut s = if !self.undecided.is_empty() {
            format!(
                "ran to the budget ({} boots of each kernel): {} undecided ({})",
                self.look.n,
                self.undecided.len(),
                self.undecided.join(", ")
            )
        } else if given_up == 0 {
            format!("stopped after {} boots of each kernel: every workload decided", self.look.n)
        } else {
            format!(
                "stopped after {} boots of each kernel: {decided} of {} workloads decided, no more boots could decide the rest",
                self.look.n, self.workloads
            )
        };
        let names = |v: &[String]| {
            if v.len() == self.workloads && v.len() > 1 {
                format!("all {}", v.len())
            } else {
                v.join(", ")
            }
        };
        if !self.noisy.is_empty() {
            s += &format!("; too noisy: {} (CV over {FUTILE_CV}x the noise threshold)", names(&self.noisy));
        }
        if !self.out_of_reach.is_empty() {
            s += &format!(
                "; out of reach of {} boots: {} (neither a change nor \"no change\" could be shown)",
                self.look.budget,
                names(&self.out_of_reach)
            );
        }
        s
    }
}

/// The workloads of a cell with their base and new samples from the first `n` rounds.
pub type Samples = Vec<(String, Vec<f64>, Vec<f64>)>;

/// Looks at a cell whose first `rounds` rounds are done, through every look up to
/// there, in order: where it stops, if it does. `samples(n)` gives each workload's
/// base and new samples of the first n rounds.
pub fn stop_at(
    tables: &mut Tables,
    plan: &Design,
    rounds: usize,
    samples: impl Fn(usize) -> Samples,
) -> Option<Stop> {
    let last = *plan.looks.last()?;
    for look in plan.all().iter().filter(|l| l.n <= rounds) {
        let s = samples(look.n);
        let decisions: Vec<(&str, Decision)> =
            s.iter().map(|(w, b, n)| (w.as_str(), tables.decide(b, n, *look, &plan.thresholds))).collect();
        let named = |d: Decision| -> Vec<String> {
            decisions.iter().filter(|(_, x)| *x == d).map(|(w, _)| w.to_string()).collect()
        };
        let undecided = named(Decision::Undecided);
        if undecided.is_empty() && !s.is_empty() || look.n == last {
            return Some(Stop {
                look: *look,
                undecided,
                noisy: named(Decision::TooNoisy),
                out_of_reach: named(Decision::OutOfReach),
                equivalent: named(Decision::Equivalent),
                workloads: decisions.len(),
            });
        }
    }
    None
}

/// A cell of a plan: architecture, vCPUs, clock.
pub type CellKey = (ArchName, u32, Clock);

/// The cells of a run that stopped under `design`, with why; `done` is every finished
/// boot (only a cell's complete rounds are looked at, so the answer is the same
/// whatever order the boots ended in).
pub fn cell_stops(
    design: &Design,
    variants: &[Variant],
    suite: &Suite,
    done: &[Stored],
) -> BTreeMap<CellKey, Stop> {
    let mut by_cell: BTreeMap<CellKey, Vec<&Stored>> = BTreeMap::new();
    for s in done {
        let p = &s.record.provenance;
        by_cell.entry((p.arch.clone(), p.vcpus, p.clock)).or_default().push(s);
    }
    let mut tables = Tables::default();
    let mut out = BTreeMap::new();
    for (cell, boots) in by_cell {
        let have: BTreeSet<(&Variant, usize)> = boots.iter().map(|s| (&s.variant, s.rep)).collect();
        let rounds =
            (0..design.max()).take_while(|r| variants.iter().all(|v| have.contains(&(v, *r)))).count();
        let samples = |n: usize| -> Samples {
            let mut out = Vec::new();
            for run in &suite.runs {
                let of = |v: &Variant| -> Vec<f64> {
                    boots
                        .iter()
                        .filter(|s| &s.variant == v && s.rep < n)
                        .filter_map(|s| {
                            s.record.boot.results.iter().find(|r| r.id == run.id).map(|r| r.median)
                        })
                        .collect()
                };
                let base = of(&variants[0]);
                for v in &variants[1..] {
                    let name = if variants.len() > 2 { format!("{} ({v})", run.id) } else { run.id.clone() };
                    out.push((name, base.clone(), of(v)));
                }
            }
            out
        };
        if let Some(stop) = stop_at(&mut tables, design, rounds, samples) {
            out.insert(cell, stop);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_looks_and_their_level() {
        let d = design(&Thresholds::default(), 15).unwrap();
        assert_eq!(d.looks, [5, 7, 10, 15]);
        // Pocock's constant for 4 equally spaced looks at 0.05 is 0.0182 (normal
        // statistics); the rank test's, for these unequal looks, is near it (the
        // seed is fixed: this is the value every run uses), and a clean difference
        // can reach it at the first look.
        assert!((d.level - 0.022531).abs() < 1e-5, "{}", d.level);
        assert!(min_p(5, 5) < d.level);
        assert_eq!(design(&Thresholds::default(), 9).unwrap().looks, [5, 9]);
        assert_eq!(design(&Thresholds::default(), 5).unwrap().looks, [5]);
        let e = design(&Thresholds::default(), 4).unwrap_err().to_string();
        assert!(e.contains("--max-reps 5 or more"), "{e}");
    }

    #[test]
    fn the_shift_interval_by_hand() {
        // Moses' interval for [1..5] vs [3..7] (shift 2): 25 differences d = y - x from
        // -2 to 6; P(U <= 2) = 4/252 <= 0.025 < P(U <= 3) = 7/252, so k = 3: the 3rd
        // smallest (-1) and 3rd largest (5), in percent of the base median 3.
        let mut t = Tables::default();
        let (lo, hi) =
            t.shift_interval(&[1.0, 2.0, 3.0, 4.0, 5.0], &[3.0, 4.0, 5.0, 6.0, 7.0], 0.05).unwrap();
        assert!((lo + 100.0 / 3.0).abs() < 1e-9 && (hi - 500.0 / 3.0).abs() < 1e-9, "{lo} {hi}");
        // Too few for the level: no interval.
        assert_eq!(t.shift_interval(&[1.0, 2.0], &[3.0, 4.0], 0.05), None);
    }

    #[test]
    fn clean_differences_and_clean_equalities_stop_at_the_first_look() {
        let d = design(&Thresholds::default(), 15).unwrap();
        let t = Thresholds::default();
        let mut tables = Tables::default();
        let base = [100.0, 100.1, 100.0, 100.1, 100.0];
        let slower = [103.0, 103.1, 103.0, 103.1, 103.0];
        assert_eq!(tables.decide(&base, &slower, d.look(0), &t), Decision::Significant);
        assert_eq!(tables.decide(&base, &base, d.look(0), &t), Decision::Equivalent);
        // 2% noise: nothing to say after 5 boots.
        let (a, b) = ([100.0, 98.0, 102.0, 99.0, 101.0], [101.0, 97.0, 103.0, 100.0, 99.0]);
        assert_eq!(tables.decide(&a, &b, d.look(0), &t), Decision::Undecided);
    }

    #[test]
    fn a_workload_far_too_noisy_is_given_up_from_the_second_look() {
        let d = design(&Thresholds::default(), 15).unwrap();
        let t = Thresholds::default();
        let mut tables = Tables::default();
        // CV about 30%: three times the noise threshold.
        let wild = [100.0, 160.0, 70.0, 130.0, 90.0, 150.0, 60.0];
        let calm = [100.0, 100.1, 100.0, 100.1, 100.0, 100.1, 100.0];
        assert_eq!(tables.decide(&wild[..5], &calm[..5], d.look(0), &t), Decision::Undecided, "not at 5");
        assert_eq!(tables.decide(&wild, &calm, d.look(1), &t), Decision::TooNoisy);
        // Just over the threshold (CV ~11%) is not given up as too noisy (its CV could
        // still come down), only as out of reach of the budget.
        let rough = [100.0, 112.0, 88.0, 110.0, 90.0, 113.0, 87.0];
        assert_eq!(tables.decide(&rough, &calm, d.look(1), &t), Decision::OutOfReach);
        // A cell of a clean change and a futile one stops at the second look, saying so.
        let slower: Vec<f64> = calm.iter().map(|x| x * 1.03).collect();
        let stop = stop_at(&mut tables, &d, 15, |n| {
            vec![
                ("clean".into(), calm[..n.min(7)].to_vec(), slower[..n.min(7)].to_vec()),
                ("wild".into(), wild[..n.min(7)].to_vec(), calm[..n.min(7)].to_vec()),
            ]
        })
        .unwrap();
        assert_eq!((stop.look.n, stop.undecided.len()), (7, 0));
        assert_eq!(stop.noisy, vec!["wild".to_string()]);
        assert_eq!(
            stop.why(),
            "stopped after 7 boots of each kernel: 1 of 2 workloads decided, no more boots could decide the rest; \
             too noisy: wild (CV over 1.5x the noise threshold)"
        );
    }

    #[test]
    fn a_workload_no_budget_can_decide_is_given_up_and_a_reachable_one_is_not() {
        let d = design(&Thresholds::default(), 15).unwrap();
        let t = Thresholds::default();
        let mut tables = Tables::default();
        // CV ~4% and no change: after 7 boots the interval is about +/-5%; shrunk to 15
        // boots still about +/-3.5%, so "within 1%" is out of reach, and a change of
        // ~0% is nowhere near the ~2% a significant one would need.
        let a = [100.0, 96.0, 104.0, 97.0, 103.0, 95.0, 105.0];
        let b = [101.0, 95.0, 103.0, 98.0, 104.0, 96.0, 102.0];
        assert_eq!(tables.decide(&a[..5], &b[..5], d.look(0), &t), Decision::Undecided, "not at 5");
        assert_eq!(tables.decide(&a, &b, d.look(1), &t), Decision::OutOfReach);
        // At the budget it is simply undecided; a fixed run is never futile.
        let last = Look { n: 7, alpha: d.level, budget: 7 };
        assert_eq!(tables.decide(&a, &b, last, &t), Decision::Undecided);
        // The same noise with a 4% change is in reach: it goes on.
        let slower: Vec<f64> = b.iter().map(|x| x * 1.04).collect();
        assert_eq!(tables.decide(&a, &slower, d.look(1), &t), Decision::Undecided);
        // Quiet enough (CV ~0.8%) that 15 boots could show "within 1%": it goes on.
        let q = [100.0, 99.2, 100.8, 99.4, 100.6, 99.0, 101.0];
        let r = [100.3, 99.1, 100.9, 99.5, 100.4, 99.3, 100.7];
        assert_eq!(tables.decide(&q, &r, d.look(1), &t), Decision::Undecided);
        // A cell of a clean change and an unreachable one stops at 7 and says why.
        let calm = [100.0, 100.1, 100.0, 100.1, 100.0, 100.1, 100.0];
        let changed: Vec<f64> = calm.iter().map(|x| x * 1.03).collect();
        let stop = stop_at(&mut tables, &d, 15, |n| {
            vec![
                ("clean".into(), calm[..n.min(7)].to_vec(), changed[..n.min(7)].to_vec()),
                ("rough".into(), a[..n.min(7)].to_vec(), b[..n.min(7)].to_vec()),
            ]
        })
        .unwrap();
        assert_eq!((stop.look.n, stop.undecided.len()), (7, 0));
        assert_eq!(stop.out_of_reach, vec!["rough".to_string()]);
        assert!(stop.why().ends_with("1 of 2 workloads decided, no more boots could decide the rest; out of reach of 15 boots: rough (neither a change nor \"no change\" could be shown)"), "{}", stop.why());
        // A cell where nothing could be decided says "all".
        let all = Stop { noisy: vec!["a".into(), "b".into()], out_of_reach: vec![], ..stop };
        assert!(
            all.why().contains(
                "0 of 2 workloads decided, no more boots could decide the rest; too noisy: all 2 ("
            ),
            "{}",
            all.why()
        );
    }

    #[test]
    fn the_shift_estimate_is_the_median_of_the_differences() {
        // Differences of [1, 2, 3] and [2, 4, 9]: 1, 3, 8, 0, 2, 7, -1, 1, 6; median 2,
        // in percent of the base median 2.
        assert!((shift_estimate(&[1.0, 2.0, 3.0], &[2.0, 4.0, 9.0]) - 100.0).abs() < 1e-12);
    }
}
