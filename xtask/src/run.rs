//! Running the harness: one QEMU boot (KVM when it really works, else TCG; wall clock
//! or instruction count), this host's kernel (`--metal`), or another host over ssh.
//! Every record says where its numbers came from.

use crate::arch::Arch;
use crate::metal;
use crate::qemu::{self, Accel, BootSpec, Clock};
use crate::serial::{self, Boot};
use crate::suite::Suite;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Where a sample came from; printed next to every number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    pub arch: String,
    /// kvm, tcg or metal.
    pub accel: String,
    /// wall or instructions.
    pub clock: String,
    pub cpu_model: String,
    pub vcpus: u32,
    pub kernel: String,
    /// For metal: this host's name, or the ssh destination.
    pub host: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BootRecord {
    pub provenance: Provenance,
    pub boot: Boot,
    pub seconds: f64,
    pub log: PathBuf,
    pub qemu_exit: Option<i32>,
    /// On a real machine: the kernel's boot id, so that one boot never gives two samples.
    #[serde(default)]
    pub boot_id: Option<String>,
}

/// How to choose the accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelChoice {
    Auto,
    Kvm,
    Tcg,
}

impl std::str::FromStr for AccelChoice {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "auto" => AccelChoice::Auto,
            "kvm" => AccelChoice::Kvm,
            "tcg" => AccelChoice::Tcg,
            _ => bail!("--accel takes auto, kvm or tcg"),
        })
    }
}

fn clock_name(c: Clock) -> &'static str {
    match c {
        Clock::Wall => "wall",
        Clock::Instructions => "instructions",
    }
}

/// Whether KVM can really run `arch`'s guest here: /dev/kvm may exist and still be
/// unusable (nested software KVM), so boot `kernel` once with the probe suite and see
/// the harness finish. Cached per process.
pub fn kvm_usable(arch: &Arch, kernel: &Path, initrd: &Path, scratch: &Path) -> bool {
    static CACHE: OnceLock<Mutex<HashMap<String, bool>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(v) = cache.lock().unwrap().get(&arch.name) {
        return *v;
    }
    let possible = arch.kvm_capable && std::env::consts::ARCH == "x86_64" && Path::new("/dev/kvm").exists();
    let works = possible && {
        let spec = BootSpec {
            arch: arch.clone(),
            kernel: kernel.to_path_buf(),
            initrd: Some(initrd.to_path_buf()),
            cpus: 1,
            mem_mib: 256,
            accel: Accel::Kvm,
            clock: Clock::Wall,
            append: vec![],
        };
        let log = scratch.join(format!("kvm-probe-{}.log", arch.name));
        match qemu::run(&spec, &log, Duration::from_secs(15)) {
            Ok(r) => {
                let text = std::fs::read_to_string(&r.serial_log).unwrap_or_default();
                serial::parse(&text, r.timed_out).status == serial::BootStatus::Ok
            }
            Err(_) => false,
        }
    };
    cache.lock().unwrap().insert(arch.name.clone(), works);
    works
}

/// The probe suite: begin, env, end; nothing measured.
pub fn probe_suite() -> Suite {
    Suite { name: "probe".into(), description: String::new(), deadline_s: 15, runs: vec![] }
}

pub struct QemuBoot<'a> {
    pub arch: &'a Arch,
    pub kernel: &'a Path,
    pub kernel_release: &'a str,
    pub initrd: &'a Path,
    pub cpus: u32,
    pub mem_mib: u32,
    pub accel: Accel,
    pub clock: Clock,
    pub deadline: Duration,
}

/// One boot of the harness under QEMU; its serial log goes to `log`.
pub fn qemu_boot(b: &QemuBoot, log: &Path) -> Result<BootRecord> {
    let spec = BootSpec {
        arch: b.arch.clone(),
        kernel: b.kernel.to_path_buf(),
        initrd: Some(b.initrd.to_path_buf()),
        cpus: b.cpus,
        mem_mib: b.mem_mib,
        accel: b.accel,
        clock: b.clock,
        append: vec![],
    };
    let r = qemu::run(&spec, log, b.deadline)?;
    let text = String::from_utf8_lossy(&std::fs::read(log).unwrap_or_default()).into_owned();
    let boot = serial::parse(&text, r.timed_out);
    if boot.status == serial::BootStatus::NoHarness
        && !r.qemu_stderr.trim().is_empty()
        && r.exit_code != Some(0)
    {
        bail!("{} did not start: {}", b.arch.qemu, r.qemu_stderr.trim());
    }
    let model = match b.accel {
        Accel::Kvm => boot.env.as_ref().map(|e| e.cpu_model.replace('_', " ")).unwrap_or_default(),
        Accel::Tcg => format!("QEMU TCG {} {}", b.arch.machine.split(',').next().unwrap_or(""), b.arch.cpu),
    };
    Ok(BootRecord {
        provenance: Provenance {
            arch: b.arch.name.clone(),
            accel: match b.accel {
                Accel::Kvm => "kvm".into(),
                Accel::Tcg => "tcg".into(),
            },
            clock: clock_name(b.clock).into(),
            cpu_model: model,
            vcpus: b.cpus,
            kernel: boot
                .env
                .as_ref()
                .map(|e| e.kernel.clone())
                .unwrap_or_else(|| b.kernel_release.to_string()),
            host: None,
        },
        boot,
        seconds: r.seconds,
        log: log.to_path_buf(),
        qemu_exit: r.exit_code,
        boot_id: None,
    })
}

fn host_arch_name() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        a => a,
    }
}

/// Runs the harness on this host's own kernel. Needs root for THP settings (it
/// restores them); without root, large-folio runs fail and say why.
pub fn metal(harness: &Path, suite: &Suite, log: &Path) -> Result<BootRecord> {
    let t = metal::Target::Local;
    let (boot, seconds) = metal::run_harness(&t, harness, suite, log)?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    Ok(metal_record(boot, seconds, log, Some(host.trim().to_string()), host_arch_name()))
}

/// A harness run on a real machine as a record.
pub fn metal_record(boot: Boot, seconds: f64, log: &Path, host: Option<String>, arch: &str) -> BootRecord {
    let env = boot.env.clone().unwrap_or_default();
    BootRecord {
        provenance: Provenance {
            arch: if env.machine.is_empty() {
                arch.to_string()
            } else {
                metal::machine_to_arch(&env.machine)
            },
            accel: "metal".into(),
            clock: "wall".into(),
            // The harness writes it with `_` for spaces (one k=v word).
            cpu_model: env.cpu_model.replace('_', " "),
            vcpus: env.cpus,
            kernel: env.kernel.clone(),
            host,
        },
        boot,
        seconds,
        log: log.to_path_buf(),
        qemu_exit: None,
        boot_id: None,
    }
}

/// Copies the harness for the remote's architecture over ssh and runs it there.
pub fn ssh(dest: &str, suite: &Suite, log: &Path) -> Result<BootRecord> {
    let t = metal::Target::ssh(dest)?;
    let facts = metal::probe(&t)?;
    let harness = metal::harness_for(&facts.arch)?;
    let (boot, seconds) = metal::run_harness(&t, &harness, suite, log)?;
    Ok(metal_record(boot, seconds, log, Some(dest.to_string()), &facts.arch))
}

/// A set of boots to run: every architecture, vCPU count and clock, `boots` times,
/// interleaved (boot 1 of everything, then boot 2 of everything) so drift hits all.
pub struct Plan {
    pub tree: crate::tree::TreeHandle,
    pub commit: String,
    pub arches: Vec<Arch>,
    pub suite: Suite,
    pub cpus: Vec<u32>,
    pub clocks: Vec<Clock>,
    pub boots: usize,
    pub mem_mib: u32,
    pub accel: AccelChoice,
    pub out: PathBuf,
    pub build: crate::build::BuildOptions,
}

/// Runs the plan under QEMU; each record is appended to `out/records.jsonl` as soon as
/// its boot ends, so an interrupted run keeps what it measured.
pub fn run_plan(plan: &Plan) -> Result<Vec<BootRecord>> {
    std::fs::create_dir_all(&plan.out)?;
    let mut prepared = Vec::new();
    for arch in &plan.arches {
        crate::build::check_qemu(arch)?;
        let a = crate::build::build(&plan.tree, &plan.commit, arch, &plan.build, "kernel")
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let initrd = crate::harness::initramfs(arch, &plan.suite)?;
        let accel = match plan.accel {
            AccelChoice::Tcg => Accel::Tcg,
            AccelChoice::Kvm => Accel::Kvm,
            AccelChoice::Auto => {
                let probe = crate::harness::initramfs(arch, &probe_suite())?;
                if kvm_usable(arch, &a.image, &probe, &plan.out) {
                    Accel::Kvm
                } else {
                    Accel::Tcg
                }
            }
        };
        prepared.push((arch, a, initrd, accel));
    }
    let jsonl = plan.out.join("records.jsonl");
    let mut records = Vec::new();
    for i in 0..plan.boots {
        for (arch, a, initrd, accel) in &prepared {
            for &cpus in &plan.cpus {
                for &clock in &plan.clocks {
                    // KVM has no instruction clock; those boots run under TCG.
                    let accel = if clock == Clock::Instructions { Accel::Tcg } else { *accel };
                    let name = format!("{}-{}cpu-{}-{}.log", arch.name, cpus, clock_name(clock), i + 1);
                    let b = QemuBoot {
                        arch,
                        kernel: &a.image,
                        kernel_release: "",
                        initrd,
                        cpus,
                        mem_mib: plan.mem_mib,
                        accel,
                        clock,
                        deadline: Duration::from_secs(plan.suite.deadline_s),
                    };
                    let r = qemu_boot(&b, &plan.out.join(name))?;
                    eprintln!(
                        "[run] {:<8} {} {:<12} {}cpu boot {}/{}: {:?}, {} results, {} failed runs ({:.1} s)",
                        arch.name,
                        r.provenance.accel,
                        r.provenance.clock,
                        cpus,
                        i + 1,
                        plan.boots,
                        r.boot.status,
                        r.boot.results.len(),
                        r.boot.failures.len(),
                        r.seconds
                    );
                    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&jsonl)?;
                    std::io::Write::write_all(
                        &mut f,
                        format!("{}\n", serde_json::to_string(&r)?).as_bytes(),
                    )?;
                    records.push(r);
                }
            }
        }
    }
    Ok(records)
}

/// Boot-to-boot variation per workload: n boots, median of the per-boot medians, and
/// the coefficient of variation across boots (the A/A table). Pure.
pub fn variation_table(records: &[BootRecord]) -> String {
    use std::collections::BTreeMap;
    /// (arch, accel, clock, vCPUs, workload) -> (per-boot medians, failed boots, metric)
    type Groups = BTreeMap<(String, String, String, u32, String), (Vec<f64>, usize, String)>;
    let mut groups: Groups = BTreeMap::new();
    for r in records {
        let p = &r.provenance;
        for s in &r.boot.results {
            let g = groups
                .entry((p.arch.clone(), p.accel.clone(), p.clock.clone(), p.vcpus, s.id.clone()))
                .or_insert_with(|| (Vec::new(), 0, s.metric.clone()));
            g.0.push(s.median);
        }
        for f in &r.boot.failures {
            groups
                .entry((p.arch.clone(), p.accel.clone(), p.clock.clone(), p.vcpus, f.id.clone()))
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
            "{arch:<8} {accel:<5} {clock:<12} {cpus:>4} {id:<38} {:>3} {failed:>6} {:>12.2} {:>7.2}  {metric}\n",
            v.len(),
            crate::stats::median(v),
            crate::stats::cv_percent(v)
        ));
    }
    out
}
