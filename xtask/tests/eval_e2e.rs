//! The main job for real: `cargo xtask eval` of a shipped series against the reference
//! tree, on x86_64, arm64 and ppc64le, both clocks, the quick suite: real builds, real
//! QEMU boots, the real email. Then a re-run, which must resume without booting again.

use std::process::Command;

fn eval(out: &std::path::Path) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["eval", "../patches/mprotect-folio-hint-gate.mbox", "--suite", "quick", "--reps", "4"])
        .args(["--arch", "x86_64,arm64,ppc64le", "--clock", "both", "--accel", "tcg"])
        .args(["--from", "CI Tester <ci@example.org>", "--out"])
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
fn eval_of_a_shipped_series_on_three_architectures() {
    let out = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = eval(out.path());
    assert!(ok, "eval failed:\n{stdout}\n{stderr}");
    let shipped = xtask::reftree::project_root().join("patches/mprotect-folio-hint-gate.mbox");
    let slug = xtask::input::read_series(&shipped, Default::default()).unwrap().slug;
    let dir = out.path().join(slug);
    let mail = std::fs::read_to_string(dir.join("reply.eml")).unwrap();

    // Threaded reply to the v2 cover letter, from the tester, to the author.
    assert!(
        mail.contains(
            "\nSubject: Re: [PATCH v2 0/2] mm/mprotect: look up the folio only when it is\n needed\n"
        ),
        "{mail}"
    );
    assert!(mail.contains("\nIn-Reply-To: <20261110083000.5151-0-mira@example.org>\n"));
    assert!(mail.starts_with("From: CI Tester <ci@example.org>\nTo: Mira Castellanos <mira@example.org>\n"));
    assert!(
        mail.contains("=?UTF-8?q?J=C3=B6rg_M=C3=BCller?= <joerg@example.org>"),
        "Cc keeps the thread's people"
    );
    // What was tested: base, both patches with their commits, three compilers.
    assert!(mail.contains("Linux 7.2.13, reference v7.2 at 33dcfcc58395 (the series' base-commit)"));
    assert!(mail.contains("1/2 b29a28f69355 mm/mprotect: factor the folio lookup out of change_pte_range()"));
    assert!(mail.contains("2/2 5d6cccfa58e3 mm/mprotect: look up the folio only when it is needed"));
    for cc in ["(x86_64)", "(arm64)", "(ppc64le)"] {
        assert!(mail.contains(cc), "compiler line for {cc}");
    }
    // One table per architecture and clock, every quick workload in each, TCG named.
    for arch in ["x86_64", "arm64", "ppc64le"] {
        for clock in ["wall clock", "instruction count"] {
            let title = format!(
                "{arch} -- QEMU TCG (emulated: not silicon timings), 1 vCPU, {clock}; 4 boots of each kernel"
            );
            assert!(mail.contains(&title), "no table {title}");
        }
    }
    let rows = |id: &str, unit: &str| mail.lines().filter(|l| l.starts_with(id) && l.contains(unit)).count();
    assert_eq!(rows("toggle/anon/small/400K ", " ns/call "), 6);
    assert_eq!(rows("shared_steady/shared/4M ", " ns/page "), 6);
    // Every build, boot and run passed: Tested-by, alone on its line.
    assert!(mail.contains("Every requested build and boot succeeded."));
    assert!(mail.contains("\n\nTested-by: CI Tester <ci@example.org>\n"));
    // Under the instruction clock the gate is a deterministic saving on shared memory.
    let x86 = mail
        .split("x86_64 -- QEMU TCG (emulated: not silicon timings), 1 vCPU, instruction count")
        .nth(1)
        .unwrap();
    let row = x86.lines().find(|l| l.starts_with("shared_steady/shared/4M")).unwrap();
    assert!(row.contains('*'), "not significant: {row}");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["format"], 1);
    assert_eq!(report["boots"].as_array().unwrap().len(), 48);
    assert!(stdout.contains("result: 6 builds, 48/48 boots ok;"), "{stdout}");
    assert!(stdout.contains("  boots ") && stdout.contains("  total "), "timing breakdown: {stdout}");

    // A second run resumes: no boot runs again, the same comparisons come out.
    let (ok, stdout2, stderr2) = eval(out.path());
    assert!(ok, "{stderr2}");
    assert!(stderr2.contains("eval: resuming: 48 boots already done"), "{stderr2}");
    assert!(!stderr2.contains("eval: boot "), "booted again:\n{stderr2}");
    let again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(again["comparisons"], report["comparisons"]);
    assert!(stdout2.contains("result: 6 builds, 48/48 boots ok;"));
}
