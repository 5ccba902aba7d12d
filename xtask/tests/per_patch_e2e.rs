//! `eval --per-patch` for real: the shipped two-patch micro-optimization series on
//! x86_64 under the instruction clock (quick suite, 4 boots of each kernel): the
//! baseline and the tree after each patch in one round-robin run, incremental builds,
//! each patch's step next to the whole series, in the mail and on the page.

use std::process::Command;

#[test]
fn per_patch_steps_compose_to_the_whole_series() {
    let out = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["eval", "../patches/mprotect-micro-opt.mbox", "--per-patch", "--arch", "x86_64"])
        .args([
            "--clock",
            "instructions",
            "--suite",
            "quick",
            "--reps",
            "4",
            "--from",
            "CI Tester <ci@example.org>",
        ])
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("round robin, reversed every round"), "{stderr}");
    let shipped = xtask::reftree::project_root().join("patches/mprotect-micro-opt.mbox");
    let slug = xtask::input::read_series(&shipped, Default::default()).unwrap().slug;
    let dir = out.path().join(format!("{slug}-per-patch"));
    let report: xtask::report::Report =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();

    // Three kernels: the baseline, after 1/2, after 2/2 (the whole series).
    let variants: Vec<String> = report.plan.variants.iter().map(|v| v.to_string()).collect();
    assert_eq!(variants, ["baseline", "patch1", "patch2"]);
    assert_eq!(report.boots.len(), 3 * 4);
    assert_eq!(report.per_patch.len(), 2);
    let commits: Vec<&str> = report.per_patch.iter().map(|s| s.patch.commit.as_deref().unwrap()).collect();
    assert_eq!(
        commits,
        report.series.patches.iter().map(|p| p.commit.as_deref().unwrap()).collect::<Vec<_>>()
    );
    let suite = xtask::suite::load("quick").unwrap();
    assert_eq!(report.steps.len(), 2 * suite.runs.len());

    // Each step is its patch against the tree before it; the steps compose to the
    // whole series against the baseline (the ratios of the medians multiply).
    let step = |v: &str, w: &str| report.steps.iter().find(|c| c.variant == v && c.workload == w).unwrap();
    for run in &suite.runs {
        let (s1, s2) = (step("patch1", &run.id), step("patch2", &run.id));
        let whole =
            report.comparisons.iter().find(|c| c.variant == "patch2" && c.workload == run.id).unwrap();
        assert_eq!(s1.base.median, whole.base.median, "{}: step 1 starts at the baseline", run.id);
        assert_eq!(s1.new.median, s2.base.median, "{}: step 2 starts where step 1 ends", run.id);
        assert_eq!(s2.new.median, whole.new.median, "{}: step 2 ends at the whole series", run.id);
        let composed = (1.0 + s1.change_pct / 100.0) * (1.0 + s2.change_pct / 100.0);
        assert!((composed - (1.0 + whole.change_pct / 100.0)).abs() < 1e-9, "{}", run.id);
    }
    // What the thread argued about: patch 1 costs small-folio toggles, patch 2 does not.
    use xtask::compare::Verdict;
    assert_eq!(step("patch1", "toggle/anon/small/400K").verdict, Verdict::Regression);
    assert!(step("patch1", "toggle/anon/small/400K").change_pct > 3.0);
    assert!(
        step("patch2", "toggle/anon/small/400K").change_pct.abs()
            < step("patch1", "toggle/anon/small/400K").change_pct
    );

    let mail = std::fs::read_to_string(dir.join("reply.eml")).unwrap();
    assert!(mail.contains("\nPer patch\n"), "{mail}");
    assert!(mail.contains("  1/2 ") && mail.contains("  2/2 "), "{mail}");
    assert!(mail.contains("1/2        2/2      whole\n"), "{mail}");
    let words = mail.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("1/2 mm/mprotect: do not try to batch a single remaining PTE, x86_64 (TCG, instruction count, 1 vCPU):"),
        "{mail}"
    );
    assert!(mail.contains("--per-patch"), "the reproduce line");
    let page = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(page.contains("<h2>Per patch</h2>"));
    assert_eq!(page.matches("<path class=\"step\" d=\"M").count(), suite.runs.len());
}
