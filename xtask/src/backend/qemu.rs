//! Boots under QEMU on this machine: KVM for wall-clock boots when a probe boot shows it
//! really works (a /dev/kvm that exists may still be unusable, e.g. nested software
//! KVM), else TCG; the instruction clock always under TCG. Every record says which.

use super::{Backend, Booted, SharedBoot};
use crate::arch::Arch;
use crate::model::{Accel, ArchName, Clock};
use crate::plan::{AccelChoice, BootStep, Kernel, Plan};
use crate::qemu::{self, BootSpec, Virt};
use crate::record::{BootRecord, Provenance};
use crate::rundir::RunDir;
use crate::serial;
use crate::suite::Suite;
use anyhow::{bail, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Whether KVM can really run `arch`'s guest here: boot `kernel` once with the probe
/// suite (its serial log to `log`) and see the harness finish. Cached per process.
pub fn kvm_usable(arch: &Arch, kernel: &Path, initrd: &Path, log: &Path) -> bool {
    static CACHE: OnceLock<Mutex<HashMap<String, bool>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(v) = cache.lock().unwrap().get(arch.name.as_str()) {
        return *v;
    }
    let possible = crate::arch::table().is_ok_and(|t| t.kvm_possible(arch)) && Path::new("/dev/kvm").exists();
    let works = possible && {
        let spec = BootSpec {
            arch: arch.clone(),
            kernel: kernel.to_path_buf(),
            initrd: Some(initrd.to_path_buf()),
            cpus: 1,
            mem_mib: 256,
            accel: Virt::Kvm,
            clock: Clock::Wall,
            append: vec![],
            sandbox: false,
            round: 0,
        };
        match qemu::run(&spec, log, Duration::from_secs(15)) {
            Ok(r) => {
                let text = std::fs::read_to_string(&r.serial_log).unwrap_or_default();
                serial::parse(&text, r.timed_out).status == serial::BootStatus::Ok
            }
            Err(_) => false,
        }
    };
    cache.lock().unwrap().insert(arch.name.to_string(), works);
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
    pub accel: Virt,
    pub clock: Clock,
    pub deadline: Duration,
    /// The boot's round (under the instruction clock, its seed).
    pub round: usize,
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
        sandbox: false,
        round: b.round,
    };
    let r = qemu::run(&spec, log, b.deadline)?;
    let text = String::from_utf8_lossy(&std::fs::read(log).unwrap_or_default()).into_owned();
    let mut boot = serial::parse(&text, r.timed_out);
    if r.flooded {
        // A failure of the kernel under test, with what it was doing.
        boot.status = serial::BootStatus::Incomplete;
        boot.excerpt
            .insert(0, format!("console output over {} MB: QEMU was stopped", qemu::MAX_CONSOLE >> 20));
    }
    if boot.status == serial::BootStatus::NoHarness
        && !r.qemu_stderr.trim().is_empty()
        && r.exit_code != Some(0)
    {
        bail!("{} did not start: {}", b.arch.qemu, r.qemu_stderr.trim());
    }
    let model = match b.accel {
        Virt::Kvm => boot.env.as_ref().map(|e| e.cpu_model.replace('_', " ")).unwrap_or_default(),
        Virt::Tcg => format!("QEMU TCG {} {}", b.arch.machine.split(',').next().unwrap_or(""), b.arch.cpu),
    };
    Ok(BootRecord {
        provenance: Provenance {
            arch: b.arch.name.clone(),
            accel: Accel::from(b.accel),
            clock: b.clock,
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
        lava: None,
    })
}

/// QEMU here, for a plan: each architecture made ready (QEMU there, the initramfs,
/// the KVM decision) the first time one of its boots comes up.
pub struct QemuHere<'a> {
    plan: &'a Plan,
    dir: &'a RunDir,
    ready: Ready,
}

/// Per architecture: its initramfs and how its wall-clock boots run.
type Ready = HashMap<ArchName, (PathBuf, Virt)>;

impl<'a> QemuHere<'a> {
    pub fn new(plan: &'a Plan, dir: &'a RunDir) -> QemuHere<'a> {
        QemuHere { plan, dir, ready: HashMap::new() }
    }

    fn prepare(&mut self, arch: &Arch, image: &Path) -> Result<()> {
        if self.ready.contains_key(&arch.name) {
            return Ok(());
        }
        crate::build::check_qemu(arch)?;
        let initrd = crate::harness::initramfs(arch, &self.plan.suite)?;
        let wall = self.plan.boots.iter().find(|b| b.key.arch == arch.name && b.key.clock == Clock::Wall);
        let virt = match wall.map(|b| b.accel) {
            None | Some(AccelChoice::Tcg) => Virt::Tcg,
            Some(AccelChoice::Kvm) => Virt::Kvm,
            Some(AccelChoice::Auto) => {
                let probe = crate::harness::initramfs(arch, &probe_suite())?;
                if kvm_usable(arch, image, &probe, &self.dir.probe_log(&arch.name)) {
                    Virt::Kvm
                } else {
                    Virt::Tcg
                }
            }
        };
        self.ready.insert(arch.name.clone(), (initrd, virt));
        Ok(())
    }
}

/// One boot of a step with what [`QemuHere::prepare`] made ready.
fn boot_step(
    plan: &Plan,
    ready: &Ready,
    step: &BootStep,
    kernel: &Kernel,
    image: &Path,
    log: &Path,
) -> Result<BootRecord> {
    let arch = plan
        .arches
        .iter()
        .find(|a| a.name == step.key.arch)
        .ok_or_else(|| anyhow::anyhow!("{} is not in the plan", step.key.arch))?;
    let (initrd, virt) = ready.get(&arch.name).expect("prepared before booting");
    let b = QemuBoot {
        arch,
        kernel: image,
        kernel_release: kernel.release.as_deref().unwrap_or(""),
        initrd,
        cpus: step.key.cpus,
        mem_mib: plan.mem_mib,
        accel: if step.accel == AccelChoice::Tcg { Virt::Tcg } else { *virt },
        clock: step.key.clock,
        deadline: Duration::from_secs(plan.suite.deadline_s),
        round: step.key.rep,
    };
    qemu_boot(&b, log)
}

struct Shared<'s> {
    plan: &'s Plan,
    ready: &'s Ready,
}

impl SharedBoot for Shared<'_> {
    fn boot(&self, step: &BootStep, kernel: &Kernel, image: &Path, log: &Path) -> Result<BootRecord> {
        boot_step(self.plan, self.ready, step, kernel, image, log)
    }
}

impl Backend for QemuHere<'_> {
    fn boot(&mut self, step: &BootStep, kernel: &Kernel, image: &Path, log: &Path) -> Result<Booted> {
        let arch = self.plan.arches.iter().find(|a| a.name == step.key.arch);
        let arch = arch.ok_or_else(|| anyhow::anyhow!("{} is not in the plan", step.key.arch))?;
        self.prepare(arch, image)?;
        Ok(Booted::Record(boot_step(self.plan, &self.ready, step, kernel, image, log)?))
    }

    fn side_by_side<'s>(
        &'s mut self,
        steps: &[(&BootStep, &Path)],
    ) -> Result<Option<Box<dyn SharedBoot + 's>>> {
        for (step, image) in steps {
            let plan = self.plan;
            let arch = plan.arches.iter().find(|a| a.name == step.key.arch);
            let arch = arch.ok_or_else(|| anyhow::anyhow!("{} is not in the plan", step.key.arch))?;
            self.prepare(arch, image)?;
        }
        Ok(Some(Box::new(Shared { plan: self.plan, ready: &self.ready })))
    }
}
