//! The regression report over stored samples (real compare runs in
//! tests/data/compare/): numbers, verdicts and labels as the samples give them.

mod common;

use expect_test::expect_file;
use xtask::compare;
use xtask::compare::Verdict;
use xtask::mail::Addr;
use xtask::render::{self, Templates};
use xtask::report::Report;

fn load(name: &str) -> Report {
    serde_json::from_str(&std::fs::read_to_string(common::data(&format!("compare/{name}.json"))).unwrap())
        .unwrap()
}

fn render(r: &Report) -> String {
    let env = render::Envelope {
        from: Addr { name: "Jörg Tester".into(), email: "joerg.tester@example.org".into() },
        date: "Sun, 22 Nov 2026 10:00:00 +0000".into(),
        message_id: "1795341600.0123456789ab.mmeval@example.org".into(),
    };
    let a = |e: &str| Addr { name: String::new(), email: e.into() };
    render::regression::render(
        r,
        &env,
        &[a("linux-mm@kvack.org")],
        &[a("regressions@lists.linux.dev")],
        &Templates::load().unwrap(),
    )
    .unwrap()
}

#[test]
fn regression_reports_match_their_goldens() {
    for name in ["v6.12-v7.2", "v7.2-v7.2"] {
        expect_file![format!("data/compare-golden/{name}.eml")].assert_eq(&render(&load(name)));
    }
}

#[test]
fn verdicts_and_labels_follow_from_the_stored_samples() {
    let r = load("v6.12-v7.2");
    let t = compare::Thresholds::default();
    for c in &r.comparisons {
        // Recompute each verdict from the samples themselves.
        let (ch, lo, hi) =
            xtask::stats::change_with_ci(&c.base.values, &c.new.values, compare::ROUNDS, compare::SEED);
        let p = xtask::stats::mann_whitney(&c.base.values, &c.new.values).1;
        assert_eq!(compare::verdict(&c.base, &c.new, ch, lo, hi, p, &t), c.verdict, "{}", c.workload);
        assert!((ch - c.change_pct).abs() < 1e-9);
    }
    let text = render(&r);
    let worst = r
        .comparisons
        .iter()
        .filter(|c| c.verdict == Verdict::Regression)
        .max_by(|a, b| (a.new.median / a.base.median).total_cmp(&(b.new.median / b.base.median)))
        .unwrap();
    assert!(text.contains(&format!(
        "Subject: [REGRESSION] mm: {} takes ~{:.2}x",
        worst.workload,
        worst.new.median / worst.base.median
    )));
    assert!(text.contains("#regzbot introduced: v6.12..v7.2"));
    // The same kernel against itself: no [REGRESSION], no regzbot line.
    let same = render(&load("v7.2-v7.2"));
    assert!(!same.contains("[REGRESSION]") && !same.contains("#regzbot"));
    assert!(same
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .contains("no workload regresses significantly"));
}
