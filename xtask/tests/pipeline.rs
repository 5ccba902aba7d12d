//! The executor, resume, move-aside and `--fresh` in seconds: a real plan and a real
//! evaluation directory, with a fake backend that answers each boot with a recorded
//! serial log of a real QEMU boot (tests/data/serial/) instead of booting.

mod common;

use std::path::{Path, PathBuf};
use xtask::backend::{Backend, Booted, SharedBoot};
use xtask::model::{Accel, Clock, Target};
use xtask::plan::{self, AccelChoice, BootStep, Ids, Kernel, Plan, Spec};
use xtask::record::{BootRecord, Provenance, Stored};
use xtask::rundir::{Opened, RunDir};
use xtask::{execute, serial, suite, tree};

/// Answers every boot with the recorded log `log`, counting what it was asked; fails
/// (as a tool fault) at boot number `crash_at` or asks the user to act at `pending_at`.
struct Replay {
    log: String,
    asked: Vec<String>,
    crash_at: Option<usize>,
    pending_at: Option<usize>,
    finished: bool,
    /// Boots side by side, when set.
    pool: Option<Pool>,
}

impl Replay {
    fn new(log: &str) -> Replay {
        let text = std::fs::read_to_string(common::data(&format!("serial/{log}"))).unwrap();
        Replay { log: text, asked: vec![], crash_at: None, pending_at: None, finished: false, pool: None }
    }
}

/// The side-by-side booter of a Replay: how many boots ran at once, at most, and a
/// boot (by key) that fails as a tool fault.
#[derive(Default)]
struct Pool {
    log: String,
    running: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
    asked: std::sync::Mutex<Vec<String>>,
    crash: Option<String>,
}

impl SharedBoot for &Pool {
    fn boot(&self, step: &BootStep, _: &Kernel, _: &Path, log: &Path) -> anyhow::Result<BootRecord> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        self.asked.lock().unwrap().push(step.key.to_string());
        std::thread::sleep(std::time::Duration::from_millis(40));
        self.running.fetch_sub(1, SeqCst);
        if self.crash.as_deref() == Some(&step.key.to_string()) {
            anyhow::bail!("the host ran out of something");
        }
        replayed(&self.log, step, log)
    }
}

fn replayed(text: &str, step: &BootStep, log: &Path) -> anyhow::Result<BootRecord> {
    std::fs::create_dir_all(log.parent().unwrap())?;
    std::fs::write(log, text)?;
    let boot = serial::parse(text, false);
    let provenance = Provenance {
        arch: step.key.arch.clone(),
        accel: Accel::Tcg,
        clock: step.key.clock,
        cpu_model: "QEMU TCG q35 max".into(),
        vcpus: step.key.cpus,
        kernel: "7.2.13".into(),
        host: None,
    };
    Ok(BootRecord {
        provenance,
        boot,
        seconds: 1.0,
        log: log.into(),
        qemu_exit: Some(0),
        boot_id: None,
        lava: None,
    })
}

impl Backend for Replay {
    fn boot(&mut self, step: &BootStep, kernel: &Kernel, image: &Path, log: &Path) -> anyhow::Result<Booted> {
        self.asked.push(format!("{} {}", step.key, image.display()));
        let n = self.asked.len();
        if self.crash_at == Some(n) {
            anyhow::bail!("the host ran out of something");
        }
        if self.pending_at == Some(n) {
            return Ok(Booted::Pending(format!("boot {} by hand", kernel.variant)));
        }
        if let Some(p) = &self.pool {
            assert_eq!(
                p.running.load(std::sync::atomic::Ordering::SeqCst),
                0,
                "{} beside another boot",
                step.key
            );
        }
        Ok(Booted::Record(replayed(&self.log, step, log)?))
    }

    fn side_by_side<'s>(
        &'s mut self,
        _: &[(&BootStep, &Path)],
    ) -> anyhow::Result<Option<Box<dyn SharedBoot + 's>>> {
        Ok(self.pool.as_ref().map(|p| Box::new(p) as Box<dyn SharedBoot + 's>))
    }

    fn finish(&mut self) -> anyhow::Result<Option<String>> {
        self.finished = true;
        Ok(None)
    }
}

fn spec(reps: usize) -> Spec {
    Spec {
        arches: xtask::arch::parse_list("x86_64").unwrap(),
        cpus: vec![1],
        reps,
        auto_reps: false,
        suite: suite::load("quick").unwrap(),
        clocks: vec![Clock::Wall, Clock::Instructions],
        accel: AccelChoice::Tcg,
        mem_mib: 1024,
        build: Default::default(),
        from: None,
        out_root: PathBuf::new(),
        fresh: false,
        wait: false,
        boot_jobs: 1,
        target: None,
        cpus_given: false,
        boot_timeout: std::time::Duration::from_secs(60),
        lab: None,
    }
}

fn the_plan(reps: usize, patched_commit: &str) -> Plan {
    plan_with(reps, patched_commit, None)
}

fn plan_with(reps: usize, patched_commit: &str, stopping: Option<xtask::sequential::Design>) -> Plan {
    let t = tree::TreeHandle { repo_path: "/nowhere".into(), key: "k".into(), label: "toy".into() };
    let kernels = vec![
        Kernel { variant: "baseline".into(), tree: t.clone(), commit: "a".repeat(40), release: None },
        Kernel { variant: "patched".into(), tree: t, commit: patched_commit.into(), release: None },
    ];
    let ids =
        Ids { revision: Some(1), stopping, harness: "h".into(), config: "c".into(), kvm_arches: vec![] };
    plan::plan(&spec(reps), kernels, ids)
}

fn images(p: &Plan) -> execute::Images {
    p.kernels
        .iter()
        .map(|k| (("x86_64".into(), k.variant.clone()), PathBuf::from(format!("/img/{}", k.variant))))
        .collect()
}

fn records_lines(dir: &RunDir) -> usize {
    std::fs::read_to_string(dir.file("records.jsonl")).unwrap_or_default().lines().count()
}

/// One run: open the directory for the plan, read what is done, boot the rest.
fn run(
    p: &Plan,
    dir: &RunDir,
    backend: &mut Replay,
    fresh: bool,
) -> (Opened, anyhow::Result<execute::Boots>) {
    let opened = dir.open(&p.key, fresh).unwrap();
    let done = dir.records(p).unwrap().boots;
    (opened, execute::boots(p, dir, backend, &images(p), done))
}

#[test]
fn every_boot_in_plan_order_each_recorded_as_it_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = RunDir::create(tmp.path().join("e")).unwrap();
    let p = the_plan(2, &"b".repeat(40));
    let mut fake = Replay::new("normal-x86_64.log");
    let (opened, boots) = run(&p, &dir, &mut fake, false);
    let boots = boots.unwrap();
    assert_eq!(opened, Opened::Same);
    assert_eq!(
        fake.asked,
        [
            "x86_64 baseline 1cpu instructions rep 1 /img/baseline",
            "x86_64 patched 1cpu instructions rep 1 /img/patched",
            "x86_64 patched 1cpu instructions rep 2 /img/patched",
            "x86_64 baseline 1cpu instructions rep 2 /img/baseline",
            "x86_64 baseline 1cpu wall rep 1 /img/baseline",
            "x86_64 patched 1cpu wall rep 1 /img/patched",
            "x86_64 patched 1cpu wall rep 2 /img/patched",
            "x86_64 baseline 1cpu wall rep 2 /img/baseline",
        ]
    );
    assert!(fake.finished);
    assert_eq!((boots.done.len(), records_lines(&dir), boots.pending), (8, 8, None));
    // The serial log of each boot is where the directory says.
    assert!(dir.file("boots/x86_64-1cpu-instructions-patched-2.log").is_file());
    // The statistics see every recorded sample: 2 boots a side per cell.
    let cs = xtask::report::comparisons(&boots.done, &p.info.variants, &p.suite, &Default::default());
    assert_eq!(cs.len(), 2 * p.suite.runs.len());
    assert!(cs.iter().all(|c| c.base.n == 2 && c.new.n == 2), "{cs:?}");
}

#[test]
fn a_crash_keeps_the_finished_boots_and_a_rerun_does_only_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = RunDir::create(tmp.path().join("e")).unwrap();
    let p = the_plan(3, &"b".repeat(40));
    let mut first = Replay::new("normal-x86_64.log");
    first.crash_at = Some(5);
    let (_, r) = run(&p, &dir, &mut first, false);
    assert!(r.is_err());
    assert_eq!(records_lines(&dir), 4, "the four finished boots are kept");
    let mut second = Replay::new("normal-x86_64.log");
    let (opened, r) = run(&p, &dir, &mut second, false);
    assert_eq!(opened, Opened::Same);
    let boots = r.unwrap();
    assert_eq!(second.asked.len(), p.expected() - 4, "{:?}", second.asked);
    assert_eq!(second.asked[0], format!("{} /img/{}", p.boots[4].key, p.boots[4].key.variant));
    assert_eq!((boots.done.len(), records_lines(&dir)), (12, 12));
    // A third run has nothing to do.
    let mut third = Replay::new("normal-x86_64.log");
    let (_, r) = run(&p, &dir, &mut third, false);
    assert!(third.asked.is_empty() && r.unwrap().done.len() == 12);
}

#[test]
fn a_changed_plan_moves_the_earlier_evaluation_aside_and_fresh_starts_over() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = RunDir::create(tmp.path().join("e")).unwrap();
    let p = the_plan(1, &"b".repeat(40));
    let (_, r) = run(&p, &dir, &mut Replay::new("normal-x86_64.log"), false);
    r.unwrap();
    std::fs::write(dir.file("report.json"), "{}").unwrap();
    // Another patched commit: another plan.
    let q = the_plan(1, &"c".repeat(40));
    let mut fake = Replay::new("normal-x86_64.log");
    let (opened, r) = run(&q, &dir, &mut fake, false);
    let Opened::MovedAside(aside) = opened else { panic!("{opened:?}") };
    assert!(aside.file_name().unwrap().to_string_lossy().starts_with("previous-"));
    for f in ["plan.json", "records.jsonl", "report.json", "boots"] {
        assert!(aside.join(f).exists(), "{f} not moved aside");
    }
    assert_eq!(std::fs::read_to_string(aside.join("records.jsonl")).unwrap().lines().count(), 4);
    assert_eq!(fake.asked.len(), 4, "the new plan boots everything");
    assert_eq!(r.unwrap().done.len(), 4);
    // --fresh: the same plan's boots are discarded and done again.
    let mut again = Replay::new("normal-x86_64.log");
    let (opened, r) = run(&q, &dir, &mut again, true);
    assert_eq!(opened, Opened::Fresh);
    assert_eq!((again.asked.len(), r.unwrap().done.len(), records_lines(&dir)), (4, 4, 4));
}

#[test]
fn bad_duplicate_and_foreign_records_are_left_out_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = RunDir::create(tmp.path().join("e")).unwrap();
    let p = the_plan(2, &"b".repeat(40));
    let mut fake = Replay::new("normal-x86_64.log");
    fake.crash_at = Some(3);
    let (_, _) = run(&p, &dir, &mut fake, false);
    let path = dir.file("records.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let first = text.lines().next().unwrap().to_string();
    let mut foreign: Stored = serde_json::from_str(&first).unwrap();
    foreign.rep = 7;
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(format!("{first}\n").as_bytes()); // a duplicate
    bytes.extend_from_slice(b"{\"variant\": \xff broken\n"); // a bad byte
    bytes.extend_from_slice(format!("{}\n", serde_json::to_string(&foreign).unwrap()).as_bytes());
    bytes.extend_from_slice(b"{\"variant\":\"baseline\",\"rep\":0,\"rec"); // a crash mid-write
    std::fs::write(&path, bytes).unwrap();
    let r = dir.records(&p).unwrap();
    assert_eq!((r.boots.len(), r.duplicates, r.unreadable, r.foreign), (2, 1, 2, 1));
    // Only the missing boots are done again, each once.
    let mut second = Replay::new("normal-x86_64.log");
    let done = execute::boots(&p, &dir, &mut second, &images(&p), r.boots).unwrap().done;
    assert_eq!((second.asked.len(), done.len()), (6, 8));
}

#[test]
fn one_run_at_a_time_and_a_dead_runs_lock_is_taken() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = RunDir::create(tmp.path().join("e")).unwrap();
    let held = dir.lock(false).unwrap();
    let e = dir.lock(false).unwrap_err().to_string();
    assert!(
        e.contains("another run of this evaluation is going on (pid ")
            && e.contains(&std::process::id().to_string()),
        "{e}"
    );
    drop(held);
    // The holder is gone (as when a run is killed): the next run takes the directory.
    let again = dir.lock(false).unwrap();

    // --wait: the second run waits for the first to end, then goes on.
    let released = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let waiter = {
        let (path, released) = (dir.path().to_path_buf(), released.clone());
        std::thread::spawn(move || {
            let _l = RunDir::at(path).lock(true).unwrap();
            released.load(std::sync::atomic::Ordering::SeqCst)
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    released.store(true, std::sync::atomic::Ordering::SeqCst);
    drop(again);
    assert!(waiter.join().unwrap(), "the waiting run took the lock only after the holder let it go");
}

#[test]
fn a_machine_that_needs_the_user_stops_with_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = RunDir::create(tmp.path().join("e")).unwrap();
    let p = the_plan(2, &"b".repeat(40));
    let mut fake = Replay::new("normal-x86_64.log");
    fake.pending_at = Some(3);
    let (_, r) = run(&p, &dir, &mut fake, false);
    let b = r.unwrap();
    assert_eq!(b.pending.as_deref(), Some("2 of 8 boots done; boot patched by hand"));
    assert!(!fake.finished, "nothing is put back while boots are pending");
    assert_eq!(records_lines(&dir), 2);
}

#[test]
fn a_failed_boot_is_a_record_and_an_arch_whose_build_failed_is_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = RunDir::create(tmp.path().join("e")).unwrap();
    let p = the_plan(1, &"b".repeat(40));
    let mut fake = Replay::new("panic-mid-suite.log");
    let (_, r) = run(&p, &dir, &mut fake, false);
    let b = r.unwrap();
    assert!(b.done.iter().all(|s| s.record.boot.status == serial::BootStatus::Panic));
    assert_eq!(b.done.len(), 4);
    // No patched image for x86_64: nothing there is booted.
    let mut only_base = images(&p);
    only_base.remove(&("x86_64".into(), "patched".into()));
    let mut fake = Replay::new("normal-x86_64.log");
    let q = the_plan(1, &"d".repeat(40));
    dir.open(&q.key, false).unwrap();
    let done = execute::boots(&q, &dir, &mut fake, &only_base, vec![]).unwrap().done;
    assert!(fake.asked.is_empty() && done.is_empty());
    assert_eq!(q.target, Target::Qemu);
}

#[test]
fn instruction_clock_boots_run_side_by_side_and_wall_clock_boots_alone() {
    use std::sync::atomic::Ordering::SeqCst;
    let tmp = tempfile::tempdir().unwrap();
    let dir = RunDir::create(tmp.path().join("e")).unwrap();
    let mut p = the_plan(3, &"b".repeat(40));
    p.boot_jobs = 2;
    let mut fake = Replay::new("normal-x86_64.log");
    let log = fake.log.clone();
    // A fault of ours in the fourth instruction-clock boot: the pool stops taking
    // boots, the one running beside it ends and is kept, and the run stops.
    fake.pool =
        Some(Pool { log: log.clone(), crash: Some(p.boots[3].key.to_string()), ..Default::default() });
    let (_, r) = run(&p, &dir, &mut fake, false);
    let e = r.err().expect("the fault stops the run").to_string();
    assert!(e.contains("ran out of something"), "{e}");
    let pool = fake.pool.take().unwrap();
    assert_eq!(pool.most.load(SeqCst), 2, "two at a time");
    assert!(fake.asked.is_empty(), "no wall-clock boot after a fault: {:?}", fake.asked);
    let kept = records_lines(&dir);
    // Boots 1-3 end before the fault; one more may have started beside it.
    assert!((3..=5).contains(&kept), "{kept} records");
    assert_eq!(pool.asked.lock().unwrap().len(), kept + 1);

    let mut again = Replay::new("normal-x86_64.log");
    again.pool = Some(Pool { log, ..Default::default() });
    let (_, r) = run(&p, &dir, &mut again, false);
    let b = r.unwrap();
    assert_eq!((b.done.len(), records_lines(&dir)), (12, 12));
    let pool = again.pool.as_ref().unwrap();
    assert_eq!(pool.asked.lock().unwrap().len(), 6 - kept, "only what was not done");
    assert!(pool.asked.lock().unwrap().iter().all(|k| k.contains("instructions")));
    // The wall clock alone, in ABBA order, after the pool ended.
    assert_eq!(again.asked.len(), 6);
    assert!(again.asked.iter().all(|k| k.contains(" wall ")), "{:?}", again.asked);
    let phases: Vec<(bool, usize, usize)> =
        b.phases.iter().map(|t| (t.side_by_side, t.jobs, t.boots)).collect();
    assert_eq!(phases, [(true, 2, 6 - kept), (false, 1, 6)]);
}

#[test]
fn reps_auto_stops_each_cell_when_every_workload_is_decided() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = RunDir::create(tmp.path().join("e")).unwrap();
    let design = xtask::sequential::design(&Default::default(), 15).unwrap();
    assert_eq!(design.looks[0], 5);
    let p = plan_with(15, &"b".repeat(40), Some(design.clone()));
    assert!(p.key.stopping.as_deref().is_some_and(|s| s.contains("Pocock")), "{:?}", p.key.stopping);
    // The same recorded boot for both kernels: every workload equal, decided at the
    // first look, in both cells.
    let mut fake = Replay::new("normal-x86_64.log");
    let (_, r) = run(&p, &dir, &mut fake, false);
    let b = r.unwrap();
    assert_eq!(fake.asked.len(), 2 * 2 * 5, "{:?}", fake.asked);
    assert_eq!(records_lines(&dir), 20);
    let stops = xtask::sequential::cell_stops(&design, &p.info.variants, &p.suite, &b.done);
    assert_eq!(stops.len(), 2);
    for stop in stops.values() {
        assert_eq!((stop.look.n, stop.undecided.len()), (5, 0));
        assert_eq!(stop.why(), "stopped after 5 boots of each kernel: every workload decided");
    }
    // A re-run has nothing left to do.
    let mut again = Replay::new("normal-x86_64.log");
    let (_, r) = run(&p, &dir, &mut again, false);
    assert!(again.asked.is_empty() && r.unwrap().done.len() == 20);
    // Different kernels with the same budget but no rule: the fixed plan is another plan.
    assert_ne!(the_plan(15, &"b".repeat(40)).key, p.key);
}
