//! `cargo xtask compare A B`: two reference trees (or two commits of `--tree`), the same
//! plan, builds, interleaved boots, statistics and storage as `eval`, and a regression
//! report that starts a new thread (`target/eval/compare-A-B/report.eml`).

use super::{dry_run, ids, machine, measure, stage, Outcome, Ran};
use crate::plan::{self, Kernel, Spec};
use crate::progress;
use crate::render;
use crate::report::{ReleaseInfo, Releases, ReplyTarget, Report, SeriesInfo, StageTime, TreeInfo};
use crate::rundir::{self, RunDir};
use crate::tree::{self, TreeHandle};
use anyhow::Result;
use std::path::PathBuf;
use std::time::Instant;

pub struct CompareOptions {
    pub a: String,
    pub b: String,
    /// Compare two commits of this tree instead of two reference trees.
    pub tree: Option<PathBuf>,
    pub spec: Spec,
    pub dry_run: bool,
}

pub fn compare(o: &CompareOptions) -> Result<Ran> {
    let super::Setup { cfg, from, templates } = super::Setup::load(o.spec.from.clone())?;
    let mut timing: Vec<StageTime> = Vec::new();
    let t = Instant::now();
    // Two commits of --tree, or the HEAD of two reference trees (resolve provisions them).
    let side = |spec: &str| -> Result<(TreeHandle, String)> {
        let (h, rev) = match &o.tree {
            Some(dir) => (tree::resolve(Some(dir), None)?, spec),
            None => (tree::resolve(None, Some(spec))?, "HEAD"),
        };
        let c = tree::resolve_commit(&h, rev)?;
        Ok((h, c))
    };
    let (ta, ca) = side(&o.a)?;
    let (tb, cb) = side(&o.b)?;
    stage(&mut timing, "trees", t);
    let safe = |x: &str| {
        x.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '-' }).collect::<String>()
    };
    let dir = RunDir::at(o.spec.out_root.join(format!("compare-{}-{}", safe(&o.a), safe(&o.b))));
    let machine = machine(&o.spec, &dir)?;
    let spec = plan::narrow(&o.spec, machine.as_ref(), crate::arch::table()?)?;
    let (la, lb) = (o.a.clone(), if o.a == o.b { format!("{}-b", o.b) } else { o.b.clone() });
    let (ra, rb) = (tree::release_of(&ta, &ca), tree::release_of(&tb, &cb));
    let releases = Releases {
        a: ReleaseInfo { label: la.clone(), tree: ta.label.clone(), commit: ca.clone(), release: ra.clone() },
        b: ReleaseInfo { label: lb.clone(), tree: tb.label.clone(), commit: cb.clone(), release: rb.clone() },
    };
    let tree_info = TreeInfo {
        label: ta.label.clone(),
        base: ca.clone(),
        base_source: "compare".into(),
        release: ra.clone(),
    };
    let kernels = vec![
        Kernel { variant: la.as_str().into(), tree: ta, commit: ca.clone(), release: ra },
        Kernel { variant: lb.as_str().into(), tree: tb, commit: cb.clone(), release: rb },
    ];
    let plan = plan::plan(&spec, kernels, ids(&spec, None, &cfg.thresholds)?);
    if o.dry_run {
        return Ok(Ran::Planned(dry_run(&plan, dir.path())?));
    }
    progress::say(&format!(
        "{} ({}) against {} ({}); {}; {} {}; {} clock; {} (ABBA); suite {}; results in {}",
        la,
        &ca[..12],
        lb,
        &cb[..12],
        plan.info.arches.join(","),
        render::prose::join_u32(&plan.info.cpus),
        if machine.is_some() { "CPUs" } else { "vCPU" },
        plan.info.clocks.iter().map(|c| c.name()).collect::<Vec<_>>().join("+"),
        spec.boots_words(),
        spec.suite.name,
        dir.path().display()
    ));
    let mut report = Report::new(
        SeriesInfo::none(
            format!("{la} against {lb}"),
            dir.path().file_name().unwrap().to_string_lossy().into_owned(),
        ),
        ReplyTarget::none(),
        tree_info,
        plan.info.clone(),
    );
    report.releases = Some(releases);
    let pending = measure(&plan, machine.as_ref(), &spec, &dir, &mut report, &mut timing, &cfg.thresholds)?;
    let t = Instant::now();
    report.timing = timing;
    let env = super::envelope(&from, &report)?;
    let text =
        render::regression::render(&report, &env, &cfg.regressions.to, &cfg.regressions.cc, &templates)?;
    let email = dir.write_text(rundir::REGRESSION, &text)?;
    super::write_page_and_report(&dir, &mut report, &templates, &cfg.thresholds, t)?;
    Ok(Ran::Measured(Box::new(Outcome { dir: dir.path().to_path_buf(), report, email, pending })))
}
