//! `cargo xtask bisect GOOD BAD`: the first commit along the first-parent history at
//! which the workloads got slower (or faster). GOOD and BAD are measured first; then
//! each midpoint is built (incrementally, in the tree's one build directory) and booted
//! interleaved with GOOD and BAD, and classified by `bisect::classify` from its two
//! steps. Every measurement is an evaluation directory of its own under
//! `target/eval/bisect-<good>-<bad>/`, so a re-run resumes each and takes the same
//! decisions; `bisect.json` and `report.eml` say where it ended.

use super::{ids, measure};
use crate::bisect::{self, Class, Direction, Next};
use crate::compare::Comparison;
use crate::mail::Addr;
use crate::plan::{self, Kernel, Spec};
use crate::progress;
use crate::render::header::{encode_text, fold, format_addr};
use crate::report::{self, ReplyTarget, Report, SeriesInfo, TreeInfo};
use crate::rundir::{self, RunDir};
use crate::serial::BootStatus;
use crate::tree::{self, TreeHandle};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::PathBuf;

pub struct BisectOptions {
    pub good: String,
    pub bad: String,
    pub tree: TreeHandle,
    /// The workloads to follow (default: every one GOOD → BAD moved).
    pub workloads: Vec<String>,
    pub direction: Direction,
    /// The smallest change that counts (default: the thresholds' `min_change_pct`).
    pub threshold_pct: Option<f64>,
    pub spec: Spec,
}

/// One commit of the range, as the report lists it.
#[derive(Debug, Clone, Serialize)]
pub struct CommitInfo {
    pub sha: String,
    pub subject: String,
    pub author: String,
}

/// A measured midpoint.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    pub commit: CommitInfo,
    pub class: Class,
    /// Per followed workload: change GOOD → MID and MID → BAD (%).
    pub changes: Vec<(String, f64, f64)>,
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bisection {
    pub good: CommitInfo,
    pub bad: CommitInfo,
    pub commits: usize,
    /// Where it was measured: "x86_64, TCG, instruction count, 1 vCPU".
    pub cell: String,
    pub direction: Direction,
    pub threshold_pct: f64,
    /// GOOD → BAD of the followed workloads (%).
    pub moved: Vec<(String, f64)>,
    pub steps: Vec<StepResult>,
    /// The first bad commit, when found.
    pub culprit: Option<CommitInfo>,
    /// Otherwise the commits it is among (skipped or undecided ones hide it); empty
    /// when there was nothing to bisect.
    pub range: Vec<CommitInfo>,
    pub verdict: String,
}

fn info(repo: &git2::Repository, sha: &str) -> Result<CommitInfo> {
    let c = repo.find_commit(git2::Oid::from_str(sha)?)?;
    let a = c.author();
    Ok(CommitInfo {
        sha: sha.to_string(),
        subject: String::from_utf8_lossy(c.summary_bytes().unwrap_or(b"")).into_owned(),
        author: format!("{} <{}>", a.name().unwrap_or(""), a.email().unwrap_or("")),
    })
}

/// The first-parent history after `good` up to `bad`, oldest first.
fn range(repo: &git2::Repository, good: &str, bad: &str) -> Result<Vec<String>> {
    let (g, b) = (git2::Oid::from_str(good)?, git2::Oid::from_str(bad)?);
    if g == b {
        bail!("GOOD and BAD are the same commit ({}): nothing to bisect", &good[..12]);
    }
    let mut out = Vec::new();
    let mut at = repo.find_commit(b)?;
    loop {
        if at.id() == g {
            break;
        }
        out.push(at.id().to_string());
        at = match at.parent(0) {
            Ok(p) => p,
            Err(_) => bail!(
                "GOOD ({}) is not on BAD's first-parent history; give a GOOD that BAD descends from",
                &good[..12]
            ),
        };
    }
    out.reverse();
    Ok(out)
}

/// GOOD, the commit(s) in between and BAD, measured in one interleaved run in `dir`:
/// the report and the steps (each kernel against the one before).
fn measure_kernels(
    o: &BisectOptions,
    kernels: &[(&str, &str)],
    dir: &RunDir,
    reps: usize,
    cfg: &crate::config::Config,
) -> Result<(Report, Vec<Comparison>)> {
    let mut spec = o.spec.clone();
    spec.reps = reps;
    let release = tree::release_of(&o.tree, kernels[0].1);
    let kernels: Vec<Kernel> = kernels
        .iter()
        .map(|(v, c)| Kernel {
            variant: (*v).into(),
            tree: o.tree.clone(),
            commit: c.to_string(),
            release: release.clone(),
        })
        .collect();
    let plan = plan::plan(&spec, kernels, ids(&spec, None, &cfg.thresholds)?);
    let tree = TreeInfo {
        label: o.tree.label.clone(),
        base: plan.kernels[0].commit.clone(),
        base_source: "bisect".into(),
        release,
    };
    let slug = dir.path().file_name().unwrap_or_default().to_string_lossy().into_owned();
    let mut report = Report::new(
        SeriesInfo::none(format!("bisect {}..{}", &o.good, &o.bad), slug),
        ReplyTarget::none(),
        tree,
        plan.info.clone(),
    );
    let mut timing = Vec::new();
    measure(&plan, None, &spec, dir, &mut report, &mut timing, &cfg.thresholds)?;
    report.timing = timing;
    dir.write_report(&report)?;
    let done = dir.records(&plan)?.boots;
    let steps = report::step_comparisons(&done, &plan.info.variants, &plan.suite, &cfg.thresholds);
    Ok((report, steps))
}

pub fn bisect(o: &BisectOptions) -> Result<(Bisection, PathBuf)> {
    let super::Setup { cfg, from, .. } = super::Setup::load(o.spec.from.clone())?;
    if o.spec.arches.len() != 1 || o.spec.clocks.len() != 1 || o.spec.cpus.len() != 1 {
        bail!("bisect follows one cell: give one --arch, one --clock and one --cpus");
    }
    let repo = git2::Repository::open(&o.tree.repo_path)?;
    let good = tree::resolve_commit(&o.tree, &o.good)?;
    let bad = tree::resolve_commit(&o.tree, &o.bad)?;
    let commits = range(&repo, &good, &bad)?;
    let threshold = o.threshold_pct.unwrap_or(cfg.thresholds.min_change_pct);
    let root = o.spec.out_root.join(format!("bisect-{}-{}", &good[..12], &bad[..12]));
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    progress::say(&format!(
        "bisect {}..{} in {}: {} commits on the first-parent history; {} {} {}cpu; {} boots of each kernel per step; results in {}",
        &good[..12],
        &bad[..12],
        o.tree.label,
        commits.len(),
        o.spec.arches[0].name,
        o.spec.clocks[0].name(),
        o.spec.cpus[0],
        o.spec.reps,
        root.display()
    ));
    let mut b = Bisection {
        good: info(&repo, &good)?,
        bad: info(&repo, &bad)?,
        commits: commits.len(),
        cell: String::new(),
        direction: o.direction,
        threshold_pct: threshold,
        moved: vec![],
        steps: vec![],
        culprit: None,
        range: vec![],
        verdict: String::new(),
    };
    let save = |b: &Bisection| rundir::write_json(&root.join("bisect.json"), b);

    // GOOD against BAD: is there anything to bisect?
    let (r, _) = measure_kernels(
        o,
        &[("good", &good), ("bad", &bad)],
        &RunDir::at(root.join("good-bad")),
        o.spec.reps,
        &cfg,
    )?;
    if let Some(f) = r.builds.iter().find(|x| !x.ok) {
        bail!(
            "{} does not build ({}); bisect needs GOOD and BAD to build and boot",
            f.variant,
            f.errors.first().map(String::as_str).unwrap_or("see its log")
        );
    }
    if r.boots.iter().any(|x| x.status != BootStatus::Ok) {
        bail!(
            "GOOD or BAD did not boot cleanly (see {}); bisect needs both to boot",
            root.join("good-bad").display()
        );
    }
    if let Some(c) = r.comparisons.first() {
        let cell = crate::model::Cell { arch: c.arch.clone(), accel: c.accel, clock: c.clock, cpus: c.cpus };
        b.cell = format!("{}, {}", c.arch, cell.place());
    }
    let moved = bisect::moved_workloads(&r.comparisons, o.direction, threshold, &o.workloads);
    b.moved = moved
        .iter()
        .filter_map(|w| r.comparisons.iter().find(|c| &c.workload == w).map(|c| (w.clone(), c.change_pct)))
        .collect();
    if moved.is_empty() {
        let way = if o.direction == Direction::Slower { "slower" } else { "faster" };
        let asked = if o.workloads.is_empty() {
            "no workload is".to_string()
        } else {
            format!("{} {} not", o.workloads.join(", "), if o.workloads.len() == 1 { "is" } else { "are" })
        };
        b.verdict = format!(
            "nothing to bisect: {asked} significantly {way} by {threshold}% or more at BAD than at GOOD ({} boots of each)",
            o.spec.reps
        );
        save(&b)?;
        let page = write_mail(&b, &root, &from)?;
        return Ok((b, page));
    }
    progress::say(&format!(
        "GOOD -> BAD: {}",
        b.moved.iter().map(|(w, c)| format!("{w} {c:+.2}%")).collect::<Vec<_>>().join(", ")
    ));

    let mut tried: Vec<(usize, Class)> = Vec::new();
    let end = loop {
        let i = match bisect::next(commits.len(), &tried) {
            Next::Try(i) => i,
            done => break done,
        };
        let mid = &commits[i];
        let mut result = None;
        // The step's boots, then as many again when it is undecided.
        for (round, reps) in [o.spec.reps, 2 * o.spec.reps].into_iter().enumerate() {
            let name = if round == 0 {
                format!("step-{}", &mid[..12])
            } else {
                format!("step-{}-x{reps}", &mid[..12])
            };
            let dir = RunDir::at(root.join(&name));
            let (r, steps) =
                measure_kernels(o, &[("good", &good), ("mid", mid), ("bad", &bad)], &dir, reps, &cfg)?;
            let class = if r.builds.iter().any(|x| !x.ok && x.variant == "mid") {
                Class::Skipped("does not build".into())
            } else if r.builds.iter().any(|x| !x.ok) {
                bail!("GOOD or BAD no longer builds (see {})", dir.path().display());
            } else if r.boots.iter().any(|x| x.variant == "mid" && x.status != BootStatus::Ok) {
                Class::Skipped("does not boot cleanly".into())
            } else {
                let (good_mid, mid_bad): (Vec<Comparison>, Vec<Comparison>) =
                    steps.into_iter().partition(|c| c.variant == "mid");
                let changes = moved
                    .iter()
                    .map(|w| {
                        let pct = |cs: &[Comparison]| {
                            cs.iter().find(|c| &c.workload == w).map_or(f64::NAN, |c| c.change_pct)
                        };
                        (w.clone(), pct(&good_mid), pct(&mid_bad))
                    })
                    .collect();
                result = Some(changes);
                bisect::classify(&good_mid, &mid_bad, &moved, o.direction, threshold)
            };
            let done = class != Class::Undecided;
            if done || round == 1 {
                let commit = info(&repo, mid)?;
                progress::say(&format!(
                    "step {}: {} {}: {:?}",
                    b.steps.len() + 1,
                    &mid[..12],
                    commit.subject,
                    class
                ));
                b.steps.push(StepResult {
                    commit,
                    class: class.clone(),
                    changes: result.clone().unwrap_or_default(),
                    dir: dir.path().to_path_buf(),
                });
                tried.push((i, class));
                break;
            }
        }
        save(&b)?;
    };
    match end {
        Next::Culprit(i) => {
            let c = info(&repo, &commits[i])?;
            b.verdict = format!("first bad commit: {} {} ({})", &c.sha[..12], c.subject, c.author);
            b.culprit = Some(c);
        }
        Next::Range(is) => {
            b.range = is.iter().map(|i| info(&repo, &commits[*i])).collect::<Result<_>>()?;
            b.verdict = format!(
                "the first bad commit is one of {}: the others could not be measured or placed",
                b.range.iter().map(|c| c.sha[..12].to_string()).collect::<Vec<_>>().join(", ")
            );
        }
        Next::Try(_) => unreachable!("the loop ends on a result"),
    }
    save(&b)?;
    let mail = write_mail(&b, &root, &from)?;
    Ok((b, mail))
}

/// The table of the bisection, for the terminal and the mail.
pub fn text(b: &Bisection) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "GOOD {} {}", &b.good.sha[..12], b.good.subject);
    let _ = writeln!(o, "BAD  {} {}", &b.bad.sha[..12], b.bad.subject);
    let _ = writeln!(
        o,
        "{} commits on the first-parent history; measured on {}; a change counts from {}%.",
        b.commits, b.cell, b.threshold_pct
    );
    if !b.moved.is_empty() {
        let _ = writeln!(
            o,
            "GOOD -> BAD: {}",
            b.moved.iter().map(|(w, c)| format!("{w} {c:+.2}%")).collect::<Vec<_>>().join(", ")
        );
    }
    if !b.steps.is_empty() {
        let _ =
            writeln!(o, "\nstep commit       class         workload                   GOOD->it   it->BAD");
        for (n, s) in b.steps.iter().enumerate() {
            let class = match &s.class {
                Class::Skipped(why) => format!("skipped ({why})"),
                c => format!("{c:?}").to_lowercase(),
            };
            for (k, (w, g, bd)) in s.changes.iter().enumerate() {
                let (step, sha, cl) = if k == 0 {
                    (format!("{}", n + 1), s.commit.sha[..12].to_string(), class.clone())
                } else {
                    (String::new(), String::new(), String::new())
                };
                let _ = writeln!(o, "{step:>4} {sha:<12} {cl:<13} {w:<28} {g:>+7.2}% {bd:>+7.2}%");
            }
            if s.changes.is_empty() {
                let _ = writeln!(o, "{:>4} {:<12} {class}", n + 1, &s.commit.sha[..12]);
            }
            let _ = writeln!(o, "                  {}", s.commit.subject);
        }
    }
    let _ = writeln!(o, "\n{}", b.verdict);
    o
}

/// `report.eml`: a new thread naming the culprit (`[REGRESSION]` only for a slowdown
/// that was found), with the steps and regzbot's line.
fn write_mail(b: &Bisection, root: &std::path::Path, from: &Addr) -> Result<PathBuf> {
    let subject = match (&b.culprit, b.direction) {
        (Some(c), Direction::Slower) => format!("[REGRESSION] {} (bisected with mmeval)", c.subject),
        (Some(c), Direction::Faster) => format!("mmeval bisect: {} is faster", c.subject),
        (None, _) => format!(
            "mmeval bisect {}..{}: {}",
            &b.good.sha[..12],
            &b.bad.sha[..12],
            if b.moved.is_empty() { "nothing to bisect" } else { "not narrowed to one commit" }
        ),
    };
    let mut body = String::new();
    let _ = writeln!(body, "{}\n", crate::render::prose::wrap("Bisected with mmeval: every step booted GOOD, the commit tried and BAD interleaved, and a commit counts as good or bad only when its changes from GOOD and to BAD say so significantly (Mann-Whitney, 95% bootstrap interval). QEMU TCG figures are emulated, not silicon timings.", 72, ""));
    body.push_str(&text(b));
    if let (Some(c), Direction::Slower) = (&b.culprit, b.direction) {
        let _ = writeln!(body, "\n#regzbot introduced: {}", &c.sha[..12]);
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    let mail = format!(
        "From: {}\nSubject: {}\nDate: {}\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\nX-Mailer: mmeval {}\n\n{}",
        format_addr(from),
        fold("Subject", &encode_text(&subject)),
        crate::render::rfc2822(now, 0),
        env!("CARGO_PKG_VERSION"),
        body
    );
    let path = root.join(rundir::REGRESSION);
    std::fs::write(&path, crate::mail::scrub_text(&mail))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}
