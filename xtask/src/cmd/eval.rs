//! `cargo xtask eval`: the main job. Pick the revision(s), apply each to the same base,
//! plan the baseline and every revision's kernels, measure them, and write the reply
//! to the series, `report.json` and `report.html` in `target/eval/<slug>/`.

use super::{dry_run, ids, machine, measure, stage, Outcome, Ran};
use crate::apply::{self, ApplyOutcome};
use crate::mail::{MailDate, MboxFormat};
use crate::model::Variant;
use crate::plan::{self, Kernel, Spec};
use crate::render::{self, Templates};
use crate::report::{self, PatchInfo, ReplyTarget, Report, RevisionInfo, SeriesInfo, StageTime, TreeInfo};
use crate::rundir::{self, RunDir};
use crate::series::{self, Choice, Series};
use crate::tree::TreeHandle;
use crate::{input, progress};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::time::Instant;

pub struct EvalOptions {
    pub file: PathBuf,
    /// Where the thread came from, when fetched from an archive.
    pub source: Option<String>,
    /// `--check-newer`: the archive to search for a newer revision first.
    pub newer_in: Option<String>,
    pub mbox_format: MboxFormat,
    /// Revisions to evaluate side by side (empty: the highest one alone).
    pub revisions: Vec<u32>,
    pub all_revisions: bool,
    pub partial: bool,
    pub tree: TreeHandle,
    pub base: Option<String>,
    pub spec: Spec,
    /// Print the plan and stop: nothing is built or booted.
    pub dry_run: bool,
    /// Measure the tree after each patch too, and each patch's own step.
    pub per_patch: bool,
}

fn date_of(d: Option<MailDate>) -> Option<String> {
    d.map(|d| render::rfc2822(d.timestamp, d.offset_minutes))
}

fn reply_target(s: &Series) -> ReplyTarget {
    match (&s.cover, s.patches.first()) {
        (Some(c), _) => ReplyTarget {
            subject: c.raw_subject.clone(),
            message_id: c.message_id.clone(),
            references: c.references.clone(),
            from: c.from.clone(),
            to: c.to.clone(),
            cc: c.cc.clone(),
            date: date_of(c.date),
            body: c.body.clone(),
        },
        (None, Some(p)) => ReplyTarget {
            subject: p.raw_subject.clone(),
            message_id: p.message_id.clone(),
            references: p.references.clone(),
            from: p.from.clone(),
            to: p.to.clone(),
            cc: p.cc.clone(),
            date: date_of(p.mail.date),
            body: p.mail.message.clone(),
        },
        (None, None) => unreachable!("a chosen series has patches"),
    }
}

/// How a patch got into the tree when it was not plainly: what a maintainer wants to
/// know before trusting the numbers (another revision's patch, moved context, a merge).
fn apply_note(p: &series::SeriesPatch, a: &apply::AppliedPatch) -> Option<String> {
    let mut notes = Vec::new();
    if let Some(v) = p.from_revision {
        notes.push(format!("v{v}'s patch (partial reroll)"));
    }
    if a.three_way {
        notes.push("applied by three-way merge".to_string());
    }
    if !a.offsets.is_empty() {
        let hunks: Vec<String> =
            a.offsets.iter().map(|o| format!("{} #{} {:+}", o.file, o.hunk, o.offset)).collect();
        notes.push(format!("hunks at an offset: {}", hunks.join(", ")));
    }
    (!notes.is_empty()).then(|| notes.join("; "))
}

pub fn eval(o: &EvalOptions) -> Result<Ran> {
    let super::Setup { cfg, from, templates } = super::Setup::load(o.spec.from.clone())?;
    let mut timing: Vec<StageTime> = Vec::new();

    let t = Instant::now();
    let mailbox = input::read_mailbox_as(&o.file, o.mbox_format)?;
    let wanted: Vec<Option<u32>> = if o.all_revisions {
        mailbox.revisions.keys().map(|v| Some(*v)).collect()
    } else if o.revisions.is_empty() {
        vec![None]
    } else {
        o.revisions.iter().map(|v| Some(*v)).collect()
    };
    let mut all: Vec<Series> = wanted
        .iter()
        .map(|r| series::choose(&mailbox, Choice { revision: *r, partial: o.partial }))
        .collect::<Result<_>>()
        .with_context(|| format!("{}", o.file.display()))?;
    all.sort_by_key(|s| s.version);
    all.dedup_by_key(|s| s.version);
    stage(&mut timing, "read series", t);
    // The reply goes to the newest revision; several revisions share one directory.
    let series = all.last().unwrap().clone();
    if let Some(base) = &o.newer_in {
        if let Some((v, id)) = crate::lore::newer(base, &series)? {
            let what = format!("v{v} of this series is in {base} (<{id}>)");
            if o.revisions.is_empty() && !o.all_revisions {
                bail!(
                    "{what}: evaluate it (cargo xtask eval {}), or pass --rev to test the one given",
                    crate::render::reply::shell_word(&id)
                );
            }
            progress::say(&format!("warning: {what}; testing the revision asked for"));
        }
    }
    let multi = all.len() > 1;
    if o.per_patch && multi {
        bail!("--per-patch measures one revision patch by patch: give one --rev");
    }
    if o.per_patch && o.spec.auto_reps {
        bail!("--per-patch needs a fixed --reps N (each step is compared at the same number of boots)");
    }
    let dir_name = if o.per_patch {
        format!("{}-per-patch", series.slug)
    } else if multi {
        let stem = series.slug.rsplit_once("-v").map(|(a, _)| a).unwrap_or(&series.slug);
        format!("{stem}-{}", all.iter().map(|s| format!("v{}", s.version)).collect::<Vec<_>>().join("-"))
    } else {
        series.slug.clone()
    };
    let dir_path = o.spec.out_root.join(&dir_name);
    let dir = RunDir::at(dir_path.clone());
    let machine = machine(&o.spec, &dir)?;
    let spec = plan::narrow(&o.spec, machine.as_ref(), crate::arch::table()?)?;
    let total = (series.patches.len() + series.missing.len()) as u32;
    let mut variants: Vec<Variant> = vec!["baseline".into()];
    if o.per_patch {
        variants.extend((1..=series.patches.len()).map(|k| Variant(format!("patch{k}"))));
    } else if multi {
        variants.extend(all.iter().map(|s| Variant(format!("v{}", s.version))));
    } else {
        variants.push("patched".into());
    }

    // Apply every revision on the same base; the first that does not apply ends the run.
    let t = Instant::now();
    let repo = git2::Repository::open(&o.tree.repo_path)?;
    let (base, base_source) = apply::resolve_base(&repo, o.base.as_deref(), &series)?;
    let release = crate::tree::release_of(&o.tree, &base.to_string());
    let mut report = Report::new(
        SeriesInfo {
            subject: series.subject(),
            version: series.version,
            all_versions: series.all_versions.clone(),
            slug: series.slug.clone(),
            author: series
                .author()
                .cloned()
                .unwrap_or(crate::mail::Addr { name: String::new(), email: String::new() }),
            patches: series
                .patches
                .iter()
                .map(|p| PatchInfo {
                    number: p.number,
                    total,
                    subject: p.mail.subject.clone(),
                    commit: None,
                    note: None,
                })
                .collect(),
            base_commit: series.base_commit.clone(),
            source: o.source.clone(),
        },
        reply_target(&series),
        TreeInfo {
            label: o.tree.label.clone(),
            base: base.to_string(),
            base_source,
            release: release.clone(),
        },
        // What was asked, before anything applied (the kernels come after).
        {
            let baseline = Kernel {
                variant: variants[0].clone(),
                tree: o.tree.clone(),
                commit: base.to_string(),
                release: release.clone(),
            };
            let mut info =
                plan::plan(&spec, vec![baseline], ids(&spec, Some(series.version), &cfg.thresholds)?).info;
            info.variants = variants.clone();
            info.order = plan::Order::for_kernels(variants.len()).describe().into();
            info
        },
    );
    let mut tips: Vec<String> = Vec::new();
    for (s, variant) in all.iter().zip(variants.iter().skip(1)) {
        let refname = format!("refs/heads/eval/{}", s.slug);
        let applied = match apply::apply_series(&repo, s, base, &refname)? {
            ApplyOutcome::Applied(a) => a,
            ApplyOutcome::Failed(mut f) => {
                if multi {
                    f.subject = format!("v{}: {}", s.version, f.subject);
                }
                progress::say(&f.to_string());
                report.apply = Some(f);
                stage(&mut timing, "apply", t);
                keep_thread(o, &dir)?;
                return finish(report, timing, &dir, &from, &templates, &cfg.thresholds, None)
                    .map(|o| Ran::Measured(Box::new(o)));
            }
        };
        let patches: Vec<PatchInfo> = s
            .patches
            .iter()
            .zip(&applied)
            .map(|(p, a)| PatchInfo {
                number: p.number,
                total: (s.patches.len() + s.missing.len()) as u32,
                subject: p.mail.subject.clone(),
                commit: Some(a.commit.clone()),
                note: apply_note(p, a),
            })
            .collect();
        if s.version == series.version {
            report.series.patches = patches.clone();
        }
        if o.per_patch {
            // A kernel after every patch; the last is the whole series.
            report.per_patch = patches
                .iter()
                .zip(variants.iter().skip(1))
                .map(|(p, v)| report::StepInfo { variant: v.clone(), patch: p.clone() })
                .collect();
            tips.extend(applied.iter().map(|p| p.commit.clone()));
            continue;
        }
        if multi {
            report.revisions.push(RevisionInfo {
                variant: variant.clone(),
                version: s.version,
                subject: s.subject(),
                patches,
            });
        }
        tips.push(applied.last().map(|p| p.commit.clone()).unwrap_or_else(|| base.to_string()));
    }
    stage(&mut timing, "apply", t);

    let kernels: Vec<Kernel> = std::iter::once(base.to_string())
        .chain(tips)
        .zip(&variants)
        .map(|(commit, variant)| Kernel {
            variant: variant.clone(),
            tree: o.tree.clone(),
            commit,
            release: release.clone(),
        })
        .collect();
    let plan = plan::plan(&spec, kernels, ids(&spec, Some(series.version), &cfg.thresholds)?);
    if o.dry_run {
        return Ok(Ran::Planned(dry_run(&plan, dir.path())?));
    }
    report.plan = plan.info.clone();
    progress::say(&format!(
        "{} of \"{}\" ({} patch{}) on {}; {} {}; {} {}; {} clock; {} ({}); suite {}; results in {}",
        all.iter().map(|s| format!("v{}", s.version)).collect::<Vec<_>>().join(" and "),
        series.subject(),
        series.patches.len(),
        if series.patches.len() == 1 { "" } else { "es" },
        o.tree.label,
        match &machine {
            Some(mr) => format!(
                "on {} (kernels built from its config, booted there one by one)",
                mr.target.describe()
            ),
            None => match &spec.lab {
                Some(l) => format!("LAVA jobs on {}'s {} devices,", l.url, l.device_type),
                None => "QEMU".into(),
            },
        },
        plan.info.arches.join(","),
        render::prose::join_u32(&plan.info.cpus),
        if machine.is_some() { "CPUs" } else { "vCPU" },
        plan.info.clocks.iter().map(|c| c.name()).collect::<Vec<_>>().join("+"),
        spec.boots_words(),
        plan.info.order,
        spec.suite.name,
        dir.path().display()
    ));
    keep_thread(o, &dir)?;
    let pending = measure(&plan, machine.as_ref(), &spec, &dir, &mut report, &mut timing, &cfg.thresholds)?;
    finish(report, timing, &dir, &from, &templates, &cfg.thresholds, pending)
        .map(|o| Ran::Measured(Box::new(o)))
}

fn finish(
    mut report: Report,
    timing: Vec<StageTime>,
    dir: &RunDir,
    from: &crate::mail::Addr,
    templates: &Templates,
    thresholds: &crate::compare::Thresholds,
    pending: Option<String>,
) -> Result<Outcome> {
    let t = Instant::now();
    report.timing = timing;
    let env = super::envelope(from, &report)?;
    let email = dir.write_text(rundir::REPLY, &render::reply::render(&report, &env, templates)?)?;
    super::write_page_and_report(dir, &mut report, templates, thresholds, t)?;
    Ok(Outcome { dir: dir.path().to_path_buf(), report, email, pending })
}

/// A thread fetched from an archive is kept with the evaluation: the run can be
/// redone offline from the directory alone.
fn keep_thread(o: &EvalOptions, dir: &RunDir) -> Result<()> {
    if o.source.is_some() {
        dir.ensure()?;
        let to = dir.path().join("thread.mbox.gz");
        std::fs::copy(&o.file, &to).with_context(|| format!("cannot keep the thread in {}", to.display()))?;
    }
    Ok(())
}
