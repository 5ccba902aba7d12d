//! `cargo xtask eval`: the main job. Pick the revision, apply it, build baseline and
//! patched kernels per architecture, boot them alternately (ABBA) for the requested
//! repetitions, compare, render the report and the reply.
//!
//! Everything lands in `target/eval/<slug>/` as it finishes: `plan.json`, each boot's
//! serial log, `records.jsonl` (one line per finished boot), `report.json` after every
//! stage, and at the end `reply.eml`. A re-run with the same plan resumes: applying and
//! building are answered from git and the build store, finished boots are read back.

use crate::arch::Arch;
use crate::build::{self, BuildOptions};
use crate::compare::{self, Tagged, Thresholds};
use crate::mail::{Addr, MailDate};
use crate::metal::{self, Home, Target};
use crate::qemu::{Accel, Clock};
use crate::report::{
    self, BootEntry, BuildEntry, Machine, PatchInfo, PlanInfo, ReplyTarget, Report, RevisionInfo, SeriesInfo,
    StageTime, TreeInfo,
};
use crate::run::{self, AccelChoice, BootRecord, QemuBoot};
use crate::serial;
use crate::series::{self, Choice, Series};
use crate::suite::{self, Suite};
use crate::tree::TreeHandle;
use crate::{apply, email, harness, input, reftree};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to measure and where results go: the same for `eval` and `compare`.
#[derive(Clone)]
pub struct Spec {
    pub arches: Vec<Arch>,
    pub cpus: Vec<u32>,
    pub reps: usize,
    pub suite: Suite,
    pub clocks: Vec<Clock>,
    pub accel: AccelChoice,
    pub mem_mib: u32,
    pub build: BuildOptions,
    pub from: Option<Addr>,
    pub out_root: PathBuf,
    pub fresh: bool,
    /// A real machine instead of QEMU (`--metal`, `--host`).
    pub target: Option<Target>,
    /// Whether --cpus was given (a real machine uses all of its CPUs).
    pub cpus_given: bool,
    /// How long a real machine may take to come back after a kexec.
    pub boot_timeout: Duration,
}

/// A real machine an evaluation runs on, and the kernel it came with.
pub struct MachineRun {
    pub target: Target,
    pub home: Home,
    /// What the machine said when the evaluation started (the kernel it runs now).
    pub now: metal::Facts,
}

impl Spec {
    /// On a real machine: the spec narrowed to what the machine is (its architecture,
    /// its online CPUs, the wall clock, kernels built from its own config). Unchanged
    /// for QEMU.
    fn for_target(&self, dir: &Path) -> Result<(Spec, Option<MachineRun>)> {
        let Some(t) = &self.target else { return Ok((self.clone(), None)) };
        let facts = metal::probe(t)?;
        let table = crate::arch::table()?;
        let Some(arch) = table.get(&facts.arch) else {
            bail!("{} is {}: the tool knows only {}", t.describe(), facts.arch, crate::arch::ALL.join(", "));
        };
        let all = self.arches.len() == crate::arch::ALL.len();
        let only_its_own = self.arches.len() == 1 && self.arches[0].name == facts.arch;
        if !all && !only_its_own {
            bail!(
                "{} is {}: --arch can only be {} there (or left out)",
                t.describe(),
                facts.arch,
                facts.arch
            );
        }
        if self.cpus_given {
            bail!("--cpus is for QEMU guests; on a real machine every online CPU is used (boot it with maxcpus= to use fewer)");
        }
        if !self.clocks.contains(&Clock::Wall) {
            bail!("a real machine has only the wall clock; --clock instructions needs QEMU");
        }
        if !facts.root {
            bail!("{}: the harness needs root there (it sets and restores the THP knobs); use root@ or run as root", t.describe());
        }
        if let Target::Ssh(_) = t {
            if !facts.kexec {
                bail!(
                    "{}: no kexec there: install kexec-tools (each kernel is booted with kexec)",
                    t.describe()
                );
            }
        }
        let home = Home::load_or_take(t, &facts, dir)?;
        let mut spec = self.clone();
        spec.arches = vec![arch.clone()];
        spec.cpus = vec![home.facts.cpus];
        spec.clocks = vec![Clock::Wall];
        spec.build.host_config = Some(home.host_config());
        Ok((spec, Some(MachineRun { target: t.clone(), home, now: facts })))
    }

    fn measure<'a>(&'a self, thresholds: Thresholds, machine: Option<&'a MachineRun>) -> Measure<'a> {
        Measure { spec: self, thresholds, machine }
    }

    fn plan(&self, variants: Vec<String>, order: &str) -> PlanInfo {
        PlanInfo {
            arches: self.arches.iter().map(|a| a.name.clone()).collect(),
            cpus: self.cpus.clone(),
            clocks: self.clocks.iter().map(|c| clock_name(*c).to_string()).collect(),
            reps: self.reps,
            suite: self.suite.name.clone(),
            suite_runs: self.suite.runs.len(),
            order: order.into(),
            target: self.target.as_ref().map(Target::plan_name).unwrap_or_else(|| "qemu".into()),
            mem_mib: self.mem_mib,
            variants,
        }
    }
}

/// How a patch got into the tree when it was not plainly: what a maintainer wants to
/// know before trusting the numbers (another revision's patch, moved context, a merge).
fn apply_note(p: &crate::series::SeriesPatch, a: &apply::AppliedPatch) -> Option<String> {
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

pub struct EvalOptions {
    pub file: PathBuf,
    pub mbox_format: crate::mail::MboxFormat,
    /// Revisions to evaluate side by side (empty: the highest one alone).
    pub revisions: Vec<u32>,
    pub all_revisions: bool,
    pub partial: bool,
    pub tree: TreeHandle,
    pub base: Option<String>,
    pub spec: Spec,
}

/// `mmeval.yaml` at the top of the repository.
#[derive(Debug, Default, Deserialize)]
pub struct Config {
    pub tester: Option<Addr>,
    #[serde(default)]
    pub thresholds: Thresholds,
    /// Where a `compare` regression report goes (a new thread).
    #[serde(default)]
    pub regressions: Recipients,
}

#[derive(Debug, Deserialize)]
pub struct Recipients {
    pub to: Vec<Addr>,
    pub cc: Vec<Addr>,
}

impl Default for Recipients {
    /// The lists the kernel's documentation asks regression reports to go to.
    fn default() -> Self {
        let a = |e: &str| Addr { name: String::new(), email: e.into() };
        Recipients { to: vec![a("linux-mm@kvack.org")], cc: vec![a("regressions@lists.linux.dev")] }
    }
}

pub fn config() -> Result<Config> {
    let p = reftree::project_root().join("mmeval.yaml");
    match std::fs::read_to_string(&p) {
        Ok(t) => serde_yaml::from_str(&t).with_context(|| format!("{} is not valid", p.display())),
        Err(_) => Ok(Config::default()),
    }
}

/// Who signs the reply: --from, else mmeval.yaml's tester, else git's user.name/email.
pub fn tester(from: Option<Addr>, cfg: &Config) -> Result<Addr> {
    if let Some(a) = from.or_else(|| cfg.tester.clone()) {
        return Ok(a);
    }
    let sh = xshell::Shell::new()?;
    let get =
        |k: &str| xshell::cmd!(sh, "git config --get {k}").quiet().ignore_stderr().read().unwrap_or_default();
    let (name, email) = (get("user.name"), get("user.email"));
    if email.trim().is_empty() {
        // Still write the reply, but under an address that says where it came from.
        let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| "localhost".into());
        let email = format!("{user}@{}", host.trim());
        eprintln!(
            "eval: warning: no tester identity; the reply is From: and Tested-by: {email}. Set --from \"Name <you@example.org>\", mmeval.yaml's tester, or git config user.email before sending it."
        );
        return Ok(Addr { name: String::new(), email });
    }
    Ok(Addr { name: name.trim().to_string(), email: email.trim().to_string() })
}

/// `Name <addr>` from the command line.
pub fn parse_from(s: &str) -> Result<Addr> {
    match mailparse::addrparse(s).ok().as_ref().and_then(|l| l.first()) {
        Some(mailparse::MailAddr::Single(x)) => Ok(Addr {
            name: crate::mail::clean_header(x.display_name.as_deref().unwrap_or("")),
            email: crate::mail::clean_header(&x.addr),
        }),
        _ => bail!("--from `{s}` is not an address like \"Name <you@example.org>\""),
    }
}

/// What must match for a re-run to resume rather than start over.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct PlanKey {
    revision: u32,
    tree: String,
    base: String,
    tip: String,
    arches: Vec<String>,
    cpus: Vec<u32>,
    clocks: Vec<String>,
    reps: usize,
    suite: String,
    harness: String,
    config: String,
    mem_mib: u32,
    llvm: bool,
    target: String,
    host_config: Option<String>,
}

/// One finished boot, as stored in records.jsonl.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    variant: String,
    rep: usize,
    record: BootRecord,
}

fn clock_name(c: Clock) -> &'static str {
    match c {
        Clock::Wall => "wall",
        Clock::Instructions => "instructions",
    }
}

fn date_of(d: Option<MailDate>) -> Option<String> {
    d.map(|d| email::rfc2822(d.timestamp, d.offset_minutes))
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

pub fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(v)? + "\n")?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

pub fn release_of(tree: &TreeHandle, commit: &str) -> Option<String> {
    let repo = git2::Repository::open(&tree.repo_path).ok()?;
    let blob = repo.revparse_single(&format!("{commit}:Makefile")).ok()?.peel_to_blob().ok()?;
    let text = String::from_utf8_lossy(blob.content()).into_owned();
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k).map(|v| v.trim_start_matches([' ', '=']).trim().to_string()))
    };
    let (v, p, s) = (field("VERSION")?, field("PATCHLEVEL")?, field("SUBLEVEL").unwrap_or_default());
    Some(if s.is_empty() || s == "0" { format!("{v}.{p}") } else { format!("{v}.{p}.{s}") })
}

pub struct EvalOutcome {
    pub dir: PathBuf,
    pub report: Report,
    pub email: PathBuf,
    /// On this host (`--metal`): what to boot next before running the command again.
    pub pending: Option<String>,
}

pub fn eval(o: &EvalOptions) -> Result<EvalOutcome> {
    let cfg = config()?;
    let from = tester(o.spec.from.clone(), &cfg)?;
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
    let multi = all.len() > 1;
    let dir_name = if multi {
        let stem = series.slug.rsplit_once("-v").map(|(a, _)| a).unwrap_or(&series.slug);
        format!("{stem}-{}", all.iter().map(|s| format!("v{}", s.version)).collect::<Vec<_>>().join("-"))
    } else {
        series.slug.clone()
    };
    let dir = o.spec.out_root.join(&dir_name);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (spec, machine) = o.spec.for_target(&dir)?;
    let total = (series.patches.len() + series.missing.len()) as u32;

    let mut variants = vec!["baseline".to_string()];
    if multi {
        variants.extend(all.iter().map(|s| format!("v{}", s.version)));
    } else {
        variants.push("patched".into());
    }
    let plan = spec.plan(variants.to_vec(), if multi { "round robin, reversed every round" } else { "ABBA" });
    eprintln!(
        "eval: {} of \"{}\" ({} patch{}) on {}; {} {}; {} {}; {} clock; {} boots per kernel ({}); suite {}; results in {}",
        all.iter().map(|s| format!("v{}", s.version)).collect::<Vec<_>>().join(" and "),
        series.subject(),
        series.patches.len(),
        if series.patches.len() == 1 { "" } else { "es" },
        o.tree.label,
        match &machine {
            Some(mr) => format!("on {} (kernels built from its config, booted there one by one)", mr.target.describe()),
            None => "QEMU".into(),
        },
        plan.arches.join(","),
        email::join_u32(&plan.cpus),
        if machine.is_some() { "CPUs" } else { "vCPU" },
        plan.clocks.join("+"),
        spec.reps,
        plan.order,
        spec.suite.name,
        dir.display()
    );

    let mut report = Report {
        format: report::FORMAT,
        tool: format!("mmeval {}", env!("CARGO_PKG_VERSION")),
        series: SeriesInfo {
            subject: series.subject(),
            version: series.version,
            all_versions: series.all_versions.clone(),
            slug: series.slug.clone(),
            author: series.author().cloned().unwrap_or(Addr { name: String::new(), email: String::new() }),
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
        },
        revisions: vec![],
        releases: None,
        reply_to: reply_target(&series),
        tree: TreeInfo {
            label: o.tree.label.clone(),
            base: String::new(),
            base_source: String::new(),
            release: None,
        },
        plan,
        apply: None,
        builds: vec![],
        boots: vec![],
        comparisons: vec![],
        machines: vec![],
        timing: vec![],
    };
    let report_path = dir.join("report.json");

    // Apply.
    let t = Instant::now();
    let repo = git2::Repository::open(&o.tree.repo_path)?;
    let (base, base_source) = apply::resolve_base(&repo, o.base.as_deref(), &series)?;
    report.tree.base = base.to_string();
    report.tree.base_source = base_source;
    report.tree.release = release_of(&o.tree, &report.tree.base);
    // Every revision on the same base; the first that does not apply ends the run.
    let mut tips: Vec<String> = Vec::new();
    for (s, variant) in all.iter().zip(variants.iter().skip(1)) {
        let refname = format!("refs/heads/eval/{}", s.slug);
        let applied = match apply::apply_series(&repo, s, base, &refname) {
            Ok(a) => a,
            Err(e) => match e.downcast::<apply::ApplyFailure>() {
                Ok(mut f) => {
                    if multi {
                        f.subject = format!("v{}: {}", s.version, f.subject);
                    }
                    report.apply = Some(f);
                    stage(&mut timing, "apply", t);
                    eprintln!("eval: {}", report.apply.as_ref().unwrap());
                    return finish(report, timing, &dir, &report_path, &from, cfg.thresholds.alpha);
                }
                Err(e) => return Err(e),
            },
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
    let tip = tips.join(",");

    // The plan decides whether finished boots can be reused.
    let key = PlanKey {
        revision: series.version,
        tree: o.tree.label.clone(),
        base: base.to_string(),
        tip: tip.clone(),
        arches: report.plan.arches.clone(),
        cpus: spec.cpus.clone(),
        clocks: report.plan.clocks.clone(),
        reps: spec.reps,
        suite: suite::to_text(&spec.suite),
        harness: harness::source_id()?,
        config: build::fragments_id(&spec.build)?,
        mem_mib: spec.mem_mib,
        llvm: spec.build.llvm,
        target: report.plan.target.clone(),
        host_config: spec.build.host_config.as_ref().map(|h| h.config.clone() + &h.modules),
    };
    let kernels: Vec<Kernel> = std::iter::once(base.to_string())
        .chain(tips.iter().cloned())
        .zip(&variants)
        .map(|(commit, variant)| Kernel { variant: variant.clone(), tree: o.tree.clone(), commit })
        .collect();
    let m = spec.measure(cfg.thresholds, machine.as_ref());
    let pending = measure(&m, serde_json::to_value(&key)?, &kernels, &dir, &mut report, &mut timing)?;
    let mut out = finish(report, timing, &dir, &report_path, &from, cfg.thresholds.alpha)?;
    out.pending = pending;
    Ok(out)
}

/// How to measure; shared by `eval` and `compare`.
pub struct Measure<'a> {
    /// Already narrowed to the machine when there is one (`Spec::for_target`).
    pub spec: &'a Spec,
    pub thresholds: Thresholds,
    pub machine: Option<&'a MachineRun>,
}

/// A kernel to measure: the first one of a list is the baseline of the comparisons.
pub struct Kernel {
    pub variant: String,
    pub tree: TreeHandle,
    pub commit: String,
}

fn stage(timing: &mut Vec<StageTime>, name: &str, t: Instant) {
    timing.push(StageTime { stage: name.into(), seconds: t.elapsed().as_secs_f64() });
}

/// Builds every kernel for every architecture, boots them interleaved (each finished
/// boot appended to records.jsonl), and compares every variant with the first. Boots of
/// another plan (`key`) are moved aside, never mixed in; `fresh` discards them.
pub fn measure(
    m: &Measure,
    key: serde_json::Value,
    kernels: &[Kernel],
    dir: &Path,
    report: &mut Report,
    timing: &mut Vec<StageTime>,
) -> Result<Option<String>> {
    let report_path = dir.join("report.json");
    let plan_path = dir.join("plan.json");
    let records_path = dir.join("records.jsonl");
    if let Ok(old) = std::fs::read_to_string(&plan_path) {
        let same = serde_json::from_str::<serde_json::Value>(&old).map(|k| k == key).unwrap_or(false);
        if m.spec.fresh {
            let _ = std::fs::remove_file(&records_path);
        } else if !same {
            // Another plan's boots must not mix with this one's; keep them, aside.
            let id = git2::Oid::hash_object(git2::ObjectType::Blob, old.as_bytes())?.to_string();
            let aside = dir.join(format!("previous-{}", &id[..8]));
            std::fs::create_dir_all(&aside)?;
            for name in [
                "plan.json",
                "records.jsonl",
                "report.json",
                "reply.eml",
                "report.eml",
                "report.html",
                "boots",
            ] {
                if dir.join(name).exists() {
                    std::fs::rename(dir.join(name), aside.join(name))?;
                }
            }
            eprintln!("eval: the plan changed; the earlier evaluation is kept in {}", aside.display());
        }
    } else if m.spec.fresh {
        let _ = std::fs::remove_file(&records_path);
    }
    write_json(&plan_path, &key)?;
    write_json(&report_path, report)?;

    // Builds: all baselines first, then all patched trees (one checkout switch each).
    let t = Instant::now();
    // Variant by variant: each architecture's build directory sees the baseline first.
    let mut results = Vec::new();
    for k in kernels {
        for arch in &m.spec.arches {
            results.push(build::BuildResult {
                variant: k.variant.clone(),
                arch: arch.name.clone(),
                commit: k.commit.clone(),
                outcome: build::build(&k.tree, &k.commit, arch, &m.spec.build, &k.variant),
            });
        }
    }
    let variants: Vec<String> = kernels.iter().map(|k| k.variant.clone()).collect();
    let mut images: BTreeMap<(String, String), PathBuf> = BTreeMap::new();
    for r in results {
        let entry = match &r.outcome {
            Ok(a) => {
                images.insert((r.arch.clone(), r.variant.clone()), a.image.clone());
                BuildEntry {
                    arch: r.arch.clone(),
                    variant: r.variant.clone(),
                    commit: r.commit.clone(),
                    ok: true,
                    compiler: a.meta.compiler.clone(),
                    // A stored build may have been made for another machine with the
                    // same config: name this one.
                    fragments: match &m.spec.build.host_config {
                        Some(h) => std::iter::once(format!("config of {}", h.source))
                            .chain(a.meta.fragments.iter().skip(1).cloned())
                            .collect(),
                        None => a.meta.fragments.clone(),
                    },
                    config_hash: a.meta.config_hash.clone(),
                    seconds: if a.reused { 0.0 } else { a.meta.seconds },
                    reused: a.reused,
                    step: None,
                    errors: vec![],
                    log: a.dir.join("build.log").display().to_string(),
                }
            }
            Err(e) => match e.downcast_ref::<build::BuildFailure>() {
                Some(f) => BuildEntry {
                    arch: r.arch.clone(),
                    variant: r.variant.clone(),
                    commit: r.commit.clone(),
                    ok: false,
                    compiler: String::new(),
                    fragments: vec![],
                    config_hash: String::new(),
                    seconds: 0.0,
                    reused: false,
                    step: Some(f.step.clone()),
                    errors: f.errors.clone(),
                    log: f.log.display().to_string(),
                },
                // Not the tree's fault (a missing tool, a full disk): stop and say so.
                None => return Err(anyhow::anyhow!("{e:#}")),
            },
        };
        eprintln!(
            "eval: build {} {} {}",
            entry.arch,
            entry.variant,
            if entry.ok {
                if entry.reused {
                    "(stored)"
                } else {
                    "ok"
                }
            } else {
                "FAILED"
            }
        );
        report.builds.push(entry);
    }
    stage(timing, "build", t);
    write_json(&report_path, report)?;

    // Boots, interleaved: round by round; within a round A B, then B A in the next.
    let t = Instant::now();
    let mut done: Vec<Stored> = std::fs::read_to_string(&records_path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let mut seen: HashSet<(String, u32, String, String, usize)> = done
        .iter()
        .map(|s| {
            (
                s.record.provenance.arch.clone(),
                s.record.provenance.vcpus,
                s.record.provenance.clock.clone(),
                s.variant.clone(),
                s.rep,
            )
        })
        .collect();
    if !done.is_empty() {
        eprintln!("eval: resuming: {} boots already done", done.len());
    }
    let mut booted: Vec<&Arch> = Vec::new();
    let mut pending = None;
    if let Some(machine) = m.machine {
        let arch = &m.spec.arches[0];
        if variants.iter().all(|v| images.contains_key(&(arch.name.clone(), v.clone()))) {
            booted.push(arch);
            let commits: BTreeMap<String, String> =
                kernels.iter().map(|k| (k.variant.clone(), k.commit.clone())).collect();
            let ctx = MetalBoots {
                m,
                machine,
                arch,
                variants: &variants,
                images: &images,
                commits: &commits,
                dir,
                records_path: &records_path,
            };
            pending = metal_boots(&ctx, &mut done, &mut seen)?;
        }
    } else {
        let mut prepared = Vec::new();
        for arch in &m.spec.arches {
            if !variants.iter().all(|v| images.contains_key(&(arch.name.clone(), v.clone()))) {
                continue; // a build failed: nothing to compare on this arch
            }
            build::check_qemu(arch)?;
            let initrd = harness::initramfs(arch, &m.spec.suite)?;
            let missing = m.spec.cpus.iter().any(|&c| {
                m.spec.clocks.iter().any(|&k| {
                    (0..m.spec.reps).any(|rep| {
                        variants.iter().any(|v| {
                            !seen.contains(&(arch.name.clone(), c, clock_name(k).to_string(), v.clone(), rep))
                        })
                    })
                })
            });
            let accel = match m.spec.accel {
                _ if !missing => Accel::Tcg, // nothing left to boot: no probe needed
                AccelChoice::Tcg => Accel::Tcg,
                AccelChoice::Kvm => Accel::Kvm,
                AccelChoice::Auto => {
                    let probe = harness::initramfs(arch, &run::probe_suite())?;
                    let k = &images[&(arch.name.clone(), variants[0].clone())];
                    if run::kvm_usable(arch, k, &probe, dir) {
                        Accel::Kvm
                    } else {
                        Accel::Tcg
                    }
                }
            };
            prepared.push((arch, initrd, accel));
        }
        let expected =
            prepared.len() * m.spec.cpus.len() * m.spec.clocks.len() * m.spec.reps * variants.len();
        let mut count = done.len();
        for rep in 0..m.spec.reps {
            for (arch, initrd, accel) in &prepared {
                for &cpus in &m.spec.cpus {
                    for &clock in &m.spec.clocks {
                        let order: Vec<&String> = if rep % 2 == 0 {
                            variants.iter().collect()
                        } else {
                            variants.iter().rev().collect()
                        };
                        for variant in order {
                            let k = (
                                arch.name.clone(),
                                cpus,
                                clock_name(clock).to_string(),
                                variant.clone(),
                                rep,
                            );
                            if seen.contains(&k) {
                                continue;
                            }
                            let accel = if clock == Clock::Instructions { Accel::Tcg } else { *accel };
                            let kernel = &images[&(arch.name.clone(), variant.clone())];
                            let log = dir.join("boots").join(format!(
                                "{}-{}cpu-{}-{}-{}.log",
                                arch.name,
                                cpus,
                                clock_name(clock),
                                variant,
                                rep + 1
                            ));
                            let b = QemuBoot {
                                arch,
                                kernel,
                                kernel_release: report.tree.release.as_deref().unwrap_or(""),
                                initrd,
                                cpus,
                                mem_mib: m.spec.mem_mib,
                                accel,
                                clock,
                                deadline: Duration::from_secs(m.spec.suite.deadline_s),
                            };
                            let record = run::qemu_boot(&b, &log)?;
                            count += 1;
                            eprintln!(
                                "eval: boot {count}/{expected}: {} {} {}cpu {} rep {}: {:?}, {} results, {} failed runs ({:.1} s)",
                                arch.name,
                                variant,
                                cpus,
                                clock_name(clock),
                                rep + 1,
                                record.boot.status,
                                record.boot.results.len(),
                                record.boot.failures.len(),
                                record.seconds
                            );
                            let stored = Stored { variant: variant.clone(), rep, record };
                            let mut f =
                                std::fs::OpenOptions::new().create(true).append(true).open(&records_path)?;
                            std::io::Write::write_all(
                                &mut f,
                                format!("{}\n", serde_json::to_string(&stored)?).as_bytes(),
                            )?;
                            seen.insert(k);
                            done.push(stored);
                        }
                    }
                }
            }
        }
        booted.extend(prepared.iter().map(|(a, _, _)| *a));
    }
    stage(timing, "boots", t);

    // Compare and render.
    let t = Instant::now();
    let wanted: HashSet<(String, u32, String)> = booted
        .iter()
        .flat_map(|a| {
            m.spec.cpus.iter().flat_map(move |c| {
                m.spec.clocks.iter().map(move |k| (a.name.clone(), *c, clock_name(*k).to_string()))
            })
        })
        .collect();
    done.retain(|s| {
        wanted.contains(&(
            s.record.provenance.arch.clone(),
            s.record.provenance.vcpus,
            s.record.provenance.clock.clone(),
        )) && s.rep < m.spec.reps
    });
    done.sort_by_key(|s| {
        (
            s.record.provenance.arch.clone(),
            s.record.provenance.vcpus,
            s.record.provenance.clock.clone(),
            s.rep,
            s.variant.clone(),
        )
    });
    report.boots = done.iter().map(boot_entry).collect();
    report.machines = machines(&done, m.spec.mem_mib, m.machine);
    let mut tagged = Vec::new();
    for s in &done {
        let p = &s.record.provenance;
        for run in &m.spec.suite.runs {
            tagged.push(Tagged {
                arch: &p.arch,
                accel: &p.accel,
                clock: &p.clock,
                cpus: p.vcpus,
                variant: &s.variant,
                sample: s.record.boot.results.iter().find(|r| r.id == run.id),
                id: &run.id,
            });
        }
    }
    report.comparisons = variants
        .iter()
        .skip(1)
        .flat_map(|v| compare::compare(&tagged, &variants[0], v, &m.thresholds))
        .collect();
    stage(timing, "compare", t);
    Ok(pending)
}

type BootKey = (String, u32, String, String, usize);

struct MetalBoots<'a> {
    m: &'a Measure<'a>,
    machine: &'a MachineRun,
    arch: &'a Arch,
    variants: &'a [String],
    images: &'a BTreeMap<(String, String), PathBuf>,
    commits: &'a BTreeMap<String, String>,
    dir: &'a Path,
    records_path: &'a Path,
}

fn append(records_path: &Path, stored: &Stored) -> Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(records_path)?;
    std::io::Write::write_all(&mut f, format!("{}\n", serde_json::to_string(stored)?).as_bytes())?;
    Ok(())
}

/// A boot on a real machine that never reached the harness, as a record.
fn failed_metal_boot(
    c: &MetalBoots,
    status: serial::BootStatus,
    why: String,
    log: &Path,
) -> Result<BootRecord> {
    std::fs::create_dir_all(log.parent().unwrap())?;
    std::fs::write(log, format!("{why}\n"))?;
    let boot = serial::Boot {
        status,
        suite: None,
        env: None,
        results: vec![],
        failures: vec![],
        warnings: vec![],
        excerpt: vec![why],
        corrupt_lines: 0,
        repaired_lines: 0,
    };
    let mut r = run::metal_record(boot, 0.0, log, Some(c.machine.target.describe()), &c.arch.name);
    r.provenance.vcpus = c.m.spec.cpus[0];
    Ok(r)
}

/// The boots on a real machine, in ABBA order, each a fresh boot of the kernel it is
/// for. Over ssh every kernel is kexec'ed in turn and the machine is taken home at the
/// end; on this host the kernel found running is measured when it is the next one
/// wanted, and the returned text says what to boot next.
fn metal_boots(
    c: &MetalBoots,
    done: &mut Vec<Stored>,
    seen: &mut HashSet<BootKey>,
) -> Result<Option<String>> {
    let (m, t, home) = (c.m, &c.machine.target, &c.machine.home);
    let harness = harness::build_harness(c.arch)?;
    let cpus = m.spec.cpus[0];
    let mut used: HashSet<String> = done.iter().filter_map(|s| s.record.boot_id.clone()).collect();
    let mut facts = c.machine.now.clone();
    let expected = m.spec.reps * c.variants.len();
    for rep in 0..m.spec.reps {
        let order: Vec<&String> =
            if rep % 2 == 0 { c.variants.iter().collect() } else { c.variants.iter().rev().collect() };
        for variant in order {
            let key = (c.arch.name.clone(), cpus, "wall".to_string(), variant.clone(), rep);
            if seen.contains(&key) {
                continue;
            }
            let token = metal::token(variant, &c.commits[variant]);
            let image = &c.images[&(c.arch.name.clone(), variant.clone())];
            let cmdline = metal::test_cmdline(&home.facts.cmdline, &token);
            let log = c.dir.join("boots").join(format!("{}-metal-{variant}-{}.log", c.arch.name, rep + 1));
            let running = |f: &metal::Facts| {
                f.cmdline.split_whitespace().any(|w| w == token) && !used.contains(&f.boot_id)
            };
            if !running(&facts) {
                if *t == Target::Local {
                    return Ok(Some(format!(
                        "{} of {expected} boots done; next boot {variant} (round {}):\n  {}\nthen run this command again",
                        done.len(),
                        rep + 1,
                        metal::boot_instructions(image, home.facts.initrd.as_deref(), &cmdline)
                    )));
                }
                eprintln!("eval: kexec {} into {variant} ({}) for round {}", t.describe(), &token, rep + 1);
                let remote = metal::upload(t, image)?;
                let back = metal::kexec_into(
                    t,
                    &remote,
                    home.facts.initrd.as_deref(),
                    &cmdline,
                    &facts.boot_id,
                    m.spec.boot_timeout,
                )?;
                match back {
                    None => {
                        let why = format!(
                            "{} did not answer within {} s of the kexec into {variant}",
                            t.describe(),
                            m.spec.boot_timeout.as_secs()
                        );
                        let r = failed_metal_boot(c, serial::BootStatus::Timeout, why.clone(), &log)?;
                        let stored = Stored { variant: variant.clone(), rep, record: r };
                        append(c.records_path, &stored)?;
                        bail!(
                            "{why}: bring it back (reset it), then run this again; finished boots are kept"
                        );
                    }
                    Some(f) => facts = f,
                }
                if !running(&facts) {
                    // It rebooted, but not into our kernel: it failed to boot, or
                    // panicked and the machine fell back to its default kernel.
                    let why = format!(
                        "{} came back running {} without {token}: the {variant} kernel did not boot (or it panicked and the machine rebooted)",
                        t.describe(),
                        facts.release
                    );
                    eprintln!("eval: {why}");
                    let r = failed_metal_boot(c, serial::BootStatus::NoHarness, why, &log)?;
                    used.insert(facts.boot_id.clone());
                    let stored = Stored { variant: variant.clone(), rep, record: r };
                    append(c.records_path, &stored)?;
                    seen.insert(key);
                    done.push(stored);
                    continue;
                }
            }
            let (boot, seconds) = metal::run_harness(t, &harness, &m.spec.suite, &log)?;
            let mut record = run::metal_record(boot, seconds, &log, Some(t.describe()), &c.arch.name);
            record.boot_id = Some(facts.boot_id.clone());
            used.insert(facts.boot_id.clone());
            eprintln!(
                "eval: boot {}/{expected}: {} {variant} on {} ({}) rep {}: {:?}, {} results, {} failed runs ({:.1} s)",
                done.len() + 1,
                c.arch.name,
                t.describe(),
                record.provenance.kernel,
                rep + 1,
                record.boot.status,
                record.boot.results.len(),
                record.boot.failures.len(),
                record.seconds
            );
            let stored = Stored { variant: variant.clone(), rep, record };
            append(c.records_path, &stored)?;
            seen.insert(key);
            done.push(stored);
        }
    }
    // Everything measured: the machine goes back to its own kernel.
    let in_test_kernel = facts.cmdline.split_whitespace().any(|w| w.starts_with("mmeval.kernel="));
    if !in_test_kernel {
        return Ok(None);
    }
    let home_line = metal::home_cmdline(&home.facts.cmdline);
    match (t, &home.facts.image) {
        (Target::Ssh(_), Some(image)) => {
            eprintln!("eval: kexec {} back into its own kernel {}", t.describe(), home.facts.release);
            match metal::kexec_into(
                t,
                image,
                home.facts.initrd.as_deref(),
                &home_line,
                &facts.boot_id,
                m.spec.boot_timeout,
            )? {
                Some(f) if f.release == home.facts.release => Ok(None),
                _ => Ok(Some(format!(
                    "{} did not come back to {}: reboot it",
                    t.describe(),
                    home.facts.release
                ))),
            }
        }
        (Target::Ssh(_), None) => Ok(Some(format!(
            "{} still runs a test kernel ({} is not in /boot): reboot it into its own kernel",
            t.describe(),
            home.facts.release
        ))),
        (Target::Local, image) => Ok(Some(match image {
            Some(i) => format!(
                "all boots done; back to {} with:\n  {}",
                home.facts.release,
                metal::boot_instructions(Path::new(i), home.facts.initrd.as_deref(), &home_line)
            ),
            None => format!("all boots done; reboot into your own kernel ({})", home.facts.release),
        })),
    }
}

/// Sender, date and a fresh Message-ID (the time and the report's content) for a mail.
fn envelope(from: &Addr, report: &Report) -> Result<email::Envelope> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    let id = git2::Oid::hash_object(git2::ObjectType::Blob, serde_json::to_string(report)?.as_bytes())?
        .to_string();
    let domain =
        from.email.rsplit_once('@').map(|(_, d)| d.to_string()).unwrap_or_else(|| "localhost".into());
    Ok(email::Envelope {
        from: from.clone(),
        date: email::rfc2822(now, 0),
        message_id: format!("{now}.{}.mmeval@{domain}", &id[..12]),
    })
}

fn boot_entry(s: &Stored) -> BootEntry {
    let r = &s.record;
    BootEntry {
        arch: r.provenance.arch.clone(),
        variant: s.variant.clone(),
        cpus: r.provenance.vcpus,
        clock: r.provenance.clock.clone(),
        accel: r.provenance.accel.clone(),
        rep: s.rep,
        status: r.boot.status,
        kernel: r.provenance.kernel.clone(),
        results: r.boot.results.len(),
        failures: r.boot.failures.clone(),
        warnings: r.boot.warnings.clone(),
        excerpt: r.boot.excerpt.clone(),
        corrupt_lines: r.boot.corrupt_lines,
        seconds: r.seconds,
        log: r.log.display().to_string(),
    }
}

fn machines(done: &[Stored], mem_mib: u32, machine: Option<&MachineRun>) -> Vec<Machine> {
    let table = crate::arch::table().unwrap_or_default();
    let mut out: Vec<Machine> = Vec::new();
    for s in done {
        let p = &s.record.provenance;
        let env = s.record.boot.env.clone().unwrap_or_default();
        if let Some(m) = out.iter_mut().find(|m| m.arch == p.arch && m.accel == p.accel) {
            if !m.vcpus.contains(&p.vcpus) {
                m.vcpus.push(p.vcpus);
                m.vcpus.sort();
            }
            continue;
        }
        if let (Some(mr), "metal") = (machine, p.accel.as_str()) {
            out.push(Machine {
                arch: p.arch.clone(),
                accel: p.accel.clone(),
                cpu_model: p.cpu_model.clone(),
                emulator: String::new(),
                machine: mr.home.facts.describe(&mr.target),
                vcpus: vec![p.vcpus],
                mem_mib: 0,
                page_size: env.page_size,
                thp: env.thp,
            });
            continue;
        }
        let a = table.get(&p.arch);
        out.push(Machine {
            arch: p.arch.clone(),
            accel: p.accel.clone(),
            cpu_model: p.cpu_model.clone(),
            emulator: a.map(|a| qemu_version(&a.qemu)).unwrap_or_default(),
            machine: a.map(|a| format!("{} -cpu {}", a.machine, a.cpu)).unwrap_or_default(),
            vcpus: vec![p.vcpus],
            mem_mib,
            page_size: env.page_size,
            thp: env.thp,
        });
    }
    out
}

pub fn qemu_version(bin: &str) -> String {
    let sh = match xshell::Shell::new() {
        Ok(s) => s,
        Err(_) => return "QEMU".into(),
    };
    let v = xshell::cmd!(sh, "{bin} --version").quiet().read().unwrap_or_default();
    v.lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(3))
        .map(|v| format!("QEMU {v}"))
        .unwrap_or_else(|| "QEMU".into())
}

fn finish(
    mut report: Report,
    timing: Vec<StageTime>,
    dir: &Path,
    report_path: &Path,
    from: &Addr,
    alpha: f64,
) -> Result<EvalOutcome> {
    let t = Instant::now();
    report.timing = timing;
    let env = envelope(from, &report)?;
    let template_path = reftree::project_root().join("templates/reply.eml.j2");
    let template = std::fs::read_to_string(&template_path)
        .with_context(|| format!("cannot read {}", template_path.display()))?;
    let text = email::render(&report, &env, &template)?;
    let email_path = dir.join("reply.eml");
    std::fs::write(&email_path, &text)?;
    let page_template = reftree::project_root().join("templates/report.html.j2");
    let page_template = std::fs::read_to_string(&page_template)
        .with_context(|| format!("cannot read {}", page_template.display()))?;
    std::fs::write(dir.join("report.html"), crate::html::render(&report, &page_template, alpha)?)?;
    report.timing.push(StageTime { stage: "render".into(), seconds: t.elapsed().as_secs_f64() });
    write_json(report_path, &report)?;
    Ok(EvalOutcome { dir: dir.to_path_buf(), report, email: email_path, pending: None })
}

/// `cargo xtask compare A B`: two reference trees (or two commits of `--tree`), the
/// same builds, interleaved boots, statistics and storage as `eval`, and a regression
/// report that starts a new thread.
pub struct CompareOptions {
    pub a: String,
    pub b: String,
    /// Compare two commits of this tree instead of two reference trees.
    pub tree: Option<PathBuf>,
    pub spec: Spec,
}

pub fn compare_trees(o: &CompareOptions) -> Result<EvalOutcome> {
    let cfg = config()?;
    let from = tester(o.spec.from.clone(), &cfg)?;
    let mut timing: Vec<StageTime> = Vec::new();
    let t = Instant::now();
    // Two commits of --tree, or the HEAD of two reference trees (resolve provisions them).
    let side = |spec: &str| -> Result<(TreeHandle, String)> {
        let (h, rev) = match &o.tree {
            Some(dir) => (crate::tree::resolve(Some(dir), None)?, spec),
            None => (crate::tree::resolve(None, Some(spec))?, "HEAD"),
        };
        let c = crate::tree::resolve_commit(&h, rev)?;
        Ok((h, c))
    };
    let (ta, ca) = side(&o.a)?;
    let (tb, cb) = side(&o.b)?;
    stage(&mut timing, "trees", t);
    let safe = |x: &str| {
        x.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '-' }).collect::<String>()
    };
    let dir = o.spec.out_root.join(format!("compare-{}-{}", safe(&o.a), safe(&o.b)));
    std::fs::create_dir_all(&dir)?;
    let (spec, machine) = o.spec.for_target(&dir)?;
    let (la, lb) = (o.a.clone(), if o.a == o.b { format!("{}-b", o.b) } else { o.b.clone() });
    let plan = spec.plan(vec![la.clone(), lb.clone()], "ABBA");
    eprintln!(
        "compare: {} ({}) against {} ({}); {}; {} {}; {} clock; {} boots per kernel (ABBA); suite {}; results in {}",
        la,
        &ca[..12],
        lb,
        &cb[..12],
        plan.arches.join(","),
        email::join_u32(&plan.cpus),
        if machine.is_some() { "CPUs" } else { "vCPU" },
        plan.clocks.join("+"),
        spec.reps,
        spec.suite.name,
        dir.display()
    );
    let release = |t: &TreeHandle, c: &str, label: &str| crate::report::ReleaseInfo {
        label: label.to_string(),
        tree: t.label.clone(),
        commit: c.to_string(),
        release: release_of(t, c),
    };
    let releases = crate::report::Releases { a: release(&ta, &ca, &la), b: release(&tb, &cb, &lb) };
    let nobody = Addr { name: String::new(), email: String::new() };
    let mut report = Report {
        format: report::FORMAT,
        tool: format!("mmeval {}", env!("CARGO_PKG_VERSION")),
        series: SeriesInfo {
            subject: format!("{la} against {lb}"),
            version: 0,
            all_versions: vec![],
            slug: dir.file_name().unwrap().to_string_lossy().into_owned(),
            author: nobody.clone(),
            patches: vec![],
            base_commit: None,
        },
        revisions: vec![],
        releases: Some(releases),
        reply_to: ReplyTarget {
            subject: String::new(),
            message_id: None,
            references: vec![],
            from: nobody,
            to: vec![],
            cc: vec![],
            date: None,
            body: String::new(),
        },
        tree: TreeInfo {
            label: ta.label.clone(),
            base: ca.clone(),
            base_source: "compare".into(),
            release: release_of(&ta, &ca),
        },
        plan,
        apply: None,
        builds: vec![],
        boots: vec![],
        comparisons: vec![],
        machines: vec![],
        timing: vec![],
    };
    let key = serde_json::json!({
        "compare": [&la, &ca, &lb, &cb],
        "arches": report.plan.arches, "cpus": spec.cpus, "clocks": report.plan.clocks, "reps": spec.reps,
        "suite": suite::to_text(&spec.suite), "harness": harness::source_id()?, "config": build::fragments_id(&spec.build)?, "mem": spec.mem_mib, "llvm": spec.build.llvm,
        "target": report.plan.target, "host_config": spec.build.host_config.as_ref().map(|h| h.config.clone() + &h.modules),
    });
    let kernels = [
        Kernel { variant: la.clone(), tree: ta, commit: ca },
        Kernel { variant: lb.clone(), tree: tb, commit: cb },
    ];
    let m = spec.measure(cfg.thresholds, machine.as_ref());
    let pending = measure(&m, key, &kernels, &dir, &mut report, &mut timing)?;

    let t = Instant::now();
    report.timing = timing;
    let env = envelope(&from, &report)?;
    let read = |name: &str| -> Result<String> {
        let p = reftree::project_root().join("templates").join(name);
        std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))
    };
    let text = email::render_regression(
        &report,
        &env,
        &cfg.regressions.to,
        &cfg.regressions.cc,
        &read("regression.eml.j2")?,
    )?;
    let email_path = dir.join("report.eml");
    std::fs::write(&email_path, text)?;
    std::fs::write(
        dir.join("report.html"),
        crate::html::render(&report, &read("report.html.j2")?, cfg.thresholds.alpha)?,
    )?;
    report.timing.push(StageTime { stage: "render".into(), seconds: t.elapsed().as_secs_f64() });
    write_json(&dir.join("report.json"), &report)?;
    Ok(EvalOutcome { dir, report, email: email_path, pending })
}
