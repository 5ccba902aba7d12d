//! `--per-patch` in the mail: per cell, each patch's step beside the whole series,
//! then the significant steps patch by patch. Pure.

use super::prose::{short, wrap};
use crate::compare::{self, Comparison, Verdict};
use crate::report::Report;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// `--per-patch`: per cell, what each patch changes against the tree before it, next
/// to the whole series against the baseline; then each significant step in a line.
pub fn steps_table(r: &Report) -> String {
    if r.per_patch.is_empty() {
        return String::new();
    }
    let last = &r.per_patch.last().unwrap().variant;
    let label = |v: &str| {
        r.per_patch.iter().find(|s| s.variant == v).map(|s| format!("{}/{}", s.patch.number, s.patch.total))
    };
    let cell_of = |c: &Comparison| (c.arch.clone(), c.accel, c.clock, c.cpus);
    // by_cell groups by these four; the whole series' row of a cell has the same.
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{}\n",
        wrap("Each column is one patch against the tree before it (1/N against the baseline); \"whole\" is the series against the baseline. Positive means better; *x.x%* is significant.", 72, "")
    );
    for s in &r.per_patch {
        let c = s.patch.commit.as_deref().map(short).unwrap_or("");
        let _ = writeln!(o, "  {}/{} {c} {}", s.patch.number, s.patch.total, s.patch.subject);
    }
    o.push('\n');
    let cell = |c: &Comparison| {
        let gain = -c.change_pct;
        if !gain.is_finite() {
            "-".to_string()
        } else if matches!(c.verdict, Verdict::Improvement | Verdict::Regression) {
            format!("*{gain:.1}%*")
        } else {
            format!("({gain:.1}%)")
        }
    };
    // (patch, cell) -> "workload +x.x%" of each significant step.
    let mut significant: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (group, cs) in &compare::by_cell(&r.steps) {
        let whole: Vec<&Comparison> =
            r.comparisons.iter().filter(|c| &c.variant == last && cell_of(c) == cell_of(cs[0])).collect();
        let n = cs.iter().map(|c| c.base.n.max(c.new.n)).max().unwrap_or(0);
        let _ = writeln!(o, "{}", group.title(n));
        let _ = write!(o, "{:<36}", "");
        for s in &r.per_patch {
            let _ = write!(o, " {:>10}", format!("{}/{}", s.patch.number, s.patch.total));
        }
        let _ = writeln!(o, " {:>10}", "whole");
        let mut rows: BTreeMap<&str, BTreeMap<&str, &Comparison>> = BTreeMap::new();
        for c in cs {
            rows.entry(&c.workload).or_default().insert(&c.variant, c);
        }
        for (workload, by_variant) in &rows {
            let _ = write!(o, "{workload:<36}");
            for s in &r.per_patch {
                let text = by_variant.get(s.variant.as_str()).map(|c| cell(c)).unwrap_or_else(|| "-".into());
                let _ = write!(o, " {text:>10}");
            }
            let w =
                whole.iter().find(|c| c.workload == *workload).map(|c| cell(c)).unwrap_or_else(|| "-".into());
            let _ = writeln!(o, " {w:>10}");
            for c in by_variant.values() {
                if matches!(c.verdict, Verdict::Improvement | Verdict::Regression) {
                    let subject = r
                        .per_patch
                        .iter()
                        .find(|s| s.variant == c.variant)
                        .map(|s| s.patch.subject.as_str())
                        .unwrap_or("");
                    let patch = format!("{} {subject}", label(&c.variant).unwrap_or_default());
                    let place = format!("{} ({})", group.arch, group.place());
                    significant
                        .entry((patch, place))
                        .or_default()
                        .push(format!("{workload} {:+.1}%", c.change_pct));
                }
            }
        }
        o.push('\n');
    }
    if !significant.is_empty() {
        let _ = writeln!(o, "Significant steps (the change of the time itself: + is slower):");
        for ((patch, place), changes) in significant {
            let text = wrap(&format!("{patch}, {place}: {}", changes.join(", ")), 72, "    ");
            let _ = writeln!(o, "{}", text.replacen("    ", "  ", 1));
        }
    }
    o
}
