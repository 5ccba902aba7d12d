//! The stopping rule of `--reps auto`, proven by simulation: sequences of boots drawn
//! from the per-boot samples recorded in the fixtures (real QEMU runs, both clocks)
//! and from skewed and tied synthetic distributions. A/A sequences (both kernels from
//! one distribution) must give a false-positive rate at most alpha; a known 3% slowdown
//! must be found in at least 80% of the sequences within the budget. Both rates are
//! printed (`cargo test --test sequential_sim -- --nocapture`).

mod common;

use xtask::compare::Thresholds;
use xtask::sequential::{design, stop_at, Decision, Tables};
use xtask::stats::SplitMix64;

const MAX_REPS: usize = 15;
const SEQUENCES: usize = 10_000;

/// Every side of every comparison in the recorded reports with enough boots: each one
/// a distribution of one workload's per-boot figures on one kernel.
fn recorded() -> Vec<(String, Vec<f64>)> {
    let mut out = Vec::new();
    for dir in ["compare", "reports"] {
        for e in std::fs::read_dir(common::data(dir)).unwrap().flatten() {
            if e.path().extension().is_none_or(|x| x != "json") {
                continue;
            }
            let r: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(e.path()).unwrap()).unwrap();
            for c in r["comparisons"].as_array().into_iter().flatten() {
                for side in ["base", "new"] {
                    let v: Vec<f64> =
                        c[side]["values"].as_array().unwrap().iter().filter_map(|x| x.as_f64()).collect();
                    if v.len() >= 4 {
                        let name = format!(
                            "{} {} {} {side}",
                            e.file_name().to_string_lossy(),
                            c["clock"],
                            c["workload"]
                        );
                        out.push((name, v));
                    }
                }
            }
        }
    }
    out
}

/// A draw from a distribution.
type Draw = Box<dyn Fn(&mut SplitMix64) -> f64>;

fn uniform(r: &mut SplitMix64) -> f64 {
    (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

fn normal(r: &mut SplitMix64) -> f64 {
    // Box-Muller.
    let (u1, u2) = (uniform(r).max(1e-300), uniform(r));
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Synthetic distributions: skewed, tied, with outliers; `true` for those quiet
/// enough (boot-to-boot CV at most 1.5%) that a 3% change must be found.
fn synthetic() -> Vec<(String, Draw, bool)> {
    vec![
        ("lognormal sigma 1%".into(), Box::new(|r: &mut SplitMix64| 100.0 * (0.01 * normal(r)).exp()), true),
        (
            "100 + exponential(1), right-skewed".into(),
            Box::new(|r: &mut SplitMix64| 100.0 - uniform(r).max(1e-300).ln()),
            true,
        ),
        (
            "normal 1% rounded to integers (ties)".into(),
            Box::new(|r: &mut SplitMix64| (100.0 + normal(r)).round()),
            true,
        ),
        (
            "mixture: 90% N(100, 0.5%), 10% +5% outliers".into(),
            Box::new(|r: &mut SplitMix64| {
                let x = 100.0 + 0.5 * normal(r);
                if uniform(r) < 0.1 {
                    x * 1.05
                } else {
                    x
                }
            }),
            true,
        ),
        (
            "lognormal sigma 3% (too noisy for 3% in 15 boots)".into(),
            Box::new(|r: &mut SplitMix64| 100.0 * (0.03 * normal(r)).exp()),
            false,
        ),
    ]
}

/// One sequence (both kernels drawn `MAX_REPS` times, the new one scaled by `factor`):
/// the decision where it stopped, and after how many boots of each kernel.
fn one_sequence(
    draw: &dyn Fn(&mut SplitMix64) -> f64,
    factor: f64,
    r: &mut SplitMix64,
    tables: &mut Tables,
    fixed: Option<usize>,
) -> (Decision, usize) {
    let t = Thresholds::default();
    let base: Vec<f64> = (0..MAX_REPS).map(|_| draw(r)).collect();
    let new: Vec<f64> = (0..MAX_REPS).map(|_| draw(r) * factor).collect();
    if let Some(n) = fixed {
        // A fixed run of n boots, one look at alpha: what `--reps n` decides.
        let look = xtask::sequential::Look { n, alpha: t.alpha, budget: n };
        return (tables.decide(&base[..n], &new[..n], look, &t), n);
    }
    let plan = design(&t, MAX_REPS).unwrap();
    let stop =
        stop_at(tables, &plan, MAX_REPS, |n| vec![("w".to_string(), base[..n].to_vec(), new[..n].to_vec())])
            .unwrap();
    let d = tables.decide(&base[..stop.look.n], &new[..stop.look.n], stop.look, &t);
    (d, stop.look.n)
}

struct Rates {
    false_pos: f64,
    power: f64,
    false_equivalent: f64,
    mean_boots_aa: f64,
    mean_boots_shift: f64,
}

fn rates(draws: &[&Draw], seed: u64, fixed: Option<usize>) -> Rates {
    let mut r = SplitMix64(seed);
    let mut tables = Tables::default();
    let (mut fp, mut hit, mut feq, mut boots_aa, mut boots_shift) = (0, 0, 0, 0, 0);
    for i in 0..SEQUENCES {
        let d = draws[i % draws.len()];
        let (aa, n) = one_sequence(d.as_ref(), 1.0, &mut r, &mut tables, fixed);
        fp += (aa == Decision::Significant) as usize;
        boots_aa += n;
        let (shift, n) = one_sequence(d.as_ref(), 1.03, &mut r, &mut tables, fixed);
        hit += (shift == Decision::Significant) as usize;
        feq += (shift == Decision::Equivalent) as usize;
        boots_shift += n;
    }
    let f = |x: usize| x as f64 / SEQUENCES as f64;
    Rates {
        false_pos: f(fp),
        power: f(hit),
        false_equivalent: f(feq),
        mean_boots_aa: f(boots_aa),
        mean_boots_shift: f(boots_shift),
    }
}

fn say(what: &str, r: &Rates) {
    eprintln!(
        "{what}: {SEQUENCES} A/A sequences: false-positive rate {:.4} (alpha 0.05), mean {:.1} boots of each kernel; \
         3% slower: detected in {:.4}, called equivalent in {:.4}, mean {:.1} boots",
        r.false_pos, r.mean_boots_aa, r.power, r.false_equivalent, r.mean_boots_shift
    );
}

fn cv(v: &[f64]) -> f64 {
    xtask::stats::cv_percent(v)
}

#[test]
fn aa_sequences_from_the_recorded_boots_stay_within_alpha_and_a_3pct_change_is_found() {
    let rec = recorded();
    assert!(rec.len() >= 40, "{} recorded distributions", rec.len());
    let (quiet, noisy): (Vec<_>, Vec<_>) = rec.into_iter().partition(|(_, v)| cv(v) <= 1.5);
    let draws = |set: Vec<(String, Vec<f64>)>| -> Vec<Draw> {
        set.into_iter()
            .map(|(_, v)| Box::new(move |r: &mut SplitMix64| v[r.below(v.len())]) as Draw)
            .collect()
    };
    let (quiet, noisy) = (draws(quiet), draws(noisy));
    let all: Vec<&Draw> = quiet.iter().chain(noisy.iter()).collect();
    let quiet: Vec<&Draw> = quiet.iter().collect();
    let noisy: Vec<&Draw> = noisy.iter().collect();
    let r = rates(&all, 1, None);
    say(&format!("recorded, all {} distributions", all.len()), &r);
    assert!(r.false_pos <= 0.05, "false-positive rate {}", r.false_pos);
    assert!(r.false_equivalent <= 0.05, "a 3% change called no change in {}", r.false_equivalent);
    let q = rates(&quiet, 2, None);
    say(&format!("recorded, {} with CV <= 1.5%", quiet.len()), &q);
    assert!(q.false_pos <= 0.05 && q.power >= 0.80, "false positives {}, power {}", q.false_pos, q.power);
    say(&format!("recorded, {} with CV > 1.5%", noisy.len()), &rates(&noisy, 3, None));
    let fixed = rates(&all, 1, Some(9));
    say("recorded, all, fixed 9 boots for comparison", &fixed);
    // What makes `auto` the default: on the same boots it finds a 3% change at least
    // as often as a fixed 9, with fewer boots, with and without a change.
    assert!(r.power >= fixed.power, "auto finds 3% in {}, fixed 9 in {}", r.power, fixed.power);
    assert!(
        r.mean_boots_aa < fixed.mean_boots_aa && r.mean_boots_shift < fixed.mean_boots_shift,
        "auto takes {:.1}/{:.1} boots, fixed 9",
        r.mean_boots_aa,
        r.mean_boots_shift
    );
}

#[test]
fn aa_sequences_from_skewed_and_tied_distributions_stay_within_alpha() {
    for (name, d, quiet) in synthetic() {
        let r = rates(&[&d], 4, None);
        say(&name, &r);
        assert!(r.false_pos <= 0.05, "{name}: false-positive rate {}", r.false_pos);
        assert!(r.false_equivalent <= 0.05, "{name}: a 3% change called no change in {}", r.false_equivalent);
        if quiet {
            assert!(r.power >= 0.80, "{name}: power {}", r.power);
        }
    }
}
