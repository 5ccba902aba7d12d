//! `cargo xtask compare v6.12 v7.2` for real on x86_64 with the quick suite: two
//! reference trees provisioned and built, interleaved boots, and a report whose numbers,
//! verdicts and labels match the stored samples.

use std::process::Command;

#[test]
fn compare_two_releases_on_x86_64() {
    let out = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["compare", "v6.12", "v7.2", "--arch", "x86_64", "--suite", "quick", "--reps", "4"])
        .args([
            "--cpus",
            "1",
            "--clock",
            "instructions",
            "--accel",
            "tcg",
            "--from",
            "CI Tester <ci@example.org>",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "compare failed:\n{stdout}\n{stderr}");
    let dir = out.path().join("compare-v6.12-v7.2");
    // Headers unfolded, as a mail reader sees them; the body as it is.
    let raw = std::fs::read_to_string(dir.join("report.eml")).unwrap();
    let (head, body) = raw.split_once("\n\n").unwrap();
    let mail = format!("{}\n\n{body}", head.replace("\n ", " "));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();

    // A new thread: no In-Reply-To; the subject follows from the verdicts.
    assert!(!mail.contains("\nIn-Reply-To:"));
    let comps = report["comparisons"].as_array().unwrap();
    assert_eq!(comps.len(), 8);
    let regressions: Vec<&serde_json::Value> =
        comps.iter().filter(|c| c["verdict"] == "regression").collect();
    let subject = mail.lines().find(|l| l.starts_with("Subject: ")).unwrap();
    if regressions.is_empty() {
        assert!(!subject.contains("[REGRESSION]") && !mail.contains("#regzbot"), "{subject}");
    } else {
        assert!(subject.starts_with("Subject: [REGRESSION] mm: "), "{subject}");
        assert!(mail.contains("\n#regzbot introduced: v6.12..v7.2\n"));
        // The worst regression's factor in the subject is the ratio of the stored medians.
        let ratio = |c: &serde_json::Value| {
            c["new"]["median"].as_f64().unwrap() / c["base"]["median"].as_f64().unwrap()
        };
        let worst = regressions.iter().max_by(|a, b| ratio(a).total_cmp(&ratio(b))).unwrap();
        let want = format!(
            "{} takes ~{:.2}x longer on v7.2 than v6.12",
            worst["workload"].as_str().unwrap(),
            ratio(worst)
        );
        assert!(mail.contains(&want), "{want} not in\n{mail}");
    }
    // Both kernels booted and said who they are; the labels are in the report.
    assert!(mail.contains("Kernels booted: 6.12.117"), "{mail}");
    assert!(mail.contains("7.2.13"));
    // Every comparison in the overview, with the verdict the stored samples gave.
    for c in comps {
        let words = match c["verdict"].as_str().unwrap() {
            "no_significant_change" => "no significant change",
            "too_noisy" => "too noisy to tell",
            "too_few_runs" => "too few runs",
            v => v,
        };
        let w = c["workload"].as_str().unwrap();
        assert!(mail.lines().any(|l| l.trim_start().starts_with(w) && l.ends_with(words)), "{w}: {words}");
    }
    assert_eq!(report["boots"].as_array().unwrap().len(), 8);
    assert!(stdout.contains("result: 2 builds, 8/8 boots ok;"), "{stdout}");
}
