//! The evaluation's one document: what was asked, what happened at every stage, the
//! comparisons, and how long it all took. Written as JSON after every stage (so a crash
//! loses nothing finished) and rendered into the email and the HTML page. Pure types.

use crate::apply::ApplyFailure;
use crate::compare::{self, Comparison, Tagged, Thresholds, Verdict};
use crate::mail::Addr;
use crate::model::{Accel, ArchName, Clock, Target, Variant};
use crate::record::Stored;
use crate::serial::{BootStatus, RunFailure};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

mod assemble;
pub use assemble::{boot_entry, comparisons, lab_info, machines, step_comparisons, stopped_comparisons};

/// Bumped when a field changes meaning; readers check it.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub format: u32,
    pub tool: String,
    pub series: SeriesInfo,
    /// With several revisions evaluated at once (`--rev 1,2`): each, as its variant.
    #[serde(default)]
    pub revisions: Vec<RevisionInfo>,
    /// For `compare`: the two trees compared (no series then).
    #[serde(default)]
    pub releases: Option<Releases>,
    /// The message the email answers (cover letter, or the only patch).
    pub reply_to: ReplyTarget,
    pub tree: TreeInfo,
    pub plan: PlanInfo,
    pub apply: Option<ApplyFailure>,
    pub builds: Vec<BuildEntry>,
    pub boots: Vec<BootEntry>,
    pub comparisons: Vec<Comparison>,
    pub machines: Vec<Machine>,
    pub timing: Vec<StageTime>,
    /// `--reps auto`: per cell, how many boots it took and why it stopped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stops: Vec<CellStop>,
    /// `--lava`: the lab and its devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lab: Option<LabInfo>,
    /// `--per-patch`: the kernel after each patch (variants `patch1`...), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_patch: Vec<StepInfo>,
    /// `--per-patch`: each patch against the tree before it (patch k vs k-1; the
    /// first against the baseline).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Comparison>,
}

/// One patch of a `--per-patch` run: its kernel's variant and the patch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepInfo {
    pub variant: Variant,
    pub patch: PatchInfo,
}

impl Report {
    /// A report of what was asked, before anything ran: every stage's part empty.
    pub fn new(series: SeriesInfo, reply_to: ReplyTarget, tree: TreeInfo, plan: PlanInfo) -> Report {
        Report {
            format: FORMAT,
            tool: format!("mmeval {}", env!("CARGO_PKG_VERSION")),
            series,
            revisions: vec![],
            releases: None,
            reply_to,
            tree,
            plan,
            apply: None,
            builds: vec![],
            boots: vec![],
            comparisons: vec![],
            machines: vec![],
            timing: vec![],
            stops: vec![],
            lab: None,
            per_patch: vec![],
            steps: vec![],
        }
    }
}

impl ReplyTarget {
    /// Nothing to reply to: compare and bisect start a thread of their own.
    pub fn none() -> ReplyTarget {
        ReplyTarget {
            subject: String::new(),
            message_id: None,
            references: vec![],
            from: Addr { name: String::new(), email: String::new() },
            to: vec![],
            cc: vec![],
            date: None,
            body: String::new(),
        }
    }
}

impl SeriesInfo {
    /// A run with no series (compare, bisect): its subject and directory name.
    pub fn none(subject: String, slug: String) -> SeriesInfo {
        SeriesInfo {
            subject,
            version: 0,
            all_versions: vec![],
            slug,
            author: Addr { name: String::new(), email: String::new() },
            patches: vec![],
            base_commit: None,
            source: None,
        }
    }
}

/// How a cell of a `--reps auto` run ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CellStop {
    pub arch: ArchName,
    pub cpus: u32,
    pub clock: Clock,
    /// The boots of each kernel its statistics use (its stopping look).
    pub boots: usize,
    /// Boots that ran in the cell, every kernel counted (a boot started beside the
    /// deciding one is kept, and left out of the statistics).
    pub boots_run: usize,
    pub undecided: Vec<String>,
    /// Given up on before the budget: neither verdict was in its reach.
    #[serde(default)]
    pub out_of_reach: Vec<String>,
    /// Decided as no change larger than `within_pct` (an equivalence decision).
    #[serde(default)]
    pub equivalent: Vec<String>,
    #[serde(default)]
    pub within_pct: Option<f64>,
    pub why: String,
}

impl CellStop {
    /// Whether a workload (named as in its comparisons: id, or "id (variant)") was left
    /// open: undecided at the budget, or given up on as out of its reach.
    pub fn left_open(&self, workload: &str, variant: &str) -> bool {
        names(&self.undecided, workload, variant) || names(&self.out_of_reach, workload, variant)
    }

    /// The band a workload was shown to stay within, if it was decided as no change.
    pub fn within(&self, workload: &str, variant: &str) -> Option<f64> {
        names(&self.equivalent, workload, variant).then_some(self.within_pct?)
    }
}

/// Whether `list` (of the stopping rule's names: id, or "id (variant)" when several
/// variants share a cell) names this row.
fn names(list: &[String], workload: &str, variant: &str) -> bool {
    let named = format!("{workload} ({variant})");
    list.iter().any(|w| w == workload || *w == named)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SeriesInfo {
    pub subject: String,
    pub version: u32,
    pub all_versions: Vec<u32>,
    pub slug: String,
    pub author: Addr,
    pub patches: Vec<PatchInfo>,
    pub base_commit: Option<String>,
    /// The archive the thread was fetched from (its t.mbox.gz URL); the thread itself
    /// is kept as `thread.mbox.gz` beside the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Releases {
    pub a: ReleaseInfo,
    pub b: ReleaseInfo,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReleaseInfo {
    /// The variant name: the reference name (v6.12) or the commit as given.
    pub label: String,
    pub tree: String,
    pub commit: String,
    pub release: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RevisionInfo {
    pub variant: Variant,
    pub version: u32,
    pub subject: String,
    pub patches: Vec<PatchInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PatchInfo {
    pub number: u32,
    pub total: u32,
    pub subject: String,
    /// The commit it became, when it applied.
    pub commit: Option<String>,
    /// How it applied when not plainly (offsets, three-way, another revision's patch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReplyTarget {
    pub subject: String,
    pub message_id: Option<String>,
    pub references: Vec<String>,
    pub from: Addr,
    pub to: Vec<Addr>,
    pub cc: Vec<Addr>,
    /// RFC 2822 date of the message, for the attribution line.
    pub date: Option<String>,
    pub body: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TreeInfo {
    pub label: String,
    pub base: String,
    pub base_source: String,
    pub release: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlanInfo {
    pub arches: Vec<ArchName>,
    pub cpus: Vec<u32>,
    pub clocks: Vec<Clock>,
    pub reps: usize,
    pub suite: String,
    pub suite_runs: usize,
    /// "ABBA": boots of the variants alternate, the order flipping every round.
    pub order: String,
    /// qemu, metal, or ssh:<dest>.
    pub target: Target,
    pub mem_mib: u32,
    pub variants: Vec<Variant>,
    /// `--reps auto`: the stopping rule, in words; `reps` is then the budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopping: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BuildEntry {
    pub arch: ArchName,
    pub variant: Variant,
    pub commit: String,
    pub ok: bool,
    pub compiler: String,
    pub fragments: Vec<String>,
    pub config_hash: String,
    pub seconds: f64,
    pub reused: bool,
    /// For a failed build: the step and the compiler's error lines.
    pub step: Option<String>,
    pub errors: Vec<String>,
    pub log: String,
    /// Built from a machine's own config: where that config came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_config: Option<String>,
    /// The preemption model the build's .config ended with (`PREEMPT`, `PREEMPT_LAZY` ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempt: Option<String>,
    /// Whether the tree's make ran in the build sandbox (None: not recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandboxed: Option<bool>,
}

impl BuildEntry {
    /// Where the machine config of a build from one came from.
    pub fn machine_config(&self) -> Option<&str> {
        self.machine_config.as_deref()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BootEntry {
    pub arch: ArchName,
    pub variant: Variant,
    pub cpus: u32,
    pub clock: Clock,
    pub accel: Accel,
    pub rep: usize,
    pub status: BootStatus,
    pub kernel: String,
    pub results: usize,
    pub failures: Vec<RunFailure>,
    pub warnings: Vec<String>,
    pub excerpt: Vec<String>,
    pub corrupt_lines: usize,
    pub seconds: f64,
    pub log: String,
    /// On a LAVA lab: the job that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<crate::lava::LabJob>,
}

/// The LAVA lab the boots ran on: where, which devices, and how its QEMU ran them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LabInfo {
    pub url: String,
    pub device_type: String,
    /// Every device that ran a boot.
    pub devices: Vec<String>,
    pub jobs: usize,
    /// The lab's QEMU (its package version) and a command line it ran, paths cut.
    pub qemu: Option<String>,
    pub command: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Machine {
    pub arch: ArchName,
    pub accel: Accel,
    pub cpu_model: String,
    pub emulator: String,
    pub machine: String,
    pub vcpus: Vec<u32>,
    pub mem_mib: u32,
    pub page_size: u64,
    pub thp: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageTime {
    pub stage: String,
    pub seconds: f64,
    /// How a stage used the machine (boots: how many, how many at a time, idle time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Report {
    /// Everything requested built, booted and ran: the condition for Tested-by.
    pub fn all_passed(&self) -> bool {
        self.apply.is_none()
            && !self.builds.is_empty()
            && self.builds.iter().all(|b| b.ok)
            && !self.boots.is_empty()
            && self
                .boots
                .iter()
                .all(|b| b.status == BootStatus::Ok && b.failures.is_empty() && b.corrupt_lines == 0)
            && self.expected_boots() == self.boots.len()
    }

    pub fn expected_boots(&self) -> usize {
        if self.plan.stopping.is_some() {
            // Every cell that stopped took what it ran; any other, its whole budget.
            let cells = self.plan.arches.len() * self.plan.cpus.len() * self.plan.clocks.len();
            let open = cells.saturating_sub(self.stops.len());
            return self.stops.iter().map(|s| s.boots_run).sum::<usize>()
                + open * self.plan.reps * self.plan.variants.len();
        }
        self.plan.arches.len()
            * self.plan.cpus.len()
            * self.plan.clocks.len()
            * self.plan.reps
            * self.plan.variants.len()
    }

    pub fn failed_boots(&self) -> Vec<&BootEntry> {
        self.boots.iter().filter(|b| b.status != BootStatus::Ok).collect()
    }

    /// The variants compared with the baseline, in the plan's order.
    pub fn new_variants(&self) -> Vec<Variant> {
        self.plan.variants.iter().skip(1).cloned().collect()
    }

    /// The boots of each kernel behind a comparison: its cell's stopping look under
    /// `--reps auto`, else the fixed count.
    pub fn boots_of(&self, c: &Comparison) -> usize {
        self.stop_of(&c.cell()).map_or(self.plan.reps, |s| s.boots)
    }

    /// How many boots of each kernel, in words: "9", or under `--reps auto` the range
    /// the cells took ("5 to 10").
    pub fn reps_words(&self) -> String {
        let took = self.stops.iter().map(|s| s.boots);
        let (lo, hi) = match (took.clone().min(), took.max()) {
            (Some(lo), Some(hi)) if self.plan.stopping.is_some() => (lo, hi),
            _ => (self.plan.reps, self.plan.reps),
        };
        if lo == hi {
            lo.to_string()
        } else {
            format!("{lo} to {hi}")
        }
    }

    /// The `--reps` option that repeats the run: "--reps 9" or "--reps auto" (with its
    /// budget when it is not the default).
    pub fn reps_flag(&self) -> String {
        match self.plan.stopping {
            None => format!("--reps {}", self.plan.reps),
            Some(_) if self.plan.reps == crate::sequential::DEFAULT_MAX_REPS => "--reps auto".to_string(),
            Some(_) => format!("--reps auto --max-reps {}", self.plan.reps),
        }
    }

    /// How a `--reps auto` cell ended, if it did.
    pub fn stop_of(&self, cell: &crate::model::Cell) -> Option<&CellStop> {
        self.stops.iter().find(|s| s.arch == cell.arch && s.cpus == cell.cpus && s.clock == cell.clock)
    }

    pub fn count(&self, v: Verdict) -> usize {
        self.comparisons.iter().filter(|c| c.verdict == v).count()
    }
}

/// What the report says about the emulators and the machine, gathered once before the
/// report is assembled (it takes running `qemu --version` and the machine's facts).
#[derive(Debug, Clone, Default)]
pub struct EnvFacts {
    /// Per architecture: the QEMU version and the machine it emulates.
    pub qemu: BTreeMap<ArchName, (String, String)>,
    /// The real machine, described (`--metal`, `--host`).
    pub machine: Option<String>,
}
