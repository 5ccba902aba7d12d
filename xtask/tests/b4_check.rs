//! `xtask b4-check` driven by b4 itself: b4 0.16's own
//! `b4.review.checks.run_series_checks()` (from PyPI, in the cache's venv) runs our
//! command on the shipped cover letter, with `B4_TRACKING_FILE` naming a tracking JSON
//! whose `series.thread-blob` is the thread stored in the kernel tree b4 runs us in;
//! the results are b4's parse of what we printed. A finished evaluation that passed,
//! one with noisy rows, one that regressed, one still running; and a series with no
//! evaluation yet, which starts one in the background (a real `eval`; it ends at once
//! with "does not apply") and then answers with its result.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const SHIPPED: &str = "../patches/mprotect-folio-hint-gate.mbox";

fn b4_python() -> PathBuf {
    let venv = xtask::reftree::cache_root().join("b4-0.16.0");
    if !venv.join("bin/b4").exists() {
        let ok = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().unwrap().success()
            && Command::new(venv.join("bin/pip"))
                .args(["install", "-q", "b4==0.16.0"])
                .status()
                .unwrap()
                .success();
        assert!(ok, "installing b4 0.16.0 from PyPI");
    }
    venv.join("bin/python")
}

/// A kernel tree for b4 to run us in (any git repository), with `mbox` stored as a
/// blob; the tracking JSON pointing at it.
fn tree_with_thread(dir: &Path, mbox: &Path) -> PathBuf {
    common::git(dir, &["init", "-q"]);
    let blob = common::git(dir, &["hash-object", "-w", mbox.to_str().unwrap()]).trim().to_string();
    let tracking = dir.join("tracking.json");
    std::fs::write(&tracking, serde_json::json!({ "series": { "thread-blob": blob } }).to_string()).unwrap();
    tracking
}

/// b4's run_series_checks on the first message of `mbox` (the cover) with our command.
fn b4_checks(mbox: &Path, out: &Path) -> Vec<serde_json::Value> {
    let tree = tempfile::tempdir().unwrap();
    let tracking = tree_with_thread(tree.path(), mbox);
    let raw = xtask::mail::split_container(&std::fs::read(mbox).unwrap()).unwrap().remove(0);
    let cover = tree.path().join("cover.eml");
    std::fs::write(&cover, raw).unwrap();
    let cmd = format!("{} b4-check --out {}", env!("CARGO_BIN_EXE_xtask"), out.display());
    let script = r#"
import email, email.policy, json, sys
from b4.review import checks
cover, cmd, topdir, tracking = sys.argv[1:5]
msg = email.message_from_binary_file(open(cover, 'rb'), policy=email.policy.default)
msgid = msg.get('message-id', '').strip('<> ')
res = checks.run_series_checks((msgid, msg), [cmd], topdir, extra_env={'B4_TRACKING_FILE': tracking})
print(json.dumps(res))
"#;
    let o = Command::new(b4_python())
        .args(["-c", script])
        .arg(&cover)
        .arg(&cmd)
        .arg(tree.path())
        .arg(&tracking)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn slug(mbox: &Path) -> String {
    xtask::input::read_series(mbox, Default::default()).unwrap().slug
}

/// A finished evaluation of the shipped series in `out`: a recorded report (real
/// samples), its revision the shipped one, `edit`ed.
fn finished(out: &Path, fixture: &str, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join(SHIPPED);
    let dir = out.join(slug(&shipped));
    std::fs::create_dir_all(&dir).unwrap();
    let mut r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(common::data(&format!("reports/{fixture}"))).unwrap())
            .unwrap();
    r["series"]["version"] = 2.into();
    edit(&mut r);
    std::fs::write(dir.join("report.json"), r.to_string()).unwrap();
    std::fs::write(dir.join("reply.eml"), "From: x\n\nx\n").unwrap();
    dir
}

fn one(results: &[serde_json::Value]) -> (&str, &str, &serde_json::Value) {
    assert_eq!(results.len(), 1, "{results:?}");
    let r = &results[0];
    assert_eq!(r["tool"], "mmeval");
    (r["status"].as_str().unwrap(), r["summary"].as_str().unwrap(), r)
}

#[test]
fn b4_review_reads_our_verdict_of_the_series() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join(SHIPPED);

    // Passed: every row decided, no change.
    let out = tempfile::tempdir().unwrap();
    let dir = finished(out.path(), "all-green.json", |r| {
        let cs = r["comparisons"].as_array_mut().unwrap();
        cs.retain(|c| c["verdict"] == "no_significant_change");
    });
    let res = b4_checks(&shipped, out.path());
    let (status, summary, r) = one(&res);
    assert_eq!((status, summary), ("pass", "x86_64: 0 faster, 0 slower"));
    assert_eq!(r["url"], format!("file://{}", dir.join("report.html").display()));
    assert!(r["details"].as_str().unwrap().contains("x86_64 -- QEMU TCG"), "{r}");

    // Noisy rows: warn.
    finished(out.path(), "all-green.json", |_| {});
    let res = b4_checks(&shipped, out.path());
    let (status, summary, _) = one(&res);
    assert_eq!((status, summary), ("warn", "x86_64: 0 faster, 0 slower; 2 too noisy or too few runs"));

    // A significant regression: fail, naming the worst.
    finished(out.path(), "regression.json", |_| {});
    let res = b4_checks(&shipped, out.path());
    let (status, summary, _) = one(&res);
    assert_eq!(status, "fail");
    assert!(summary.starts_with("x86_64: 1 faster, 6 slower: "), "{summary}");

    // Running (the evaluation's directory is locked): warn, where to look.
    let held = xtask::rundir::RunDir::at(dir.clone()).lock(false).unwrap();
    let res = b4_checks(&shipped, out.path());
    let (status, summary, _) = one(&res);
    assert_eq!((status, summary), ("warn", format!("v2 evaluation running, see {}", dir.display()).as_str()));
    drop(held);

    // No evaluation yet: one is started in the background, then answers.
    let broken = common::data("series/does-not-apply.mbox");
    let res = b4_checks(&broken, out.path());
    let (status, summary, _) = one(&res);
    assert_eq!(status, "warn", "{summary}");
    assert!(summary.contains("evaluation running, see "), "{summary}");
    let eval_dir = out.path().join(slug(&broken));
    let started = std::time::Instant::now();
    while !eval_dir.join("reply.eml").exists() {
        assert!(started.elapsed().as_secs() < 300, "the background evaluation did not finish");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // Its lock goes with the process: wait for it to end.
    while xtask::rundir::RunDir::at(eval_dir.clone()).lock(false).is_err() {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let res = b4_checks(&broken, out.path());
    let (status, summary, _) = one(&res);
    assert_eq!(status, "fail");
    assert!(summary.contains("does not apply"), "{summary}");

    // A cover with no Message-ID is a fail entry, and stdout stays JSON.
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["b4-check", "--out"])
        .arg(out.path())
        .stdin(std::fs::File::open(common::data("series/garbage.txt")).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success());
    let v: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["status"], "fail", "{v:?}");
}
