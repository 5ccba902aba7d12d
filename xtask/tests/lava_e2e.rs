//! Boots on a real LAVA lab: `cargo xtask lab up` (Debian's lava-server and
//! lava-dispatcher, a worker with two qemu devices, on 127.0.0.1), then `eval` of the
//! shipped gate series with `--lava` (x86_64, quick suite, both clocks, 4 boots of each
//! kernel), killed after its first jobs finished and run again; then `lab down`.
//! Checked: every boot is a LAVA job that the lab lists as Complete, no job was
//! submitted twice, the comparisons are the statistics of the records, and the
//! instruction-clock figures are those of a local QEMU run of the same kernels.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use xtask::record::Stored;

const SERIES: &str = "../patches/mprotect-folio-hint-gate.mbox";
const BOOTS: usize = 16;

fn xtask() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn eval_cmd(out: &Path, extra: &[&str]) -> Command {
    let mut c = xtask();
    c.args(["eval", SERIES, "--suite", "quick", "--reps", "4", "--arch", "x86_64", "--accel", "tcg"])
        .args(["--from", "CI Tester <ci@example.org>"])
        .args(extra)
        .arg("--out")
        .arg(out);
    c
}

fn run_dir(out: &Path) -> PathBuf {
    let shipped = xtask::reftree::project_root().join("patches/mprotect-folio-hint-gate.mbox");
    out.join(xtask::input::read_series(&shipped, Default::default()).unwrap().slug)
}

fn records(dir: &Path) -> Vec<Stored> {
    std::fs::read_to_string(dir.join("records.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The lab, up for this test: stopped at the end only when this test started it.
struct LabUp {
    url: String,
    token: String,
    started: bool,
}

impl LabUp {
    fn new() -> LabUp {
        let was_up = xtask::cmd::lab::state().is_some();
        let o = xtask().args(["lab", "up"]).output().unwrap();
        assert!(o.status.success(), "lab up: {}", String::from_utf8_lossy(&o.stderr));
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        let mut words = stdout.split_whitespace();
        let (url, token_file) = (words.next().unwrap().to_string(), words.next().unwrap().to_string());
        let token = xtask::lava::read_token(Path::new(&token_file)).unwrap();
        LabUp { url, token, started: !was_up }
    }

    fn lab(&self) -> xtask::lava::Lab {
        xtask::lava::Lab::new(&self.url, &self.token).unwrap()
    }
}

impl Drop for LabUp {
    fn drop(&mut self) {
        if !self.started {
            return;
        }
        let pids: Vec<u32> =
            xtask::cmd::lab::state().map(|s| s.services.iter().map(|s| s.1).collect()).unwrap_or_default();
        let o = xtask().args(["lab", "down"]).output().unwrap();
        assert!(o.status.success(), "lab down: {}", String::from_utf8_lossy(&o.stderr));
        for pid in pids {
            assert!(xtask::host::group_members(pid).is_empty(), "lab down left group {pid} running");
        }
    }
}

/// The one line `eval --lava` stops with, and no job submitted.
fn refused(out: &Path, args: &[&str]) -> String {
    let o = eval_cmd(out, args).output().unwrap();
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    let error: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(error.len(), 1, "{stderr}");
    assert!(!run_dir(out).join("lava-jobs.jsonl").exists());
    error[0].to_string()
}

#[test]
fn eval_on_a_real_lava_lab_resumes_without_submitting_twice() {
    let up = LabUp::new();
    let lab = up.lab();
    served_and_uploaded(&up);

    // A bad token and a lab that is not there: one line each, saying what to do.
    let scratch = tempfile::tempdir().unwrap();
    let bad = scratch.path().join("token");
    std::fs::write(&bad, "0123456789abcdef\n").unwrap();
    let bad = bad.to_str().unwrap();
    let e = refused(scratch.path(), &["--lava", &up.url, "--lava-token-file", bad]);
    assert!(e.contains("refused the token") && e.contains("--lava-token-file"), "{e}");
    let e = refused(
        scratch.path(),
        &["--lava", "http://127.0.0.1:9", "--lava-token-file", bad, "--lava-jobs", "1"],
    );
    assert!(e.contains("cannot reach the LAVA lab at http://127.0.0.1:9/") && e.contains("lab up"), "{e}");

    let before: BTreeSet<u64> = lab.job_ids().unwrap().into_iter().collect();
    let out = tempfile::tempdir().unwrap();
    let dir = run_dir(out.path());
    let lava = ["--clock", "both", "--lava", up.url.as_str(), "--lava-jobs", "2"];

    // Killed (SIGKILL, no chance to tidy up) once two jobs are recorded: the jobs
    // running then go on on the lab.
    let mut child = eval_cmd(out.path(), &lava)
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(900);
    for line in err.lines().map_while(Result::ok) {
        let done = line.contains("boot 2/16");
        seen.push(line);
        if done || Instant::now() > deadline {
            break;
        }
    }
    assert!(seen.iter().any(|l| l.contains("boot 2/16")), "{}", seen.join("\n"));
    // ... and while the next jobs are submitted and not finished.
    let submitted =
        || std::fs::read_to_string(dir.join("lava-jobs.jsonl")).unwrap_or_default().lines().count();
    let until = Instant::now() + Duration::from_secs(60);
    while submitted() <= records(&dir).len() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let submitted_at_kill = std::fs::read_to_string(dir.join("lava-jobs.jsonl")).unwrap().lines().count();
    assert!(
        records(&dir).len() >= 2 && submitted_at_kill > records(&dir).len(),
        "jobs in flight at the kill"
    );

    let o = eval_cmd(out.path(), &lava).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "resumed eval failed:\n{stderr}");
    assert!(stderr.contains("resuming"), "{stderr}");

    // Every boot a job, each job once, all Complete on the lab.
    let recs = records(&dir);
    assert_eq!(recs.len(), BOOTS);
    let ids: Vec<u64> =
        recs.iter().map(|s| s.record.lava.as_ref().expect("a job id in every record").id).collect();
    let unique: BTreeSet<u64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), BOOTS, "a job recorded twice: {ids:?}");
    let after: BTreeSet<u64> = lab.job_ids().unwrap().into_iter().collect();
    let new: BTreeSet<u64> = after.difference(&before).copied().collect();
    assert_eq!(new, unique, "the lab has jobs of this run that no record names (submitted twice?)");
    for id in &unique {
        let s = lab.job(*id).unwrap();
        assert_eq!((s.state.as_str(), s.health.as_str()), ("Finished", "Complete"), "job {id}");
    }
    let devices: BTreeSet<String> =
        recs.iter().filter_map(|s| s.record.lava.as_ref()?.device.clone()).collect();
    assert_eq!(devices, BTreeSet::from(["qemu01".to_string(), "qemu02".to_string()]));

    // The report's comparisons are the statistics of the records.
    let report: xtask::report::Report =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let suite = xtask::suite::load("quick").unwrap();
    let cfg = xtask::config::config().unwrap();
    // In the report's order (the sums of floating point numbers follow it).
    let mut sorted = recs.clone();
    sorted.sort_by_key(|s| {
        let k = s.key();
        (k.arch, k.cpus, k.clock, k.rep, k.variant)
    });
    let again = xtask::report::comparisons(&sorted, &report.plan.variants, &suite, &cfg.thresholds);
    // As JSON text both (serde_json reads a float back to within one ulp).
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let again: serde_json::Value = serde_json::from_str(&serde_json::to_string(&again).unwrap()).unwrap();
    assert_eq!(written["comparisons"], again);
    assert_eq!(report.comparisons.len(), 2 * suite.runs.len());
    let lab_info = report.lab.as_ref().unwrap();
    assert_eq!((lab_info.jobs, lab_info.devices.len(), lab_info.device_type.as_str()), (BOOTS, 2, "qemu"));
    let mail = std::fs::read_to_string(dir.join("reply.eml")).unwrap();
    let words = mail.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains(&format!("Lab: LAVA at {}, device type qemu: 16 jobs on qemu01, qemu02; the lab ran qemu-system-x86_64 -nodefaults", up.url)),
        "{mail}"
    );
    let page = std::fs::read_to_string(dir.join("report.html")).unwrap();
    for id in &unique {
        // minijinja's HTML escape writes / as &#x2f;.
        let href = format!("{}scheduler/job/{id}", up.url).replace('/', "&#x2f;");
        assert!(
            page.contains(&format!("<a href=\"{href}\">{id}</a>")),
            "job {id} linked: {}",
            page.lines().find(|l| l.contains("scheduler")).unwrap_or("no link")
        );
    }

    // The same kernels under QEMU here, instruction clock: the same figures.
    let local = tempfile::tempdir().unwrap();
    let o = eval_cmd(local.path(), &["--clock", "instructions"]).output().unwrap();
    assert!(o.status.success(), "local eval: {}", String::from_utf8_lossy(&o.stderr));
    let here = records(&run_dir(local.path()));
    let medians = |rs: &[Stored]| -> BTreeMap<(String, usize, String), f64> {
        rs.iter()
            .filter(|s| s.record.provenance.clock == xtask::model::Clock::Instructions)
            .flat_map(|s| {
                s.record.boot.results.iter().map(|r| ((s.variant.to_string(), s.rep, r.id.clone()), r.median))
            })
            .collect()
    };
    let (there, here) = (medians(&recs), medians(&here));
    assert_eq!(there.len(), 2 * 4 * suite.runs.len());
    assert_eq!(there.keys().collect::<Vec<_>>(), here.keys().collect::<Vec<_>>());
    let mut worst = 0.0f64;
    for (k, v) in &there {
        worst = worst.max(((v - here[k]) / here[k]).abs() * 100.0);
    }
    println!("lab vs here, instruction clock, per boot and workload: largest difference {worst:.4}%");
    assert!(worst <= 0.1, "lab and local instruction-clock figures differ by {worst:.3}%");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `run --lava` with the kernels served by us (`--lava-serve`) and by another server
/// from an upload directory (`--lava-upload`, Python's http.server here): the lab
/// fetches them over HTTP, and the uploaded copies are gone after the run.
fn served_and_uploaded(up: &LabUp) {
    let lab = up.lab();
    let run = |out: &Path, extra: &[&str]| {
        let o = xtask()
            .args(["run", "--arch", "x86_64", "--clock", "instructions", "--boots", "1", "--lava", &up.url])
            .args(extra)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let job: serde_json::Value = serde_json::from_str(
            std::fs::read_to_string(out.join("lava-jobs.jsonl")).unwrap().lines().next().unwrap(),
        )
        .unwrap();
        let id = job["job"].as_u64().unwrap();
        assert_eq!(lab.job(id).unwrap().health, "Complete");
        id
    };
    let out = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let id = run(out.path(), &["--lava-serve", &addr]);
    println!("served: job {id}");

    let www = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = Command::new("python3")
        .args(["-m", "http.server", "--bind", "127.0.0.1", &port.to_string(), "--directory"])
        .arg(www.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    let upload = format!("{}=http://127.0.0.1:{port}/", www.path().display());
    let out = tempfile::tempdir().unwrap();
    let id = run(out.path(), &["--lava-upload", &upload]);
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(std::fs::read_dir(www.path()).unwrap().count(), 0, "uploaded copies left behind");
    println!("uploaded: job {id}");
}
