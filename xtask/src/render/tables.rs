//! The results tables of the reply and the page's text: one per (arch, accelerator,
//! clock, vCPUs), mmtests style, with `--reps auto`'s line per cell. Pure.

use super::prose::{fmt_num, metric_unit, wrap};
use crate::compare::{self, Comparison, Verdict};
use crate::report::Report;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One table per (arch, accelerator, clock, vCPUs), mmtests style.
pub fn tables(r: &Report) -> String {
    let news = r.new_variants();
    // group -> workload -> variant -> comparison
    let groups = compare::by_cell(&r.comparisons);
    let side = |s: &crate::compare::Side| {
        if s.n == 0 {
            format!("{:>17}", "failed")
        } else {
            format!("{:>10} ±{:>4.1}%", fmt_num(s.median), s.cv_pct)
        }
    };
    let mut o = String::new();
    for (cell, cs) in &groups {
        // workload -> variant -> comparison
        let mut rows: BTreeMap<&str, BTreeMap<&str, &Comparison>> = BTreeMap::new();
        for c in cs {
            rows.entry(&c.workload).or_default().insert(&c.variant, c);
        }
        let n = cs.iter().map(|c| c.base.n.max(c.new.n)).max().unwrap_or(0);
        let _ = writeln!(o, "{}", cell.title(n));
        let stop = r.stop_of(cell);
        if let Some(s) = stop {
            let line = format!("--reps auto: {} ({} boots ran)", s.why, s.boots_run);
            let _ = writeln!(o, "{}", wrap(&line, 72, "  "));
        }
        let _ = write!(o, "{:<36} {:<7} {:>17}", "", "", "baseline");
        for v in &news {
            let _ = write!(o, " {v:>17} {:>11}", "change");
        }
        o.push('\n');
        for (workload, by_variant) in &rows {
            let first = by_variant.values().next().unwrap();
            let _ = write!(o, "{workload:<36} {:<7} {}", metric_unit(&first.metric), side(&first.base));
            let mut notes = String::new();
            let mut failed = first.base.failed;
            for v in &news {
                let Some(c) = by_variant.get(v.as_str()) else {
                    let _ = write!(o, " {:>17} {:>11}", "-", "");
                    continue;
                };
                let gain = -c.change_pct;
                let change = if !gain.is_finite() {
                    "        -".to_string()
                } else if matches!(c.verdict, Verdict::Improvement | Verdict::Regression) {
                    format!("*{gain:>8.2}%*")
                } else {
                    format!("({gain:>8.2}%)")
                };
                let _ = write!(o, " {} {change:>11}", side(&c.new));
                let label = if news.len() > 1 { format!(" ({v})") } else { String::new() };
                match c.verdict {
                    Verdict::TooNoisy => notes.push_str(&format!("  noisy{label}")),
                    Verdict::TooFewRuns => notes.push_str(&format!("  too few runs{label}")),
                    Verdict::NoSignificantChange if stop.is_some_and(|s| s.left_open(workload, v)) => {
                        notes.push_str(&format!("  undecided{label}"))
                    }
                    Verdict::NoSignificantChange => {
                        if let Some(w) = stop.and_then(|s| s.within(workload, v)) {
                            notes.push_str(&format!("  within ±{w}%{label}"))
                        }
                    }
                    _ => {}
                }
                failed += c.new.failed;
            }
            let failed = if failed > 0 { format!("  ({failed} failed)") } else { String::new() };
            let _ = writeln!(o, "{notes}{failed}");
        }
        o.push('\n');
    }
    o
}
