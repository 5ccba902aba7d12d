//! The executor: walks a [`Plan`]. Every build in plan order (a failed build is data:
//! its architecture is then not measured), then every boot not yet done, through the
//! plan's [`Backend`]; each finished boot is appended to `records.jsonl` before the
//! next one starts, so a crash or Ctrl-C loses nothing finished and a re-run resumes.
//! Failures of the thing under test are records; failures of the environment are
//! errors that stop the run.

use crate::backend::{Backend, Booted};
use crate::build::{self, BuildOutcome};
use crate::model::{ArchName, Variant};
use crate::plan::Plan;
use crate::progress::{self, BuildNote, Event};
use crate::record::Stored;
use crate::report::BuildEntry;
use crate::rundir::RunDir;
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::PathBuf;

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
}

/// Every boot of the plan not done yet (`done`: those of earlier runs), in order.
pub fn boots(
    plan: &Plan,
    dir: &RunDir,
    backend: &mut dyn Backend,
    images: &Images,
    mut done: Vec<Stored>,
) -> Result<Boots> {
    let expected = plan.expected();
    let remaining: Vec<_> = plan
        .remaining(&done)
        .into_iter()
        .filter(|s| measurable(plan, images, &s.key.arch))
        .cloned()
        .collect();
    let mut pending = None;
    for step in remaining {
        let kernel = &plan.kernels[step.kernel];
        // A kernel measured as found has no image of ours.
        let image = images.get(&(step.key.arch.clone(), kernel.variant.clone())).cloned().unwrap_or_default();
        let log = dir.boot_log(&step.key, &plan.target);
        let record = match backend.boot(&step, kernel, &image, &log)? {
            Booted::Record(r) => r,
            Booted::Pending(next) => {
                pending = Some(format!("{} of {expected} boots done; {next}", done.len()));
                break;
            }
            Booted::Stop(r, why) => {
                dir.append(&Stored { variant: step.key.variant.clone(), rep: step.key.rep, record: r })?;
                anyhow::bail!("{why}");
            }
        };
        let on = match &record.provenance.host {
            Some(h) => format!(" on {h} ({})", record.provenance.kernel),
            None => String::new(),
        };
        progress::emit(Event::Boot {
            n: done.len() + 1,
            of: expected,
            key: step.key.clone(),
            status: record.boot.status,
            results: record.boot.results.len(),
            failed_runs: record.boot.failures.len(),
            seconds: record.seconds,
            on,
        });
        let stored = Stored { variant: step.key.variant.clone(), rep: step.key.rep, record };
        dir.append(&stored)?;
        done.push(stored);
    }
    if pending.is_none() {
        pending = backend.finish()?;
    }
    Ok(Boots { done, pending })
}
