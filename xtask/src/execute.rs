//! The executor: walks a [`Plan`]. Every build in plan order (a failed build is data:
//! its architecture is then not measured), then every boot not yet done, through the
//! plan's [`Backend`]; each finished boot is appended to `records.jsonl` before the
//! next one starts, so a crash or Ctrl-C loses nothing finished and a re-run resumes.
//! Failures of the thing under test are records; failures of the environment are
//! errors that stop the run.

use crate::backend::{Backend, Booted, SharedBoot};
use crate::build::{self, BuildOutcome};
use crate::model::{ArchName, Variant};
use crate::plan::{BootStep, Plan};
use crate::progress::{self, BuildNote, Event};
use crate::record::BootRecord;
use crate::record::Stored;
use crate::report::BuildEntry;
use crate::rundir::RunDir;
use crate::sequential::{self, CellKey};
use anyhow::Result;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// The image of every kernel that built, by (arch, variant).
pub type Images = BTreeMap<(ArchName, Variant), PathBuf>;

/// Every build of the plan.
pub fn builds(plan: &Plan) -> Result<(Vec<BuildEntry>, Images)> {
    let mut entries = Vec::new();
    let mut images = Images::new();
    for step in &plan.builds {
        let k = &plan.kernels[step.kernel];
        let arch = plan.arches.iter().find(|a| a.name == step.arch).expect("a plan's builds use its arches");
        let outcome = build::build(&k.tree, &k.commit, arch, &plan.build, &k.variant)?;
        let note = match &outcome {
            BuildOutcome::Built(a) if a.reused => BuildNote::Stored,
            BuildOutcome::Built(_) => BuildNote::Built,
            BuildOutcome::Failed(_) => BuildNote::Failed,
        };
        if let BuildOutcome::Built(a) = &outcome {
            images.insert((arch.name.clone(), k.variant.clone()), a.image.clone());
        }
        progress::emit(Event::Build { arch: arch.name.clone(), variant: k.variant.clone(), outcome: note });
        entries.push(build_entry(
            &arch.name,
            &k.variant,
            &k.commit,
            &outcome,
            plan.build.host_config.as_ref(),
        ));
    }
    Ok((entries, images))
}

/// The report's entry for a build.
fn build_entry(
    arch: &ArchName,
    variant: &Variant,
    commit: &str,
    outcome: &BuildOutcome,
    host_config: Option<&build::HostConfig>,
) -> BuildEntry {
    let mut e = BuildEntry {
        arch: arch.clone(),
        variant: variant.clone(),
        commit: commit.to_string(),
        ok: false,
        compiler: String::new(),
        fragments: vec![],
        config_hash: String::new(),
        seconds: 0.0,
        reused: false,
        step: None,
        errors: vec![],
        log: String::new(),
        machine_config: host_config.map(|h| h.source.clone()),
        preempt: None,
        sandboxed: None,
    };
    match outcome {
        BuildOutcome::Built(a) => {
            e.ok = true;
            e.compiler = a.meta.compiler.clone();
            // A stored build may have been made for another machine with the same
            // config: name this one.
            e.fragments = match host_config {
                Some(h) => std::iter::once(format!("config of {}", h.source))
                    .chain(a.meta.fragments.iter().skip(1).cloned())
                    .collect(),
                None => a.meta.fragments.clone(),
            };
            e.config_hash = a.meta.config_hash.clone();
            e.seconds = if a.reused { 0.0 } else { a.meta.seconds };
            e.reused = a.reused;
            e.log = a.dir.join("build.log").display().to_string();
            e.preempt = a.preempt();
            e.sandboxed = a.meta.sandboxed;
        }
        BuildOutcome::Failed(f) => {
            e.step = Some(f.step.clone());
            e.errors = f.errors.clone();
            e.log = f.log.display().to_string();
            e.sandboxed = Some(f.sandboxed);
        }
    }
    e
}

/// Whether every kernel of the plan built for `arch` (else nothing there is compared).
pub fn measurable(plan: &Plan, images: &Images, arch: &ArchName) -> bool {
    plan.as_found || plan.kernels.iter().all(|k| images.contains_key(&(arch.clone(), k.variant.clone())))
}

/// What the boots came to.
pub struct Boots {
    /// Every finished boot of the plan, the earlier runs' first.
    pub done: Vec<Stored>,
    /// What the user must do before the plan can go on (or after it ended).
    pub pending: Option<String>,
    /// How each stretch of boots used the machine, for the timing breakdown.
    pub phases: Vec<PhaseTime>,
}

/// One stretch of boots: side by side (`jobs` at a time) or alone.
#[derive(Debug, Clone)]
pub struct PhaseTime {
    /// Jobs of a LAVA lab (queued `jobs` at a time) rather than boots here.
    pub lab: bool,
    pub side_by_side: bool,
    pub jobs: usize,
    pub boots: usize,
    /// From the first boot's start to the last one's end.
    pub seconds: f64,
    /// The boots' own seconds, summed: `jobs * seconds - busy` is idle slot time.
    pub busy: f64,
}

impl PhaseTime {
    pub fn stage(&self) -> crate::report::StageTime {
        let idle = (self.jobs as f64 * self.seconds - self.busy).max(0.0);
        crate::report::StageTime {
            stage: match (self.lab, self.side_by_side) {
                (true, _) => "lab jobs".into(),
                (false, true) => "boots side by side".into(),
                (false, false) => "boots alone".into(),
            },
            seconds: self.seconds,
            detail: Some(format!(
                "{} boots, {} at a time, {:.1} s of boots, {:.1} s idle",
                self.boots, self.jobs, self.busy, idle
            )),
        }
    }
}

/// Every boot of the plan not done yet (`done`: those of earlier runs), in order:
/// each stretch of side-by-side boots on `plan.boot_jobs` threads when the backend can,
/// every other boot alone.
pub fn boots(
    plan: &Plan,
    dir: &RunDir,
    backend: &mut dyn Backend,
    images: &Images,
    mut done: Vec<Stored>,
) -> Result<Boots> {
    let remaining: Vec<BootStep> = plan
        .remaining(&done)
        .into_iter()
        .filter(|s| measurable(plan, images, &s.key.arch))
        .cloned()
        .collect();
    let mut pending = None;
    let mut phases = Vec::new();
    let wanted = Wanted::new(plan, &done);
    for phase in remaining.chunk_by(|a, b| a.side_by_side == b.side_by_side) {
        let started = Instant::now();
        let before = done.len();
        let mut jobs = 1;
        if phase[0].side_by_side && plan.boot_jobs > 1 && phase.len() > 1 {
            let with_images: Vec<(&BootStep, PathBuf)> =
                phase.iter().map(|s| (s, image_of(plan, images, s))).collect();
            let refs: Vec<(&BootStep, &std::path::Path)> =
                with_images.iter().map(|(s, i)| (*s, i.as_path())).collect();
            if let Some(shared) = backend.side_by_side(&refs)? {
                jobs = plan.boot_jobs.min(phase.len());
                let r = run_side_by_side(plan, dir, shared.as_ref(), &with_images, jobs, &wanted, &mut done);
                phases.push(phase_time(plan, phase, jobs, started, &done[before..]));
                r?;
                continue;
            }
        }
        for step in phase {
            if !wanted.wants(step) {
                continue;
            }
            let kernel = &plan.kernels[step.kernel];
            let image = image_of(plan, images, step);
            let log = dir.boot_log(&step.key, &plan.target);
            let record = match backend.boot(step, kernel, &image, &log)? {
                Booted::Record(r) => r,
                Booted::Pending(next) => {
                    pending = Some(format!("{} of {} boots done; {next}", done.len(), plan.expected()));
                    break;
                }
                Booted::Stop(r, why) => {
                    dir.append(&Stored { variant: step.key.variant.clone(), rep: step.key.rep, record: r })?;
                    anyhow::bail!("{why}");
                }
            };
            keep(plan, dir, step, record, &mut done)?;
            wanted.update(&done);
        }
        phases.push(phase_time(plan, phase, jobs, started, &done[before..]));
        if pending.is_some() {
            break;
        }
    }
    if pending.is_none() {
        pending = backend.finish()?;
    }
    Ok(Boots { done, pending, phases })
}

fn phase_time(plan: &Plan, phase: &[BootStep], jobs: usize, started: Instant, done: &[Stored]) -> PhaseTime {
    PhaseTime {
        lab: plan.lab.is_some(),
        side_by_side: phase[0].side_by_side,
        jobs,
        boots: done.len(),
        seconds: started.elapsed().as_secs_f64(),
        busy: done.iter().map(|s| s.record.seconds).sum(),
    }
}

/// A kernel measured as found has no image of ours.
fn image_of(plan: &Plan, images: &Images, step: &BootStep) -> PathBuf {
    let kernel = &plan.kernels[step.kernel];
    images.get(&(step.key.arch.clone(), kernel.variant.clone())).cloned().unwrap_or_default()
}

/// A finished boot: appended to `records.jsonl`, then said (a boot the user saw
/// finish is on disk), kept.
fn keep(
    plan: &Plan,
    dir: &RunDir,
    step: &BootStep,
    record: BootRecord,
    done: &mut Vec<Stored>,
) -> Result<()> {
    let on = match &record.provenance.host {
        Some(h) => format!(" on {h} ({})", record.provenance.kernel),
        None => String::new(),
    };
    let event = Event::Boot {
        n: done.len() + 1,
        of: plan.expected(),
        key: step.key.clone(),
        status: record.boot.status,
        results: record.boot.results.len(),
        failed_runs: record.boot.failures.len(),
        seconds: record.seconds,
        on,
    };
    let stored = Stored { variant: step.key.variant.clone(), rep: step.key.rep, record };
    dir.append(&stored)?;
    progress::emit(event);
    done.push(stored);
    Ok(())
}

/// `steps` on `jobs` threads, each boot taken in plan order as a thread comes free;
/// records are kept on this thread as the boots end. A fault (ours, or a record that
/// cannot be written) stops new boots; those running end and are kept; then the
/// first fault is the result.
fn run_side_by_side(
    plan: &Plan,
    dir: &RunDir,
    shared: &dyn SharedBoot,
    steps: &[(&BootStep, PathBuf)],
    jobs: usize,
    wanted: &Wanted,
    done: &mut Vec<Stored>,
) -> Result<()> {
    let queue = Mutex::new(steps.iter().map(|(s, image)| (*s, image)).collect::<VecDeque<_>>());
    let stop = AtomicBool::new(false);
    let (tx, rx) = std::sync::mpsc::channel::<(&BootStep, Result<BootRecord>)>();
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let (tx, queue, stop) = (tx.clone(), &queue, &stop);
            // QEMU's parent-death signal follows this thread: it lives until its boot ends.
            scope.spawn(move || loop {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let next = {
                    let mut q = queue.lock().unwrap();
                    std::iter::from_fn(|| q.pop_front()).find(|(s, _)| wanted.wants(s))
                };
                let Some((step, image)) = next else { break };
                let log = dir.boot_log(&step.key, &plan.target);
                let r = shared.boot(step, &plan.kernels[step.kernel], image, &log);
                if r.is_err() {
                    stop.store(true, Ordering::SeqCst);
                }
                if tx.send((step, r)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut fault = None;
        for (step, r) in rx {
            let kept = r.and_then(|record| keep(plan, dir, step, record, done));
            wanted.update(done);
            if let Err(e) = kept {
                stop.store(true, Ordering::SeqCst);
                fault.get_or_insert(e);
            }
        }
        fault.map_or(Ok(()), Err)
    })
}

/// Which boots are still wanted: all of them, or under `--reps auto` those of cells
/// that have not stopped. Shared by the threads that boot side by side.
pub struct Wanted<'p> {
    plan: &'p Plan,
    stopped: Mutex<std::collections::BTreeSet<CellKey>>,
}

impl<'p> Wanted<'p> {
    pub fn new(plan: &'p Plan, done: &[Stored]) -> Wanted<'p> {
        let w = Wanted { plan, stopped: Mutex::new(Default::default()) };
        w.update(done);
        w
    }

    pub fn wants(&self, step: &BootStep) -> bool {
        let k = &step.key;
        !self.stopped.lock().unwrap().contains(&(k.arch.clone(), k.cpus, k.clock))
    }

    /// Looks again at the cells, with every boot finished so far.
    pub fn update(&self, done: &[Stored]) {
        if let Some(d) = &self.plan.stopping {
            let stops = sequential::cell_stops(d, &self.plan.info.variants, &self.plan.suite, done);
            *self.stopped.lock().unwrap() = stops.into_keys().collect();
        }
    }
}
