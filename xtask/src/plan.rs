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
use crate::model::{BootKey, Clock, Target};
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
    pub target: Option<metal::Target>,
    /// Whether the vCPU counts were asked for (a real machine uses all of its CPUs).
    pub cpus_given: bool,
    /// How long a real machine may take to come back after a kexec.
    pub boot_timeout: Duration,
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
    pub variant: String,
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
    pub arch: String,
}

/// One boot: which cell, kernel and round, and how QEMU is to run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootStep {
    pub key: BootKey,
    pub kernel: usize,
    /// Under QEMU: the instruction clock always runs under TCG (KVM has no -icount).
    pub accel: AccelChoice,
}

/// What must match for a re-run to resume rather than start over (`plan.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlanKey {
    /// eval: the revision evaluated (the newest, with several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u32>,
    /// Every kernel: variant, tree and commit.
    pub kernels: Vec<(String, String, String)>,
    pub arches: Vec<String>,
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
}

/// What the plan depends on that only IO can say: content ids of our sources, and
/// which architectures this host could run under KVM at all.
pub struct Ids {
    pub revision: Option<u32>,
    pub harness: String,
    pub config: String,
    pub kvm_arches: Vec<String>,
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
    pub boots: Vec<BootStep>,
    /// The kernel a machine runs now, measured as it is (`run --metal/--host`): nothing
    /// is built or booted.
    pub as_found: bool,
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
    let target = match &spec.target {
        None => Target::Qemu,
        Some(t) => t.into(),
    };
    let order = Order::for_kernels(kernels.len());
    let variants: Vec<String> = kernels.iter().map(|k| k.variant.clone()).collect();
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
                        boots.push(BootStep { key, kernel: k, accel });
                    }
                }
            }
        }
    }
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
        as_found: false,
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
            "plan: {} kernels x {} arch(es) = {} builds; {} boots ({} done, {} to run) on {}; order {}",
            self.kernels.len(),
            self.arches.len(),
            self.builds.len(),
            self.boots.len(),
            self.boots.iter().filter(|b| finished.contains(&b.key)).count(),
            self.boots.iter().filter(|b| !finished.contains(&b.key)).count(),
            self.target.name(),
            self.order.describe()
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
            };
            let state = if finished.contains(&b.key) { "done" } else { "to run" };
            let _ = writeln!(o, "boot {:>4}: {} ({how}) {state}", i + 1, b.key);
        }
        o
    }
}

fn short(c: &str) -> &str {
    &c[..c.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Accel;
    use crate::record::{BootRecord, Provenance};

    fn spec(arches: &[&str], cpus: &[u32], clocks: &[Clock], reps: usize) -> Spec {
        let table = crate::arch::table().unwrap();
        Spec {
            arches: arches.iter().map(|a| table.get(a).unwrap().clone()).collect(),
            cpus: cpus.to_vec(),
            reps,
            suite: Suite { name: "quick".into(), description: String::new(), deadline_s: 60, runs: vec![] },
            clocks: clocks.to_vec(),
            accel: AccelChoice::Auto,
            mem_mib: 1024,
            build: BuildOptions::default(),
            from: None,
            out_root: PathBuf::from("/nonexistent"),
            fresh: false,
            target: None,
            cpus_given: false,
            boot_timeout: Duration::from_secs(600),
        }
    }

    fn kernels(names: &[&str]) -> Vec<Kernel> {
        let tree = TreeHandle { repo_path: "/t".into(), key: "t".into(), label: "tree".into() };
        names
            .iter()
            .enumerate()
            .map(|(i, n)| Kernel {
                variant: n.to_string(),
                tree: tree.clone(),
                commit: format!("{i:040}"),
                release: None,
            })
            .collect()
    }

    fn ids() -> Ids {
        Ids { revision: Some(2), harness: "h".into(), config: "c".into(), kvm_arches: vec!["x86_64".into()] }
    }

    fn order(p: &Plan) -> Vec<String> {
        p.boots.iter().map(|b| format!("{}{}", b.key.variant, b.key.rep + 1)).collect()
    }

    fn stored(b: &BootStep) -> Stored {
        let p = Provenance {
            arch: b.key.arch.clone(),
            accel: Accel::Tcg,
            clock: b.key.clock,
            cpu_model: String::new(),
            vcpus: b.key.cpus,
            kernel: String::new(),
            host: None,
        };
        let boot = crate::serial::parse("", false);
        let record =
            BootRecord { provenance: p, boot, seconds: 0.0, log: "x".into(), qemu_exit: None, boot_id: None };
        Stored { variant: b.key.variant.clone(), rep: b.key.rep, record }
    }

    #[test]
    fn two_kernels_alternate_abba() {
        let p = plan(&spec(&["x86_64"], &[1], &[Clock::Wall], 4), kernels(&["baseline", "patched"]), ids());
        assert_eq!(
            order(&p),
            [
                "baseline1",
                "patched1",
                "patched2",
                "baseline2",
                "baseline3",
                "patched3",
                "patched4",
                "baseline4"
            ]
        );
        assert_eq!(p.order, Order::Abba);
        assert_eq!(p.expected(), 8);
        assert_eq!(p.builds.len(), 2);
    }

    #[test]
    fn three_kernels_round_robin_reversed_every_round() {
        let p = plan(&spec(&["x86_64"], &[1], &[Clock::Wall], 3), kernels(&["baseline", "v1", "v2"]), ids());
        assert_eq!(
            order(&p),
            ["baseline1", "v11", "v21", "v22", "v12", "baseline2", "baseline3", "v13", "v23"]
        );
        assert_eq!(p.info.order, "round robin, reversed every round");
    }

    #[test]
    fn every_cell_of_a_round_before_the_next_round() {
        let s = spec(&["x86_64", "arm64"], &[1, 2], &[Clock::Wall, Clock::Instructions], 2);
        let p = plan(&s, kernels(&["baseline", "patched"]), ids());
        assert_eq!(p.expected(), 2 * 2 * 2 * 2 * 2);
        // The first round covers all 8 cells before round 2 begins.
        assert!(p.boots[..16].iter().all(|b| b.key.rep == 0) && p.boots[16..].iter().all(|b| b.key.rep == 1));
        // Builds variant by variant: the baseline for every arch first.
        let builds: Vec<(usize, &str)> = p.builds.iter().map(|b| (b.kernel, b.arch.as_str())).collect();
        assert_eq!(builds, [(0, "x86_64"), (0, "arm64"), (1, "x86_64"), (1, "arm64")]);
        // The instruction clock never asks for KVM.
        assert!(p
            .boots
            .iter()
            .filter(|b| b.key.clock == Clock::Instructions)
            .all(|b| b.accel == AccelChoice::Tcg));
        // KVM is tried only where it could work at all.
        let wall = |a: &str| {
            p.boots
                .iter()
                .filter(|b| b.key.clock == Clock::Wall && b.key.arch == a)
                .map(|b| b.accel)
                .collect::<BTreeSet<_>>()
        };
        assert_eq!(wall("x86_64"), [AccelChoice::Auto].into());
        assert_eq!(wall("arm64"), [AccelChoice::Tcg].into());
    }

    #[test]
    fn a_real_machine_is_one_cell_of_its_own() {
        let facts = metal::parse_facts(
            "machine=x86_64\nonline=0-7\nuid=0\nkexec=/sbin/kexec\nrelease=6.1.0\nboot_id=b1\ncmdline=root=/dev/vda\n",
        );
        let home = Home {
            target: "ssh:root@box".into(),
            facts: facts.clone(),
            config_source: "/proc/config.gz".into(),
            config: "CONFIG_X=y\n".into(),
            modules: String::new(),
        };
        let m = MachineRun { target: metal::Target::ssh("root@box").unwrap(), home, now: facts };
        let table = crate::arch::table().unwrap();
        let mut s = spec(&["x86_64", "arm64", "ppc64le"], &[1], &[Clock::Wall, Clock::Instructions], 2);
        s.target = Some(m.target.clone());
        let narrowed = narrow(&s, Some(&m), table).unwrap();
        let p = plan(&narrowed, kernels(&["baseline", "patched"]), ids());
        assert_eq!(p.target, Target::Ssh("root@box".into()));
        assert_eq!(order(&p), ["baseline1", "patched1", "patched2", "baseline2"]);
        assert!(p
            .boots
            .iter()
            .all(|b| b.key.cpus == 8 && b.key.clock == Clock::Wall && b.key.arch == "x86_64"));
        assert!(p.key.host_config.is_some());
        // What a machine cannot do is refused before anything runs.
        let mut only_icount = s.clone();
        only_icount.clocks = vec![Clock::Instructions];
        let err = |s: &Spec| narrow(s, Some(&m), table).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err(&only_icount).contains("only the wall clock"));
        let mut cpus = s.clone();
        cpus.cpus_given = true;
        assert!(err(&cpus).contains("--cpus is for QEMU"));
        let mut other = s.clone();
        other.arches = vec![table.get("arm64").unwrap().clone()];
        assert!(err(&other).contains("--arch can only be x86_64"));
    }

    #[test]
    fn resume_skips_what_is_done_and_nothing_else() {
        let p = plan(
            &spec(&["x86_64"], &[1], &[Clock::Wall, Clock::Instructions], 3),
            kernels(&["baseline", "patched"]),
            ids(),
        );
        let k = 5;
        let done: Vec<Stored> = p.boots[..k].iter().map(stored).collect();
        let left = p.remaining(&done);
        assert_eq!(left.len(), p.expected() - k);
        assert_eq!(left[0].key, p.boots[k].key);
        // A boot done out of order is skipped where it stands.
        let odd = vec![stored(&p.boots[7])];
        assert!(p.remaining(&odd).iter().all(|b| b.key != p.boots[7].key));
        assert!(done.iter().all(|s| p.wants(s)));
        let text = p.describe(&done);
        assert!(
            text.starts_with(
                "plan: 2 kernels x 1 arch(es) = 2 builds; 12 boots (5 done, 7 to run) on qemu; order ABBA\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("boot    1: x86_64 baseline 1cpu wall rep 1 (kvm if it works, else tcg) done\n"),
            "{text}"
        );
        assert!(text.contains("boot    7: x86_64 patched 1cpu instructions rep 2 (tcg) to run\n"), "{text}");
    }

    #[test]
    fn the_key_changes_with_what_the_numbers_depend_on() {
        let s = spec(&["x86_64"], &[1], &[Clock::Wall], 2);
        let a = plan(&s, kernels(&["baseline", "patched"]), ids()).key;
        let mut s2 = s.clone();
        s2.reps = 3;
        assert_ne!(plan(&s2, kernels(&["baseline", "patched"]), ids()).key, a);
        let mut other = kernels(&["baseline", "patched"]);
        other[1].commit = "f".repeat(40);
        assert_ne!(plan(&s, other, ids()).key, a);
        assert_eq!(plan(&s, kernels(&["baseline", "patched"]), ids()).key, a);
    }
}
