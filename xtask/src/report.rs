//! The evaluation's one document: what was asked, what happened at every stage, the
//! comparisons, and how long it all took. Written as JSON after every stage (so a crash
//! loses nothing finished) and rendered into the email and the HTML page. Pure types.

use crate::apply::ApplyFailure;
use crate::compare::{Comparison, Verdict};
use crate::mail::Addr;
use crate::serial::{BootStatus, RunFailure};
use serde::{Deserialize, Serialize};

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
    pub variant: String,
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
    pub arches: Vec<String>,
    pub cpus: Vec<u32>,
    pub clocks: Vec<String>,
    pub reps: usize,
    pub suite: String,
    pub suite_runs: usize,
    /// "ABBA": boots of the variants alternate, the order flipping every round.
    pub order: String,
    /// qemu, metal, or ssh:<dest>.
    pub target: String,
    pub mem_mib: u32,
    pub variants: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BuildEntry {
    pub arch: String,
    pub variant: String,
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
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BootEntry {
    pub arch: String,
    pub variant: String,
    pub cpus: u32,
    pub clock: String,
    pub accel: String,
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
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Machine {
    pub arch: String,
    pub accel: String,
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
    pub fn new_variants(&self) -> Vec<String> {
        self.plan.variants.iter().skip(1).cloned().collect()
    }

    pub fn count(&self, v: Verdict) -> usize {
        self.comparisons.iter().filter(|c| c.verdict == v).count()
    }
}
