//! The commands that measure (`eval`, `compare`, `run`) and what they share: probing a
//! real machine once, the measurement pipeline over a [`Plan`] (builds, boots,
//! comparisons, with `report.json` rewritten after each stage), the facts about the
//! environment, and writing the mails and the page.

pub mod b4check;
pub mod bisect;
pub mod compare;
pub mod eval;
pub mod ingest;
pub mod kernels;
pub mod lab;
pub mod run;

use crate::backend;
use crate::compare::Thresholds;
use crate::execute;
use crate::mail::Addr;
use crate::metal::{self, Home};
use crate::model::Target;
use crate::plan::{Ids, MachineRun, Plan, Spec};
use crate::progress::{self, Event};
use crate::render::{self, Envelope, Templates};
use crate::report::{self, EnvFacts, Report, StageTime};
use crate::rundir::{Opened, RunDir};
use anyhow::Result;
use std::path::PathBuf;
use std::time::Instant;

/// What a measuring command came to: the plan alone (`--dry-run`), or the measurement.
pub enum Ran {
    Planned(String),
    Measured(Box<Outcome>),
}

/// Where a command's results are, and what is still to do.
pub struct Outcome {
    pub dir: PathBuf,
    pub report: Report,
    /// The mail written (the reply, or the regression report).
    pub email: PathBuf,
    /// On a real machine: what to boot next before running the command again.
    pub pending: Option<String>,
}

/// What every measuring command starts from: `mmeval.yaml`, who signs, the templates.
pub struct Setup {
    pub cfg: crate::config::Config,
    pub from: Addr,
    pub templates: Templates,
}

impl Setup {
    pub fn load(from: Option<Addr>) -> Result<Setup> {
        let cfg = crate::config::config()?;
        let from = crate::config::tester(from, &cfg)?;
        Ok(Setup { cfg, from, templates: Templates::load()? })
    }
}

/// Asks the real machine of the spec, once, what it is; keeps its own kernel in the
/// directory while it runs ours.
pub fn machine(spec: &Spec, dir: &RunDir) -> Result<Option<MachineRun>> {
    let Some(t) = &spec.target else { return Ok(None) };
    let facts = metal::probe(t)?;
    let (home, taken) = Home::resolve(t, &facts, dir.home()?)?;
    if taken {
        dir.save_home(&home)?;
    }
    Ok(Some(MachineRun { target: t.clone(), home, now: facts }))
}

/// The content ids a plan's key needs, and the stopping rule of `--reps auto`.
pub fn ids(spec: &Spec, revision: Option<u32>, t: &crate::compare::Thresholds) -> Result<Ids> {
    let table = crate::arch::table()?;
    Ok(Ids {
        revision,
        stopping: if spec.auto_reps { Some(crate::sequential::design(t, spec.reps)?) } else { None },
        harness: crate::harness::source_id()?,
        config: crate::build::fragments_id(&spec.build)?,
        kvm_arches: table.rows().iter().filter(|a| table.kvm_possible(a)).map(|a| a.name.clone()).collect(),
    })
}

pub fn stage(timing: &mut Vec<StageTime>, name: &str, t: Instant) {
    timing.push(StageTime { stage: name.into(), seconds: t.elapsed().as_secs_f64(), detail: None });
}

/// `--dry-run`: the plan, with what an earlier run of the same plan finished.
pub fn dry_run(plan: &Plan, dir: &std::path::Path) -> Result<String> {
    let done = match RunDir::existing(dir) {
        Some(d) if d.is_plan(&plan.key) => d.records(plan)?.boots,
        _ => vec![],
    };
    Ok(plan.describe(&done))
}

/// Builds, boots and compares `plan` into `dir` and `report`: what eval, compare and
/// run share. Returns what the user must do next, if anything.
pub fn measure(
    plan: &Plan,
    machine: Option<&MachineRun>,
    spec: &crate::plan::Spec,
    dir: &RunDir,
    report: &mut Report,
    timing: &mut Vec<StageTime>,
    thresholds: &Thresholds,
) -> Result<Option<String>> {
    let _lock = dir.lock(spec.wait)?;
    match dir.open(&plan.key, spec.fresh)? {
        Opened::MovedAside(p) => {
            progress::say(&format!("the plan changed; the earlier evaluation is kept in {}", p.display()))
        }
        Opened::Fresh | Opened::Same => {}
    }
    dir.write_report(report)?;

    let t = Instant::now();
    let (builds, images) = execute::builds(plan)?;
    report.builds = builds;
    stage(timing, "build", t);
    dir.write_report(report)?;

    let t = Instant::now();
    let records = dir.records(plan)?;
    for (n, what) in [
        (records.unreadable, "unreadable lines"),
        (records.duplicates, "records of a boot recorded before"),
        (records.foreign, "records of boots this plan does not have"),
    ] {
        if n > 0 {
            progress::say(&format!("warning: records.jsonl has {n} {what}; they are left out"));
        }
    }
    if !records.boots.is_empty() {
        progress::emit(Event::Resumed { done: records.boots.len() });
    }
    let mut backend = backend::for_plan(plan, machine, &records.boots, dir)?;
    let boots = execute::boots(plan, dir, backend.as_mut(), &images, records.boots)?;
    stage(timing, "boots", t);
    timing.extend(boots.phases.iter().map(execute::PhaseTime::stage));

    let t = Instant::now();
    let mut done: Vec<_> = boots
        .done
        .into_iter()
        .filter(|s| execute::measurable(plan, &images, &s.record.provenance.arch))
        .collect();
    done.sort_by_key(|s| {
        let k = s.key();
        (k.arch, k.cpus, k.clock, k.rep, k.variant)
    });
    report.boots = done.iter().map(report::boot_entry).collect();
    report.machines = report::machines(&done, plan.mem_mib, &env_facts(plan, machine, &done));
    report.lab = report::lab_info(&plan.target, &done);
    report.comparisons = match &plan.stopping {
        None => report::comparisons(&done, &plan.info.variants, &plan.suite, thresholds),
        Some(d) => {
            let (stops, comparisons) =
                report::stopped_comparisons(d, &done, &plan.info.variants, &plan.suite);
            report.stops = stops;
            comparisons
        }
    };
    if !report.per_patch.is_empty() {
        report.steps = report::step_comparisons(&done, &plan.info.variants, &plan.suite, thresholds);
    }
    stage(timing, "compare", t);
    Ok(boots.pending)
}

/// What the report says about the emulators (`qemu --version`, run once per arch) or
/// the machine.
pub fn env_facts(plan: &Plan, machine: Option<&MachineRun>, done: &[crate::record::Stored]) -> EnvFacts {
    let mut env = EnvFacts::default();
    match (&plan.target, machine) {
        (Target::Qemu, _) => {
            for a in &plan.arches {
                env.qemu
                    .insert(a.name.clone(), (qemu_version(&a.qemu), format!("{} -cpu {}", a.machine, a.cpu)));
            }
        }
        // The lab's QEMU, as its jobs' logs say.
        (Target::Lava(..), _) => {
            for a in &plan.arches {
                let lab_qemu = done
                    .iter()
                    .filter(|s| s.record.provenance.arch == a.name)
                    .find_map(|s| s.record.lava.as_ref()?.qemu.clone())
                    .map(|q| format!("the lab's {q}"))
                    .unwrap_or_else(|| "the lab's QEMU".into());
                env.qemu.insert(a.name.clone(), (lab_qemu, format!("{} -cpu {}", a.machine, a.cpu)));
            }
        }
        (_, Some(m)) => env.machine = Some(m.home.facts.describe(&m.target)),
        (_, None) => {}
    }
    env
}

pub fn qemu_version(bin: &str) -> String {
    let Ok(sh) = xshell::Shell::new() else { return "QEMU".into() };
    let v = xshell::cmd!(sh, "{bin} --version").quiet().read().unwrap_or_default();
    v.lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(3))
        .map(|v| format!("QEMU {v}"))
        .unwrap_or_else(|| "QEMU".into())
}

/// Sender, date and a fresh Message-ID (the time and the report's content) for a mail.
pub fn envelope(from: &Addr, report: &Report) -> Result<Envelope> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    let id = git2::Oid::hash_object(git2::ObjectType::Blob, serde_json::to_string(report)?.as_bytes())?
        .to_string();
    let domain =
        from.email.rsplit_once('@').map(|(_, d)| d.to_string()).unwrap_or_else(|| "localhost".into());
    Ok(Envelope {
        from: from.clone(),
        date: render::rfc2822(now, 0),
        message_id: format!("{now}.{}.mmeval@{domain}", &id[..12]),
    })
}

/// The page and the final report.json, after the mail.
pub fn write_page_and_report(
    dir: &RunDir,
    report: &mut Report,
    templates: &Templates,
    thresholds: &Thresholds,
    t: Instant,
) -> Result<()> {
    dir.write_text(crate::rundir::PAGE, &render::html::render(report, templates, thresholds)?)?;
    report.timing.push(StageTime {
        stage: "render".into(),
        seconds: t.elapsed().as_secs_f64(),
        detail: None,
    });
    dir.write_report(report)
}

impl Outcome {
    /// Where the results are, what they say, and how long each stage took.
    pub fn print(&self, started: Instant) {
        use crate::compare::Verdict;
        let r = &self.report;
        println!("email:  {}", self.email.display());
        println!("report: {}", self.dir.join("report.json").display());
        println!("page:   {}", self.dir.join(crate::rundir::PAGE).display());
        if r.apply.is_some() {
            println!("result: the series does not apply");
        } else {
            println!(
                "result: {} builds, {}/{} boots ok; {} improvements, {} regressions, {} no change, {} too noisy, {} too few runs{}",
                r.builds.len(),
                r.boots.iter().filter(|b| b.status == crate::serial::BootStatus::Ok).count(),
                r.expected_boots(),
                r.count(Verdict::Improvement),
                r.count(Verdict::Regression),
                r.count(Verdict::NoSignificantChange),
                r.count(Verdict::TooNoisy),
                r.count(Verdict::TooFewRuns),
                match (r.releases.is_some(), r.all_passed()) {
                    (true, _) => "",
                    (false, true) => "; Tested-by given",
                    (false, false) => "; no Tested-by (not everything passed)",
                }
            );
        }
        if let Some(p) = &self.pending {
            println!("next:   {p}");
        }
        println!("time:");
        for s in &r.timing {
            let detail = s.detail.as_deref().map(|d| format!("  ({d})")).unwrap_or_default();
            let indent = if s.detail.is_some() { "  " } else { "" };
            println!("  {indent}{:<18} {:>8.1} s{detail}", s.stage, s.seconds);
        }
        println!("  {:<18} {:>8.1} s", "total", started.elapsed().as_secs_f64());
    }
}
