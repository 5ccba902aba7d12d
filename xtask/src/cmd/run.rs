//! `cargo xtask run`: the harness alone, for the variation of one kernel (an A/A
//! check). Under QEMU the tree's kernel is built and booted `--boots` times per
//! (arch, vCPUs, clock) through the same plan and executor as `eval`; with `--metal` or
//! `--host` the kernel the machine runs now is measured as it is. Records go to
//! `records.jsonl` in the output directory as each run ends; a re-run resumes.

use super::ids;
use crate::execute;
use crate::metal;
use crate::plan::{self, Kernel, MachineRun, Spec};
use crate::progress;
use crate::record::BootRecord;
use crate::rundir::RunDir;
use crate::tree::TreeHandle;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub struct RunOptions {
    pub tree: TreeHandle,
    pub commit: String,
    pub spec: Spec,
    pub out: PathBuf,
    pub dry_run: bool,
}

pub enum RunResult {
    Plan(String),
    Done(Vec<BootRecord>),
}

pub fn run(o: &RunOptions) -> Result<RunResult> {
    let dir = RunDir::at(o.out.clone());
    let (plan, machine) = match &o.spec.target {
        None => {
            let kernel = Kernel {
                variant: "kernel".into(),
                tree: o.tree.clone(),
                commit: o.commit.clone(),
                release: crate::tree::release_of(&o.tree, &o.commit),
            };
            (plan::plan(&o.spec, vec![kernel], ids(&o.spec, None, &Default::default())?), None)
        }
        Some(t) => {
            let facts = metal::probe(t)?;
            let table = crate::arch::table()?;
            let arch = table
                .get(&facts.arch)
                .with_context(|| {
                    format!("{} is {}: no such row in linux-ref/arches.yaml", t.describe(), facts.arch)
                })?
                .clone();
            let home = metal::Home {
                target: t.plan_name(),
                facts: facts.clone(),
                config_source: String::new(),
                config: String::new(),
                modules: String::new(),
            };
            let m = MachineRun { target: t.clone(), home, now: facts };
            (plan::as_found(&o.spec, &m, &arch, ids(&o.spec, None, &Default::default())?), Some(m))
        }
    };
    if o.dry_run {
        return Ok(RunResult::Plan(super::dry_run(&plan, dir.path())?));
    }
    let _lock = dir.lock(o.spec.wait)?;
    dir.open(&plan.key, o.spec.fresh)?;
    let (_, images) = execute::builds(&plan)?;
    let records = dir.records(&plan)?;
    if !records.boots.is_empty() {
        progress::emit(progress::Event::Resumed { done: records.boots.len() });
    }
    let mut backend = crate::backend::for_plan(&plan, machine.as_ref(), &records.boots, &dir)?;
    let boots = execute::boots(&plan, &dir, backend.as_mut(), &images, records.boots)?;
    Ok(RunResult::Done(boots.done.into_iter().map(|s| s.record).collect()))
}

/// Every failed run and boot with its log lines, the variation table, where the records are.
pub fn summary(records: &[BootRecord], out: &Path) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    for r in records {
        for f in &r.boot.failures {
            let _ = writeln!(o, "failed run: {} {}: {}", r.provenance.arch, f.id, f.reason);
        }
        if r.boot.status != crate::serial::BootStatus::Ok {
            let _ = writeln!(o, "boot {:?} ({}):", r.boot.status, r.log.display());
            for l in &r.boot.excerpt {
                let _ = writeln!(o, "    {l}");
            }
        }
    }
    o.push_str(&variation_table(records));
    let _ = writeln!(o, "records: {}", records_path(out).display());
    o
}

/// Where `run` writes by default.
pub fn default_out(suite: &str) -> PathBuf {
    crate::reftree::project_root().join("target/run").join(suite)
}

/// The records file of an output directory.
pub fn records_path(out: &Path) -> PathBuf {
    RunDir::at(out.to_path_buf()).records_path()
}

/// Boot-to-boot variation per workload: n boots, median of the per-boot medians, and
/// the coefficient of variation across boots (the A/A table). Pure.
pub fn variation_table(records: &[BootRecord]) -> String {
    use crate::model::{Accel, Clock};
    /// (arch, accel, clock, vCPUs, workload) -> (per-boot medians, failed boots, metric)
    type Groups = BTreeMap<(crate::model::ArchName, Accel, Clock, u32, String), (Vec<f64>, usize, String)>;
    let mut groups: Groups = BTreeMap::new();
    for r in records {
        let p = &r.provenance;
        for s in &r.boot.results {
            let g = groups
                .entry((p.arch.clone(), p.accel, p.clock, p.vcpus, s.id.clone()))
                .or_insert_with(|| (Vec::new(), 0, s.metric.clone()));
            g.0.push(s.median);
        }
        for f in &r.boot.failures {
            groups
                .entry((p.arch.clone(), p.accel, p.clock, p.vcpus, f.id.clone()))
                .or_insert_with(|| (Vec::new(), 0, String::new()))
                .1 += 1;
        }
    }
    let mut out = format!(
        "{:<8} {:<5} {:<12} {:>4} {:<38} {:>3} {:>6} {:>12} {:>7}  {}\n",
        "arch", "accel", "clock", "cpus", "workload", "n", "failed", "median", "cv%", "metric"
    );
    for ((arch, accel, clock, cpus, id), (v, failed, metric)) in &groups {
        out.push_str(&format!(
            "{arch:<8} {:<5} {:<12} {cpus:>4} {id:<38} {:>3} {failed:>6} {:>12.2} {:>7.2}  {metric}\n",
            accel.name(),
            clock.name(),
            v.len(),
            crate::stats::median(v),
            crate::stats::cv_percent(v)
        ));
    }
    out
}
