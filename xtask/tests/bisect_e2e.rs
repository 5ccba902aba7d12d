//! `cargo xtask bisect` for real, on histories built on the reference tree: neutral
//! commits (a file no build reads), then the shipped revert of the small-folio special
//! case (a known slowdown of small-folio toggles), then more neutral commits. Under the
//! instruction clock `bisect` names the revert; with the revert replaced by a neutral
//! commit there is nothing to bisect. A re-run resumes and says the same.

use git2::{Oid, Repository, Signature, Time};
use std::process::Command;

/// A commit on `parent` that changes only a top-level note no build reads; the same
/// every run (fixed identity and date), so stored builds are found again.
fn neutral(repo: &Repository, parent: Oid, n: i64, what: &str) -> Oid {
    let parent = repo.find_commit(parent).unwrap();
    let blob = repo.blob(format!("mmeval bisect test: {what} {n}\n").as_bytes()).unwrap();
    let mut root = repo.treebuilder(Some(&parent.tree().unwrap())).unwrap();
    root.insert("MMEVAL-BISECT-NOTE", blob, 0o100644).unwrap();
    let tree = repo.find_tree(root.write().unwrap()).unwrap();
    let who =
        Signature::new("Neutral Committer", "neutral@example.org", &Time::new(1_790_000_000 + n, 0)).unwrap();
    repo.commit(None, &who, &who, &format!("note: {what} {n}"), &tree, &[&parent]).unwrap()
}

fn bisect(good: &str, bad: &str, out: &std::path::Path) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["bisect", good, bad, "--arch", "x86_64", "--clock", "instructions", "--suite", "quick"])
        .args(["--reps", "4", "--workload", "toggle/anon/small/400K", "--out"])
        .arg(out)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn bisect_names_the_revert_and_finds_nothing_without_it() {
    let reference = xtask::reftree::provision(None).unwrap();
    let repo = Repository::open(&reference.path).unwrap();
    let base = Oid::from_str(&reference.commit).unwrap();

    // base - n1 - n2 - REVERT - n3 - n4
    let n2 = neutral(&repo, neutral(&repo, base, 1, "before"), 2, "before");
    let shipped =
        xtask::reftree::project_root().join("patches/mprotect-revert-small-folio-special-case.mbox");
    let series = xtask::input::read_series(&shipped, Default::default()).unwrap();
    let revert =
        match xtask::apply::apply_series(&repo, &series, n2, "refs/heads/eval/mmeval-bisect-test").unwrap() {
            xtask::apply::ApplyOutcome::Applied(a) => Oid::from_str(&a.last().unwrap().commit).unwrap(),
            xtask::apply::ApplyOutcome::Failed(f) => panic!("the revert does not apply: {f}"),
        };
    let bad = neutral(&repo, neutral(&repo, revert, 3, "after"), 4, "after");

    let out = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = bisect(&base.to_string(), &bad.to_string(), out.path());
    assert!(ok, "{stdout}\n{stderr}");
    println!("{stdout}");
    let short = &revert.to_string()[..12];
    assert!(stdout.contains(&format!("first bad commit: {short} ")), "{stdout}\n{stderr}");
    let root = out.path().join(format!("bisect-{}-{}", &base.to_string()[..12], &bad.to_string()[..12]));
    let b: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("bisect.json")).unwrap()).unwrap();
    assert_eq!(b["culprit"]["sha"], revert.to_string());
    assert_eq!(b["commits"], 5);
    // GOOD -> BAD: small-folio toggles slower, by more than the threshold.
    assert!(b["moved"][0][1].as_f64().unwrap() > 3.0, "{b}");
    // Log2 steps; each a good or bad (none undecided, none skipped).
    let steps = b["steps"].as_array().unwrap();
    assert!((1..=3).contains(&steps.len()), "{b}");
    for s in steps {
        assert!(s["class"] == "good" || s["class"] == "bad", "{s}");
    }
    let mail = std::fs::read_to_string(root.join("report.eml")).unwrap();
    assert!(mail.contains("Subject: [REGRESSION] Revert"), "{mail}");
    assert!(mail.contains(&format!("\n#regzbot introduced: {short}\n")), "{mail}");

    // Again: every step resumes from its records, the same answer, nothing booted.
    let (ok, again, stderr) = bisect(&base.to_string(), &bad.to_string(), out.path());
    assert!(ok, "{stderr}");
    assert!(again.contains(&format!("first bad commit: {short} ")), "{again}");
    assert!(!stderr.contains(" boot 1/"), "a re-run booted again:\n{stderr}");

    // GOOD == BAD, and a GOOD that BAD does not descend from: one line each, nothing run.
    let (ok, _, stderr) = bisect(&base.to_string(), &base.to_string(), out.path());
    assert!(!ok && stderr.contains("GOOD and BAD are the same commit"), "{stderr}");
    let (ok, _, stderr) = bisect(&bad.to_string(), &base.to_string(), out.path());
    assert!(!ok && stderr.contains("is not on BAD's first-parent history"), "{stderr}");

    // The same shape without the revert: nothing to bisect.
    let other = neutral(&repo, neutral(&repo, base, 5, "instead"), 6, "instead");
    let (ok, stdout, stderr) = bisect(&base.to_string(), &other.to_string(), out.path());
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("nothing to bisect: toggle/anon/small/400K is not"), "{stdout}");
}
