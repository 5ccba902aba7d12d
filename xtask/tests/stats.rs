//! The statistics against values computed independently (SciPy's mannwhitneyu; numpy
//! over the same splitmix64 stream for the bootstrap): tests/data/stats/fixtures.json,
//! made by make-fixtures.py there.

mod common;

use xtask::stats;

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    x: Vec<f64>,
    y: Vec<f64>,
    u: f64,
    p: f64,
    change: f64,
    ci_lo: f64,
    ci_hi: f64,
}

#[derive(serde::Deserialize)]
struct Fixtures {
    cases: Vec<Case>,
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-12)
}

#[test]
fn mann_whitney_matches_scipy() {
    let f: Fixtures =
        serde_json::from_str(&std::fs::read_to_string(common::data("stats/fixtures.json")).unwrap()).unwrap();
    assert!(f.cases.len() >= 8);
    for c in &f.cases {
        let (u, p) = stats::mann_whitney(&c.x, &c.y);
        assert_eq!(u, c.u, "{}: U", c.name);
        assert!(close(p, c.p, 1e-5), "{}: p {p} vs scipy {}", c.name, c.p);
    }
}

#[test]
fn bootstrap_matches_the_independent_implementation() {
    let f: Fixtures =
        serde_json::from_str(&std::fs::read_to_string(common::data("stats/fixtures.json")).unwrap()).unwrap();
    for c in &f.cases {
        let (ch, lo, hi) = stats::change_with_ci(&c.x, &c.y, 2000, 42);
        assert!(close(ch, c.change, 1e-9), "{}: change {ch} vs {}", c.name, c.change);
        assert!(
            close(lo, c.ci_lo, 1e-9) && close(hi, c.ci_hi, 1e-9),
            "{}: [{lo}, {hi}] vs [{}, {}]",
            c.name,
            c.ci_lo,
            c.ci_hi
        );
    }
}
