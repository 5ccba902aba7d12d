//! Baseline against patched, per (architecture, accelerator, vCPUs, clock, workload):
//! each boot gives one sample per workload (the median of its in-boot repetitions);
//! the two sets of samples are compared with a rank test and a bootstrap interval,
//! and a verdict is only as strong as the data. Pure.

use crate::model::{Accel, ArchName, Cell, Clock, Variant};
use crate::serial::Sample;
use crate::stats;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// JSON has no NaN: a statistic that does not exist (no samples) is written as null
/// and read back as NaN.
mod nan_null {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        if x.is_finite() {
            s.serialize_f64(*x)
        } else {
            s.serialize_none()
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

/// When a change counts, from `mmeval.yaml` (`thresholds:`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Thresholds {
    /// Mann-Whitney p below this (and a 95% interval that excludes zero).
    pub alpha: f64,
    /// And a change of the medians at least this large, in percent.
    pub min_change_pct: f64,
    /// A side whose boot-to-boot CV exceeds this is too noisy to call "no change".
    pub noisy_cv_pct: f64,
    /// Fewer successful boots than this on either side: too few to tell.
    pub min_runs: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { alpha: 0.05, min_change_pct: 1.0, noisy_cv_pct: 10.0, min_runs: 3 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Improvement,
    Regression,
    NoSignificantChange,
    TooNoisy,
    TooFewRuns,
}

impl Verdict {
    pub fn words(self) -> &'static str {
        match self {
            Verdict::Improvement => "improvement",
            Verdict::Regression => "regression",
            Verdict::NoSignificantChange => "no significant change",
            Verdict::TooNoisy => "too noisy to tell",
            Verdict::TooFewRuns => "too few runs",
        }
    }
}

/// One side of a comparison: the per-boot samples and their summary.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Side {
    pub n: usize,
    /// Boots where this workload failed or the boot died before it.
    pub failed: usize,
    #[serde(with = "nan_null")]
    pub median: f64,
    #[serde(with = "nan_null")]
    pub min: f64,
    #[serde(with = "nan_null")]
    pub max: f64,
    #[serde(with = "nan_null")]
    pub cv_pct: f64,
    pub values: Vec<f64>,
}

impl Side {
    fn new(values: Vec<f64>, failed: usize) -> Side {
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Side {
            n: values.len(),
            failed,
            median: stats::median(&values),
            min,
            max,
            cv_pct: stats::cv_percent(&values),
            values,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Comparison {
    /// The variant compared with the baseline: "patched", or "v1", "v2" ...
    #[serde(default = "patched")]
    pub variant: Variant,
    pub arch: ArchName,
    pub accel: Accel,
    pub clock: Clock,
    pub cpus: u32,
    pub workload: String,
    pub metric: String,
    pub unit: String,
    pub base: Side,
    /// Keyed by variant name ("patched", or "v1", "v2" ...), in the plan's order.
    pub new: Side,
    /// Percent change of the median, new against base (negative: faster).
    #[serde(with = "nan_null")]
    pub change_pct: f64,
    #[serde(with = "nan_null")]
    pub ci_lo: f64,
    #[serde(with = "nan_null")]
    pub ci_hi: f64,
    #[serde(with = "nan_null")]
    pub p_value: f64,
    pub verdict: Verdict,
}

fn patched() -> Variant {
    "patched".into()
}

impl Comparison {
    pub fn cell(&self) -> Cell {
        Cell { arch: self.arch.clone(), accel: self.accel, clock: self.clock, cpus: self.cpus }
    }
}

/// Comparisons by cell, in cell order; within a cell in the order given. The one
/// grouping every renderer uses.
pub fn by_cell<'a>(cs: impl IntoIterator<Item = &'a Comparison>) -> BTreeMap<Cell, Vec<&'a Comparison>> {
    let mut out: BTreeMap<Cell, Vec<&Comparison>> = BTreeMap::new();
    for c in cs {
        out.entry(c.cell()).or_default().push(c);
    }
    out
}

/// A sample of one boot, with where it came from.
#[derive(Debug, Clone)]
pub struct Tagged<'a> {
    pub arch: &'a str,
    pub accel: Accel,
    pub clock: Clock,
    pub cpus: u32,
    pub variant: &'a str,
    pub sample: Option<&'a Sample>,
    /// For a missing sample: which workload.
    pub id: &'a str,
}

/// The fixed seed of every bootstrap: the same data always gives the same interval.
pub const SEED: u64 = 0x6d6d6576616c; // "mmeval"
pub const ROUNDS: usize = 10_000;

/// The smallest two-sided p a rank test can give with n1 and n2 samples: 2 / C(n1+n2, n1).
pub fn min_p(n1: usize, n2: usize) -> f64 {
    let mut c = 1.0f64;
    for i in 0..n1.min(n2) {
        c = c * (n1 + n2 - i) as f64 / (i + 1) as f64;
    }
    (2.0 / c).min(1.0)
}

pub fn verdict(base: &Side, new: &Side, change: f64, lo: f64, hi: f64, p: f64, t: &Thresholds) -> Verdict {
    // Too few boots to ever reach significance is not "no change".
    if base.n < t.min_runs || new.n < t.min_runs || min_p(base.n, new.n) >= t.alpha {
        return Verdict::TooFewRuns;
    }
    // Noise first: a rank test can call even wildly scattered samples "different",
    // and nobody should act on a verdict drawn from them.
    if base.cv_pct > t.noisy_cv_pct || new.cv_pct > t.noisy_cv_pct {
        return Verdict::TooNoisy;
    }
    let excludes_zero = lo.is_finite() && hi.is_finite() && (lo > 0.0 || hi < 0.0);
    if p < t.alpha && excludes_zero && change.abs() >= t.min_change_pct {
        // Every metric is a time: lower is better.
        return if change < 0.0 { Verdict::Improvement } else { Verdict::Regression };
    }
    Verdict::NoSignificantChange
}

/// Compares `base_variant` with `new_variant` over all tagged samples.
pub fn compare(samples: &[Tagged], base_variant: &str, new_variant: &str, t: &Thresholds) -> Vec<Comparison> {
    type Key = (Cell, String);
    #[derive(Default)]
    struct Acc {
        base: Vec<f64>,
        new: Vec<f64>,
        base_failed: usize,
        new_failed: usize,
        metric: String,
        unit: String,
    }
    let mut groups: BTreeMap<Key, Acc> = BTreeMap::new();
    for s in samples {
        if s.variant != base_variant && s.variant != new_variant {
            continue;
        }
        let cell = Cell { arch: s.arch.into(), accel: s.accel, clock: s.clock, cpus: s.cpus };
        let key = (cell, s.id.to_string());
        let acc = groups.entry(key).or_default();
        let is_base = s.variant == base_variant;
        match s.sample {
            Some(x) => {
                acc.metric = x.metric.clone();
                acc.unit = x.unit.clone();
                if is_base {
                    acc.base.push(x.median)
                } else {
                    acc.new.push(x.median)
                }
            }
            None if is_base => acc.base_failed += 1,
            None => acc.new_failed += 1,
        }
    }
    groups
        .into_iter()
        .map(|((Cell { arch, accel, clock, cpus }, workload), acc)| {
            let base = Side::new(acc.base, acc.base_failed);
            let new = Side::new(acc.new, acc.new_failed);
            let (change, lo, hi) = if base.n > 0 && new.n > 0 {
                stats::change_with_ci(&base.values, &new.values, ROUNDS, SEED)
            } else {
                (f64::NAN, f64::NAN, f64::NAN)
            };
            let p = if base.n > 0 && new.n > 0 {
                stats::mann_whitney(&base.values, &new.values).1
            } else {
                f64::NAN
            };
            let v = verdict(&base, &new, change, lo, hi, p, t);
            Comparison {
                variant: new_variant.into(),
                arch,
                accel,
                clock,
                cpus,
                workload,
                metric: acc.metric,
                unit: acc.unit,
                base,
                new,
                change_pct: change,
                ci_lo: lo,
                ci_hi: hi,
                p_value: p,
                verdict: v,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(v: &[f64]) -> Side {
        Side::new(v.to_vec(), 0)
    }

    #[test]
    fn verdicts_follow_the_data() {
        let t = Thresholds::default();
        let a = side(&[100.0, 101.0, 99.0, 100.5, 100.2, 99.8, 100.1, 99.9, 100.3]);
        let b = side(&[90.0, 91.0, 89.5, 90.2, 90.1, 89.9, 90.4, 90.3, 89.8]);
        let (c, lo, hi) = stats::change_with_ci(&a.values, &b.values, 2000, SEED);
        let p = stats::mann_whitney(&a.values, &b.values).1;
        assert_eq!(verdict(&a, &b, c, lo, hi, p, &t), Verdict::Improvement);
        assert_eq!(verdict(&b, &a, -c, -hi, -lo, p, &t), Verdict::Regression);
        // Three boots each can never reach p < 0.05 with a rank test: say so, not "no change".
        let a3 = side(&[100.0, 101.0, 99.0]);
        let b3 = side(&[50.0, 51.0, 49.0]);
        assert_eq!(min_p(3, 3), 0.1);
        assert_eq!(verdict(&a3, &b3, -50.0, -51.0, -49.0, 0.1, &t), Verdict::TooFewRuns);
        let a4 = side(&[100.0, 101.0, 99.0, 100.0]);
        let b4 = side(&[50.0, 51.0, 49.0, 50.0]);
        assert!((min_p(4, 4) - 2.0 / 70.0).abs() < 1e-15);
        assert_eq!(verdict(&a4, &b4, -50.0, -51.0, -49.0, 0.028, &t), Verdict::Improvement);
        assert_eq!(verdict(&side(&[1.0, 2.0]), &b3, -50.0, -60.0, -40.0, 0.1, &t), Verdict::TooFewRuns);
        let noisy = side(&[100.0, 130.0, 80.0, 120.0, 90.0]);
        assert_eq!(
            verdict(&noisy, &side(&[100.0, 101.0, 99.0, 100.0, 100.0]), 0.0, -10.0, 10.0, 0.8, &t),
            Verdict::TooNoisy
        );
    }
}

#[cfg(test)]
mod json {
    use super::*;

    #[test]
    fn missing_statistics_round_trip_through_json() {
        let empty = Side::new(vec![], 4);
        let json = serde_json::to_string(&empty).unwrap();
        assert!(json.contains("\"median\":null"), "{json}");
        let back: Side = serde_json::from_str(&json).unwrap();
        assert!(back.median.is_nan() && back.min.is_nan() && back.failed == 4);
    }
}
