//! The evaluation as data: which kernels are built for which architectures, and which
//! boots run in which order. Pure: a [`Spec`] (what was asked), the kernels and what a
//! real machine said about itself go in, a [`Plan`] comes out; the executor walks it,
//! `--dry-run` prints it, and a re-run skips what [`Plan::remaining`] says is done.
//!
//! Order: round by round; within a round every architecture, vCPU count and clock; the
//! kernels of a round in order on even rounds and reversed on odd ones (ABBA for two,
//! round robin reversed every round for more), so that drift hits every kernel alike.

use crate::arch::Arch;
use crate::build::BuildOptions;
use crate::mail::Addr;
use crate::metal::{self, Home};
use crate::model::{ArchName, BootKey, Clock, Target, Variant};
use crate::record::Stored;
use crate::report::PlanInfo;
use crate::suite::{self, Suite};
use crate::tree::TreeHandle;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// How to choose the accelerator for wall-clock boots under QEMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AccelChoice {
    /// KVM when a probe boot shows it really works, else TCG.
    Auto,
    Kvm,
    Tcg,
}

impl std::str::FromStr for AccelChoice {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "auto" => AccelChoice::Auto,
            "kvm" => AccelChoice::Kvm,
            "tcg" => AccelChoice::Tcg,
            _ => return Err("auto, kvm or tcg".into()),
        })
    }
}

/// What to measure and where results go: the same for `eval`, `compare` and `run`.
#[derive(Clone)]
pub struct Spec {
    pub arches: Vec<Arch>,
    pub cpus: Vec<u32>,
    /// Boots of each kernel per cell; with `auto_reps` the most a cell may take.
    pub reps: usize,
    /// `--reps auto`: a cell stops as soon as every workload in it is decided.
    pub auto_reps: bool,
    pub suite: Suite,
    pub clocks: Vec<Clock>,
    pub accel: AccelChoice,
    pub mem_mib: u32,
    pub build: BuildOptions,
    pub from: Option<Addr>,
    pub out_root: PathBuf,
    pub fresh: bool,
    /// Wait for another run of the same evaluation to end instead of stopping.
    pub wait: bool,
    /// How many boots may run side by side where that cannot change their figures
    /// (the instruction clock under QEMU here).
    pub boot_jobs: usize,
    /// A real machine instead of QEMU (`--metal`, `--host`).
    pub target: Option<metal::Target>,
    /// Whether the vCPU counts were asked for (a real machine uses all of its CPUs).
    pub cpus_given: bool,
    /// How long a real machine may take to come back after a kexec.
    pub boot_timeout: Duration,
    /// `--lava URL`: the boots are a LAVA lab's jobs.
    pub lab: Option<crate::lava::LabSpec>,
}

impl Spec {
    /// The boots of each kernel, in words: "9 boots per kernel", or "up to 15 boots per
    /// kernel (--reps auto)".
    pub fn boots_words(&self) -> String {
        if self.auto_reps {
            format!("up to {} boots per kernel (--reps auto)", self.reps)
        } else {
            format!("{} boots per kernel", self.reps)
        }
    }
}

/// A real machine an evaluation runs on, and the kernel it came with.
pub struct MachineRun {
    pub target: metal::Target,
    pub home: Home,
    /// What the machine said when the evaluation started (the kernel it runs now).
    pub now: metal::Facts,
}

/// A kernel to measure: the first of a plan's kernels is the baseline of every comparison.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub variant: Variant,
    pub tree: TreeHandle,
    pub commit: String,
    /// The release its Makefile says (for a boot that died before saying it).
    pub release: Option<String>,
}

/// The order of the kernels within a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Two kernels: A B, then B A.
    Abba,
    /// More: in order, then reversed, every round.
    RoundRobin,
}

impl Order {
    pub fn for_kernels(n: usize) -> Order {
        if n > 2 {
            Order::RoundRobin
        } else {
            Order::Abba
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Order::Abba => "ABBA",
            Order::RoundRobin => "round robin, reversed every round",
        }
    }
}

/// One build: kernel `kernel` of the plan for `arch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildStep {
    pub kernel: usize,
    pub arch: ArchName,
}

/// One boot: which cell, kernel and round, and how QEMU is to run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootStep {
    pub key: BootKey,
    pub kernel: usize,
    /// Under QEMU: the instruction clock always runs under TCG (KVM has no -icount).
    pub accel: AccelChoice,
    /// May run beside other such boots: under `-icount` the guest's clock is its
    /// instruction count, whatever else the host does. Wall-clock boots run alone.
    pub side_by_side: bool,
}

/// What must match for a re-run to resume rather than start over (`plan.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlanKey {
    /// eval: the revision evaluated (the newest, with several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u32>,
    /// Every kernel: variant, tree and commit.
    pub kernels: Vec<(Variant, String, String)>,
    pub arches: Vec<ArchName>,
    pub cpus: Vec<u32>,
    pub clocks: Vec<Clock>,
    pub reps: usize,
    pub suite: String,
    pub harness: String,
    pub config: String,
    pub mem_mib: u32,
    pub llvm: bool,
    pub target: Target,
    pub host_config: Option<String>,
    /// `--reps auto`: the rule that decided which boots ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopping: Option<String>,
    /// QEMU's instruction clock (its options change the figures).
    #[serde(default)]
    pub icount: String,
}

/// What the plan depends on that only IO can say: content ids of our sources, and
/// which architectures this host could run under KVM at all.
pub struct Ids {
    pub revision: Option<u32>,
    /// `--reps auto`: the stopping rule (its level is calibrated, an IO-free but slow step).
    pub stopping: Option<crate::sequential::Design>,
    pub harness: String,
    pub config: String,
    pub kvm_arches: Vec<ArchName>,
}

/// Everything to do, in order.
pub struct Plan {
    pub key: PlanKey,
    pub info: PlanInfo,
    pub target: Target,
    pub order: Order,
    pub kernels: Vec<Kernel>,
    pub arches: Vec<Arch>,
    pub suite: Suite,
    pub mem_mib: u32,
    pub build: BuildOptions,
    pub boot_timeout: Duration,
    pub builds: Vec<BuildStep>,
    /// Every boot in order: first those that run side by side (up to `boot_jobs` at a
    /// time), then the wall-clock boots, one at a time and alone.
    pub boots: Vec<BootStep>,
    pub boot_jobs: usize,
    /// `--reps auto`: which boots are still wanted, cell by cell.
    pub stopping: Option<crate::sequential::Design>,
    /// The kernel a machine runs now, measured as it is (`run --metal/--host`): nothing
    /// is built or booted.
    pub as_found: bool,
    /// The lab the boots are jobs of.
    pub lab: Option<crate::lava::LabSpec>,
}

/// `run --metal` / `run --host`: the harness `reps` times on the kernel the machine runs.
pub fn as_found(spec: &Spec, machine: &MachineRun, arch: &Arch, ids: Ids) -> Plan {
    let facts = &machine.now;
    let tree = TreeHandle {
        repo_path: PathBuf::new(),
        key: String::new(),
        label: format!("{} as found", machine.target.describe()),
    };
    let kernel = Kernel {
        variant: "running".into(),
        tree,
        commit: facts.release.clone(),
        release: Some(facts.release.clone()),
    };
    let mut s = spec.clone();
    s.arches = vec![arch.clone()];
    s.cpus = vec![facts.cpus];
    s.clocks = vec![Clock::Wall];
    let mut p = plan(&s, vec![kernel], ids);
    p.builds.clear();
    p.as_found = true;
    p
}

/// The spec narrowed to what a real machine is (its architecture, its online CPUs, the
/// wall clock, kernels built from its own config); refused with what to do when it
/// cannot be. Unchanged for QEMU.
pub fn narrow(spec: &Spec, machine: Option<&MachineRun>, table: &crate::arch::Table) -> Result<Spec> {
    let Some(m) = machine else { return Ok(spec.clone()) };
    let (t, facts) = (&m.target, &m.now);
    let Some(arch) = table.get(&facts.arch) else {
        bail!("{} is {}: the tool knows only {}", t.describe(), facts.arch, table.names().join(", "));
    };
    let all = spec.arches.len() == table.len();
    let only_its_own = spec.arches.len() == 1 && spec.arches[0].name == facts.arch;
    if !all && !only_its_own {
        bail!("{} is {}: --arch can only be {} there (or left out)", t.describe(), facts.arch, facts.arch);
    }
    if spec.cpus_given {
        bail!("--cpus is for QEMU guests; on a real machine every online CPU is used (boot it with maxcpus= to use fewer)");
    }
    if !spec.clocks.contains(&Clock::Wall) {
        bail!("a real machine has only the wall clock; --clock instructions needs QEMU");
    }
    if !facts.root {
        bail!(
            "{}: the harness needs root there (it sets and restores the THP knobs); use root@ or run as root",
            t.describe()
        );
    }
    if matches!(t, metal::Target::Ssh(_)) && !facts.kexec {
        bail!("{}: no kexec there: install kexec-tools (each kernel is booted with kexec)", t.describe());
    }
    let mut out = spec.clone();
    out.arches = vec![arch.clone()];
    out.cpus = vec![m.home.facts.cpus];
    out.clocks = vec![Clock::Wall];
    out.build.host_config = Some(m.home.host_config());
    Ok(out)
}

/// The plan for `kernels` under `spec` (already [`narrow`]ed to a machine, if any).
pub fn plan(spec: &Spec, kernels: Vec<Kernel>, ids: Ids) -> Plan {
    let target = match (&spec.target, &spec.lab) {
        (Some(t), _) => t.into(),
        (None, Some(l)) => Target::Lava(l.url.clone(), l.device_type.clone()),
        (None, None) => Target::Qemu,
    };
    let order = Order::for_kernels(kernels.len());
    let variants: Vec<Variant> = kernels.iter().map(|k| k.variant.clone()).collect();
    // Variant by variant: each architecture's build directory sees the baseline first.
    let builds = (0..kernels.len())
        .flat_map(|k| spec.arches.iter().map(move |a| BuildStep { kernel: k, arch: a.name.clone() }))
        .collect();
    let mut boots = Vec::new();
    for rep in 0..spec.reps {
        for arch in &spec.arches {
            for &cpus in &spec.cpus {
                for &clock in &spec.clocks {
                    let mut round: Vec<usize> = (0..kernels.len()).collect();
                    if rep % 2 == 1 {
                        round.reverse();
                    }
                    for k in round {
                        let accel = match (clock, spec.accel) {
                            (Clock::Instructions, _) => AccelChoice::Tcg,
                            // No probe for a guest KVM cannot run here at all.
                            (Clock::Wall, AccelChoice::Auto) if !ids.kvm_arches.contains(&arch.name) => {
                                AccelChoice::Tcg
                            }
                            (Clock::Wall, a) => a,
                        };
                        let key = BootKey {
                            arch: arch.name.clone(),
                            cpus,
                            clock,
                            variant: variants[k].clone(),
                            rep,
                        };
                        // On a lab every boot is a job of its own: the lab puts it on a device.
                        let side_by_side = match target {
                            Target::Qemu => clock == Clock::Instructions,
                            Target::Lava(..) => true,
                            Target::Local | Target::Ssh(_) => false,
                        };
                        boots.push(BootStep { key, kernel: k, accel, side_by_side });
                    }
                }
            }
        }
    }
    // Side by side first, then alone: never a wall-clock sample beside another boot.
    boots.sort_by_key(|b: &BootStep| !b.side_by_side);
    let info = PlanInfo {
        arches: spec.arches.iter().map(|a| a.name.clone()).collect(),
        cpus: spec.cpus.clone(),
        clocks: spec.clocks.clone(),
        reps: spec.reps,
        suite: spec.suite.name.clone(),
        suite_runs: spec.suite.runs.len(),
        order: order.describe().into(),
        target: target.clone(),
        mem_mib: spec.mem_mib,
        variants,
        stopping: ids.stopping.as_ref().map(crate::sequential::Design::describe),
    };
    let key = PlanKey {
        revision: ids.revision,
        kernels: kernels
            .iter()
            .map(|k| (k.variant.clone(), k.tree.label.clone(), k.commit.clone()))
            .collect(),
        arches: info.arches.clone(),
        cpus: spec.cpus.clone(),
        clocks: spec.clocks.clone(),
        reps: spec.reps,
        suite: suite::to_text(&spec.suite),
        harness: ids.harness,
        config: ids.config,
        mem_mib: spec.mem_mib,
        llvm: spec.build.llvm,
        target: target.clone(),
        host_config: spec.build.host_config.as_ref().map(|h| h.config.clone() + &h.modules),
        stopping: info.stopping.clone(),
        icount: std::iter::once(crate::qemu::icount_args(0).join(" ") + " (seed: the round)")
            .chain(spec.arches.iter().map(|a| format!("{}: {}", a.name, a.icount_cmdline)))
            .collect::<Vec<_>>()
            .join("; "),
    };
    Plan {
        key,
        info,
        target,
        order,
        kernels,
        arches: spec.arches.clone(),
        suite: spec.suite.clone(),
        mem_mib: spec.mem_mib,
        build: spec.build.clone(),
        boot_timeout: spec.boot_timeout,
        builds,
        boots,
        boot_jobs: spec.lab.as_ref().map_or(spec.boot_jobs, |l| l.jobs).max(1),
        stopping: ids.stopping,
        as_found: false,
        lab: spec.lab.clone(),
    }
}

impl Plan {
    pub fn expected(&self) -> usize {
        self.boots.len()
    }

    /// Whether a stored boot belongs to this plan.
    pub fn wants(&self, s: &Stored) -> bool {
        let k = s.key();
        self.boots.iter().any(|b| b.key == k)
    }

    /// The boots not done yet, in plan order.
    pub fn remaining(&self, done: &[Stored]) -> Vec<&BootStep> {
        let done: BTreeSet<BootKey> = done.iter().map(Stored::key).collect();
        self.boots.iter().filter(|b| !done.contains(&b.key)).collect()
    }

    /// `--dry-run`: every build and every boot in order, and which boots are done.
    pub fn describe(&self, done: &[Stored]) -> String {
        let finished: BTreeSet<BootKey> = done.iter().map(Stored::key).collect();
        let mut o = String::new();
        let _ = writeln!(
            o,
            "plan: {} kernels x {} arch(es) = {} builds; {} boots ({} done, {} to run) on {}; order {}{}",
            self.kernels.len(),
            self.arches.len(),
            self.builds.len(),
            self.boots.len(),
            self.boots.iter().filter(|b| finished.contains(&b.key)).count(),
            self.boots.iter().filter(|b| !finished.contains(&b.key)).count(),
            self.target.name(),
            self.order.describe(),
            match self.boots.iter().filter(|b| b.side_by_side).count() {
                n if n == 0 || self.boot_jobs == 1 => String::new(),
                n =>
                    format!("; {n} instruction-clock boots {} at a time, then the rest alone", self.boot_jobs),
            }
        );
        for (i, k) in self.kernels.iter().enumerate() {
            let role = if i == 0 { "baseline" } else { "compared with the baseline" };
            let _ = writeln!(
                o,
                "kernel {}: {} = {} {} ({role})",
                i + 1,
                k.variant,
                k.tree.label,
                short(&k.commit)
            );
        }
        for (i, b) in self.builds.iter().enumerate() {
            let k = &self.kernels[b.kernel];
            let _ = writeln!(o, "build {:>3}: {} {} {}", i + 1, b.arch, k.variant, short(&k.commit));
        }
        for (i, b) in self.boots.iter().enumerate() {
            let how = match (&self.target, b.accel) {
                (Target::Qemu, AccelChoice::Tcg) => "tcg",
                (Target::Qemu, AccelChoice::Kvm) => "kvm",
                (Target::Qemu, AccelChoice::Auto) => "kvm if it works, else tcg",
                (Target::Local, _) => "this machine",
                (Target::Ssh(_), _) => "kexec over ssh",
                (Target::Lava(..), _) => "a LAVA job",
            };
            let state = if finished.contains(&b.key) { "done" } else { "to run" };
            let with = if b.side_by_side { ", side by side" } else { "" };
            let _ = writeln!(o, "boot {:>4}: {} ({how}{with}) {state}", i + 1, b.key);
        }
        o
    }
}

fn short(c: &str) -> &str {
    &c[..c.len().min(12)]
}

#[cfg(test)]
mod tests;
