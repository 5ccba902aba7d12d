//! Faults of the environment during a real run are never a verdict on the series:
//! Ctrl-C and SIGKILL mid-boot, a disk that fills up, a run killed mid-build. Each one
//! is done to a real `cargo xtask eval` of the shipped gate series (x86_64, quick
//! suite, both clocks, 2 boots of each kernel), and the records and the report are
//! checked afterwards: what finished is kept once, what did not is redone on resume,
//! and nothing of ours becomes a failed boot.

use std::collections::{BTreeSet, HashMap};
use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

const SERIES: &str = "../patches/mprotect-folio-hint-gate.mbox";
const BOOTS: usize = 8;

fn eval_cmd(out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["eval", SERIES, "--suite", "quick", "--reps", "2", "--arch", "x86_64"])
        .args(["--clock", "both", "--accel", "tcg", "--from", "CI Tester <ci@example.org>"])
        .args(extra)
        .arg("--out")
        .arg(out);
    c
}

/// The run in its own process group (as a shell runs a foreground job), its stderr
/// lines coming through the receiver.
fn spawn(out: &Path, extra: &[&str]) -> (Child, Receiver<String>) {
    let mut child =
        eval_cmd(out, extra).process_group(0).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Reads lines until one contains `what`; every line read so far.
fn wait_for(rx: &Receiver<String>, what: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(1500);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                let hit = l.contains(what);
                seen.push(l);
                if hit {
                    return;
                }
            }
            Err(e) => panic!("no line with {what:?} ({e}); saw:\n{}", seen.join("\n")),
        }
    }
}

fn signal(target: &str, sig: &str) {
    let ok = Command::new("kill").args([&format!("-{sig}"), "--", target]).status().unwrap().success();
    assert!(ok, "kill -{sig} {target}");
}

fn run_dir(out: &Path) -> PathBuf {
    let shipped = xtask::reftree::project_root().join("patches/mprotect-folio-hint-gate.mbox");
    out.join(xtask::input::read_series(&shipped, Default::default()).unwrap().slug)
}

/// Every line of records.jsonl as written.
fn record_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("records.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// (variant, arch, clock, rep) of a record line, and its boot status.
fn key_and_status(line: &str) -> ((String, String, String, u64), String) {
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let p = &v["record"]["provenance"];
    let key = (
        v["variant"].as_str().unwrap().to_string(),
        p["arch"].as_str().unwrap().to_string(),
        p["clock"].as_str().unwrap().to_string(),
        v["rep"].as_u64().unwrap(),
    );
    (key, v["record"]["boot"]["status"].as_str().unwrap_or("?").to_string())
}

/// The re-run: it resumes, does the rest, and ends with every boot once and a Tested-by.
fn rerun_completes(out: &Path, kept: &[String]) {
    let o = eval_cmd(out, &[]).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "re-run failed:\n{stdout}\n{stderr}");
    let kept_ok = kept.iter().filter(|l| key_and_status(l).1 == "ok").count();
    if kept_ok > 0 {
        assert!(stderr.contains(&format!("resuming: {kept_ok} boots already done")), "{stderr}");
    }
    let dir = run_dir(out);
    let lines = record_lines(&dir);
    let keys: BTreeSet<_> = lines.iter().map(|l| key_and_status(l).0).collect();
    assert_eq!((lines.len(), keys.len()), (BOOTS, BOOTS), "one record per boot:\n{}", lines.join("\n"));
    assert!(lines.iter().all(|l| key_and_status(l).1 == "ok"), "{}", lines.join("\n"));
    assert_eq!(&lines[..kept.len()], kept, "the finished boots are kept as they were");
    assert!(stdout.contains(&format!("result: 2 builds, {BOOTS}/{BOOTS} boots ok;")), "{stdout}");
    let mail = std::fs::read_to_string(dir.join("reply.eml")).unwrap();
    assert!(mail.contains("\n\nTested-by: CI Tester <ci@example.org>\n"), "{mail}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["boots"].as_array().unwrap().len(), BOOTS);
}

#[test]
fn ctrl_c_and_kill_mid_boot_keep_what_finished_and_resume() {
    for sig in ["INT", "KILL"] {
        let out = tempfile::tempdir().unwrap();
        let (mut child, rx) = spawn(out.path(), &[]);
        let mut seen = vec![];
        wait_for(&rx, &format!("boot 3/{BOOTS}:"), &mut seen);
        // Ctrl-C reaches the whole foreground job; SIGKILL only the tool.
        let pid = child.id().to_string();
        signal(&if sig == "INT" { format!("-{pid}") } else { pid }, sig);
        let status = child.wait().unwrap();
        assert!(!status.success(), "{sig}: {status:?}");
        let kept = record_lines(&run_dir(out.path()));
        assert!((3..BOOTS).contains(&kept.len()), "{sig}: {} records:\n{}", kept.len(), kept.join("\n"));
        assert!(kept.iter().all(|l| key_and_status(l).1 == "ok"), "{sig}: {}", kept.join("\n"));
        rerun_completes(out.path(), &kept);
    }
}

/// A small tmpfs, unmounted when dropped.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn new(size: &str) -> Tmpfs {
        let d = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(d.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "this test mounts a tmpfs: it needs root (as .ci/run has)");
        Tmpfs(d)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_disk_stops_the_run_and_is_no_verdict_on_the_series() {
    let fs = Tmpfs::new("16m");
    let out = fs.0.path();
    let (mut child, rx) = spawn(out, &[]);
    let mut seen = vec![];
    wait_for(&rx, &format!("boot 1/{BOOTS}:"), &mut seen);
    // Fill the disk while the next boot runs.
    let filler = out.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
    }
    let status = child.wait().unwrap();
    seen.extend(rx.iter());
    let stderr = seen.join("\n");
    assert!(!status.success(), "{stderr}");
    let last = seen.iter().rev().find(|l| !l.trim().is_empty()).unwrap();
    assert!(
        last.contains("No space left on device")
            && last.contains("KiB free on")
            && last.contains("free some space and run the same command again"),
        "one line naming the path and the space: {last}"
    );
    let kept = record_lines(&run_dir(out));
    assert!(!kept.is_empty() && kept.len() < BOOTS, "{}", kept.join("\n"));
    assert!(
        kept.iter().all(|l| key_and_status(l).1 == "ok"),
        "a write of ours that failed is not a failed boot:\n{}",
        kept.join("\n")
    );
    std::fs::remove_file(&filler).unwrap();
    rerun_completes(out, &kept);
}

/// Every process below `root`.
fn descendants(root: u32) -> Vec<u32> {
    let mut parent = HashMap::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if let Some(ppid) = stat.rsplit_once(") ").and_then(|(_, r)| r.split(' ').nth(1)?.parse::<u32>().ok())
        {
            parent.insert(pid, ppid);
        }
    }
    let mut out: Vec<u32> = vec![];
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (&c, &pp) in &parent {
            if pp == p && !out.contains(&c) {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string()
}

fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, r)| !r.starts_with('Z')))
        .unwrap_or(false)
}

#[test]
fn a_run_killed_mid_build_leaves_no_make_behind() {
    // A build of its own (an extra fragment that changes nothing but the build
    // directory), without the sandbox: what --no-sandbox users get. A new directory
    // every run, removed at the end: one kept from run to run fills up with objects
    // until a killed build has nothing left to compile.
    let tmp = tempfile::tempdir().unwrap();
    let frag = tmp.path().join("kill-mid-build.config");
    let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    std::fs::write(&frag, format!("# faults_e2e: a build that is killed half way ({run})\n")).unwrap();
    let frag = frag.display().to_string();
    let (mut child, rx) = spawn(tmp.path(), &["--no-sandbox", "--config", &frag]);
    let started = Instant::now();
    let build = loop {
        let below = descendants(child.id());
        if below.iter().any(|&p| comm(p) == "cc1") {
            break below;
        }
        if child.try_wait().unwrap().is_some() {
            let said: Vec<String> = rx.try_iter().collect();
            panic!("the run ended before its build compiled anything:\n{}", said.join("\n"));
        }
        assert!(started.elapsed() < Duration::from_secs(900), "no compiler started");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        build.iter().any(|&p| comm(p) == "make"),
        "{:?}",
        build.iter().map(|&p| comm(p)).collect::<Vec<_>>()
    );
    // The build directory (make's O=), to remove afterwards.
    let out_dir = build.iter().find_map(|&p| {
        let argv = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        argv.split(|b| *b == 0).find_map(|a| {
            a.strip_prefix(b"O=").map(|d| PathBuf::from(String::from_utf8_lossy(d).into_owned()))
        })
    });
    signal(&child.id().to_string(), "KILL");
    child.wait().unwrap();
    // make goes at once; a compile it had started may finish its one file, no more.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut left: Vec<u32> = build.clone();
    while Instant::now() < deadline {
        left.retain(|&p| running(p));
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let names: Vec<String> = left.iter().map(|&p| format!("{p} {}", comm(p))).collect();
    assert!(left.is_empty(), "still running 20 s after the run was killed: {names:?}");
    let out_dir = out_dir.expect("make was given O=");
    assert!(out_dir.starts_with(xtask::reftree::cache_root().join("build")), "{}", out_dir.display());
    std::fs::remove_dir_all(&out_dir).unwrap();
}
