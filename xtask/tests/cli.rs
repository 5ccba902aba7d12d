//! The command line as a user meets it: bad input gives a non-zero exit and exactly
//! one line on stderr that says what is wrong; good input prints the summary.

mod common;

use std::process::Command;

fn xtask(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_inputs_fail_with_one_clear_line() {
    let cases = [
        ("empty.mbox", "the input is empty"),
        ("truncated.mbox", "ends in the middle of a hunk"),
        ("no-diff.mbox", "has no diff"),
        ("missing-patch.mbox", "v2 is incomplete: patch 2/3 missing"),
        ("escape-dotdot.mbox", "escapes the tree"),
        ("escape-absolute.mbox", "is absolute"),
        ("escape-dotgit.mbox", "points into `.git`"),
        ("garbage.txt", "no From: or Subject: header"),
    ];
    for (name, needle) in cases {
        let path = format!("tests/data/series/{name}");
        let (ok, stdout, stderr) = xtask(&["series", &path]);
        assert!(!ok, "{name} succeeded");
        assert!(stdout.is_empty(), "{name} printed {stdout}");
        assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
        assert!(
            stderr.starts_with(&format!("error: {path}: ")) && stderr.contains(needle),
            "{name}: {stderr}"
        );
    }
    let (ok, _, stderr) = xtask(&["series", "tests/data/series/no-such-file"]);
    assert!(!ok && stderr.contains("cannot read tests/data/series/no-such-file"), "{stderr}");
}

#[test]
fn apply_failure_exits_non_zero_and_names_the_hunk() {
    let tmp = tempfile::tempdir().unwrap();
    common::toy_repo(tmp.path());
    let tree = tmp.path().to_str().unwrap();
    let (ok, _, stderr) = xtask(&["apply", "tests/data/series/does-not-apply.mbox", "--tree", tree]);
    assert!(!ok);
    assert!(
        stderr.starts_with(
            "error: patch 1/1 \"toy: count present entries as booleans\" does not apply: mm/toy.c, hunk #1"
        ),
        "{stderr}"
    );
    let (ok, stdout, stderr) = xtask(&["apply", "tests/data/series/good-v2.mbox", "--tree", tree]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("refs/heads/eval/toy-batching-groundwork-v2 -> "), "{stdout}");
    let (ok, _, stderr) = xtask(&["apply", "tests/data/series/good-v2.mbox", "--tree", "/nonexistent"]);
    assert!(!ok && stderr.contains("/nonexistent is not a git repository"), "{stderr}");
}

#[test]
fn series_json_is_machine_readable() {
    let (ok, stdout, stderr) =
        xtask(&["series", "--json", "--rev", "1", "tests/data/series/mixed-v1-v2.mbox"]);
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["chosen"]["version"], 1);
    assert_eq!(v["chosen"]["patches"].as_array().unwrap().len(), 2);
    assert_eq!(v["mailbox"]["revisions"].as_object().unwrap().len(), 2);
}

#[test]
fn eval_reports_a_series_that_does_not_apply_and_a_dry_run_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    common::toy_repo(&tmp.path().join("toy"));
    let tree = tmp.path().join("toy");
    let (tree, out) = (tree.to_str().unwrap(), tmp.path().join("out"));
    let common = ["--tree", tree, "--arch", "x86_64", "--reps", "2", "--from", "CI Tester <ci@example.org>"];
    let mut args = vec!["eval", "tests/data/series/does-not-apply.mbox", "--out", out.to_str().unwrap()];
    args.extend(common);
    let (ok, stdout, stderr) = xtask(&args);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("result: the series does not apply"), "{stdout}");
    let mail =
        std::fs::read_to_string(out.join("toy-count-present-entries-as-booleans-v1/reply.eml")).unwrap();
    assert!(mail.contains("does not apply"), "{mail}");
    assert!(!mail.contains("Tested-by:"));
    // The plan of a series that applies, and nothing written for it.
    let dry = tmp.path().join("dry");
    let mut args = vec![
        "eval",
        "tests/data/series/good-v2.mbox",
        "--out",
        dry.to_str().unwrap(),
        "--dry-run",
        "--boot-jobs",
        "2",
    ];
    args.extend(common);
    let (ok, stdout, stderr) = xtask(&args);
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with(
            "plan: 2 kernels x 1 arch(es) = 2 builds; 8 boots (0 done, 8 to run) on qemu; order ABBA; 4 instruction-clock boots 2 at a time, then the rest alone\n"
        ),
        "{stdout}"
    );
    assert_eq!(stdout.lines().filter(|l| l.starts_with("boot ")).count(), 8);
    assert!(!dry.exists(), "a dry run wrote {}", dry.display());
}
