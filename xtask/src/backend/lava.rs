//! Boots as LAVA jobs (`--lava URL`): one job per boot of the plan, submitted in plan
//! order with up to `--lava-jobs N` queued at once (the lab picks the devices). Each
//! job's id goes to `lava-jobs.jsonl` before it is waited for, so a re-run picks up a
//! job already submitted instead of submitting it again. The console lines of a
//! finished job's log are the boot's serial log, judged by our parser.

use super::{Backend, Booted, SharedBoot};
use crate::lava::{self, DeviceKind, JobSpec, Lab, LabJob, LabSpec, Serve};
use crate::model::{Accel, ArchName, BootKey};
use crate::plan::{BootStep, Kernel, Plan};
use crate::record::{BootRecord, Provenance};
use crate::rundir::RunDir;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a job may wait for a device before we say the lab cannot run it.
const QUEUE_LIMIT: Duration = Duration::from_secs(30 * 60);
/// How often a job's state is asked.
const POLL: Duration = Duration::from_secs(2);

/// A line of `lava-jobs.jsonl`.
#[derive(Debug, Serialize, Deserialize)]
struct Submitted {
    key: BootKey,
    job: u64,
}

pub struct OnLab<'a> {
    plan: &'a Plan,
    dir: &'a RunDir,
    spec: &'a LabSpec,
    lab: Lab,
    /// The jobs submitted so far, this run's and earlier runs'.
    journal: Mutex<BTreeMap<BootKey, u64>>,
    /// The URL the lab fetches each of our files from.
    urls: HashMap<PathBuf, String>,
    /// Per architecture: its initramfs.
    initrds: HashMap<ArchName, PathBuf>,
    server: Option<crate::serve::Server>,
}

impl<'a> OnLab<'a> {
    /// Checks the lab (reachable, the token a user's, devices of the type) before
    /// anything is submitted.
    pub fn new(plan: &'a Plan, dir: &'a RunDir) -> Result<OnLab<'a>> {
        let spec = plan.lab.as_ref().context("a LAVA plan without its lab")?;
        let lab = Lab::new(&spec.url, &lava::read_token(&spec.token_file)?)?;
        let (user, devices) = lab.check(&spec.device_type)?;
        crate::progress::say(&format!(
            "[lava] {} as {user}: {} device(s) of type {} ({}), {} job(s) at a time",
            lab.url,
            devices.len(),
            spec.device_type,
            devices.join(", "),
            spec.jobs
        ));
        let mut journal = BTreeMap::new();
        if let Ok(text) = std::fs::read_to_string(dir.lava_jobs_path()) {
            for line in text.lines() {
                if let Ok(s) = serde_json::from_str::<Submitted>(line) {
                    journal.insert(s.key, s.job);
                }
            }
        }
        Ok(OnLab {
            plan,
            dir,
            spec,
            lab,
            journal: Mutex::new(journal),
            urls: HashMap::new(),
            initrds: HashMap::new(),
            server: None,
        })
    }

    /// Makes the kernel `image` and the initramfs of `step`'s architecture fetchable.
    fn prepare(&mut self, step: &BootStep, image: &Path) -> Result<()> {
        let arch = arch_of(self.plan, &step.key.arch)?;
        if !self.initrds.contains_key(&arch.name) {
            let initrd = crate::harness::initramfs(arch, &self.plan.suite)?;
            self.publish(&initrd)?;
            self.initrds.insert(arch.name.clone(), initrd);
        }
        if !self.urls.contains_key(image) {
            self.publish(image)?;
        }
        Ok(())
    }

    /// A copy of `file` under the run's `lava-files/` (named by its content, so that a
    /// resumed job finds what it was submitted with) and its URL.
    fn publish(&mut self, file: &Path) -> Result<()> {
        let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let id = git2::Oid::hash_object(git2::ObjectType::Blob, &bytes)?.to_string();
        let stem = file.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        let name = format!("{}-{}", &id[..12], safe_name(stem));
        let files = self.dir.lava_files();
        std::fs::create_dir_all(&files)?;
        let copy = files.join(&name);
        if !copy.is_file() {
            let tmp = copy.with_extension("part");
            std::fs::write(&tmp, &bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
            std::fs::rename(&tmp, &copy)?;
        }
        let url = match &self.spec.serve {
            Serve::File => format!("file://{}", copy.canonicalize()?.display()),
            Serve::Http(addr) => {
                if self.server.is_none() {
                    self.server = Some(crate::serve::Server::start(addr, &files)?);
                }
                format!("http://{addr}/{name}")
            }
            Serve::Upload { dir, url } => {
                std::fs::create_dir_all(dir)?;
                let there = dir.join(&name);
                if !there.is_file() {
                    std::fs::copy(&copy, &there)
                        .with_context(|| format!("cannot copy to {}", there.display()))?;
                }
                format!("{url}{name}")
            }
        };
        self.urls.insert(file.to_path_buf(), url);
        Ok(())
    }
}

fn safe_name(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect()
}

fn arch_of<'p>(plan: &'p Plan, name: &ArchName) -> Result<&'p crate::arch::Arch> {
    plan.arches.iter().find(|a| &a.name == name).ok_or_else(|| anyhow::anyhow!("{name} is not in the plan"))
}

/// What the threads that wait for jobs share.
struct Shared<'s> {
    plan: &'s Plan,
    dir: &'s RunDir,
    spec: &'s LabSpec,
    lab: &'s Lab,
    journal: &'s Mutex<BTreeMap<BootKey, u64>>,
    urls: &'s HashMap<PathBuf, String>,
    initrds: &'s HashMap<ArchName, PathBuf>,
}

impl Shared<'_> {
    /// The job definition of a boot.
    fn definition(&self, step: &BootStep, kernel: &Kernel, image: &Path) -> Result<serde_json::Value> {
        let arch = arch_of(self.plan, &step.key.arch)?;
        let initrd = &self.initrds[&arch.name];
        let spec = crate::qemu::BootSpec {
            arch: arch.clone(),
            kernel: image.to_path_buf(),
            initrd: Some(initrd.clone()),
            cpus: step.key.cpus,
            mem_mib: self.plan.mem_mib,
            accel: crate::qemu::Virt::Tcg,
            clock: step.key.clock,
            append: vec![],
            sandbox: false,
            round: step.key.rep,
        };
        Ok(lava::definition(&JobSpec {
            name: format!("mmeval {} {}", step.key, short(&kernel.commit)),
            device_type: &self.spec.device_type,
            arch,
            kernel_url: self.urls[image].clone(),
            initrd_url: self.urls[initrd].clone(),
            cmdline: crate::qemu::cmdline(&spec),
            cpus: step.key.cpus,
            mem_mib: self.plan.mem_mib,
            clock: step.key.clock,
            deadline_s: self.plan.suite.deadline_s,
            round: step.key.rep,
        }))
    }

    /// The job of this boot: the one submitted earlier, else a new one (its id on
    /// disk before anything waits for it).
    fn job_of(&self, step: &BootStep, kernel: &Kernel, image: &Path) -> Result<u64> {
        if let Some(id) = self.journal.lock().unwrap().get(&step.key) {
            return Ok(*id);
        }
        let id = self.lab.submit(&self.definition(step, kernel, image)?)?;
        let mut journal = self.journal.lock().unwrap();
        append_line(&self.dir.lava_jobs_path(), &Submitted { key: step.key.clone(), job: id })?;
        journal.insert(step.key.clone(), id);
        Ok(id)
    }

    fn boot(&self, step: &BootStep, kernel: &Kernel, image: &Path, log: &Path) -> Result<BootRecord> {
        let started = Instant::now();
        let id = self.job_of(step, kernel, image)?;
        let state = loop {
            let s = self.lab.job(id)?;
            if s.finished() {
                break s;
            }
            if matches!(s.state.as_str(), "Submitted" | "Scheduling") && started.elapsed() > QUEUE_LIMIT {
                bail!(
                    "LAVA job {} has waited {} min for a device of type {}: are the lab's devices online? (run the same command again to keep waiting)",
                    self.lab.job_url(id),
                    QUEUE_LIMIT.as_secs() / 60,
                    self.spec.device_type
                );
            }
            std::thread::sleep(POLL);
        };
        let got = self.lab.log(id)?;
        if let Some(parent) = log.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(log, &got.console).with_context(|| format!("cannot write {}", log.display()))?;
        let job = LabJob {
            id,
            url: self.lab.job_url(id),
            device: state.actual_device.clone(),
            health: state.health,
            command: got.command.clone(),
            qemu: got.qemu.clone(),
        };
        Ok(record(self.plan, step, kernel, &got, job, started.elapsed().as_secs_f64(), log))
    }
}

/// The record of a finished job.
fn record(
    plan: &Plan,
    step: &BootStep,
    kernel: &Kernel,
    got: &lava::JobLog,
    job: LabJob,
    seconds: f64,
    log: &Path,
) -> BootRecord {
    let boot = lava::judge(job.id, &job.health, got);
    let kind = plan.lab.as_ref().map_or(DeviceKind::Qemu, |l| DeviceKind::of(&l.device_type));
    let arch = arch_of(plan, &step.key.arch).ok();
    let (accel, cpu_model) = match kind {
        DeviceKind::Qemu if got.used_kvm() => {
            (Accel::Kvm, boot.env.as_ref().map(|e| e.cpu_model.replace('_', " ")).unwrap_or_default())
        }
        DeviceKind::Qemu => (
            Accel::Tcg,
            arch.map(|a| format!("QEMU TCG {} {}", a.machine.split(',').next().unwrap_or(""), a.cpu))
                .unwrap_or_default(),
        ),
        DeviceKind::Board => {
            (Accel::Metal, boot.env.as_ref().map(|e| e.cpu_model.replace('_', " ")).unwrap_or_default())
        }
    };
    BootRecord {
        provenance: Provenance {
            arch: step.key.arch.clone(),
            accel,
            clock: step.key.clock,
            cpu_model,
            vcpus: step.key.cpus,
            kernel: boot
                .env
                .as_ref()
                .map(|e| e.kernel.clone())
                .unwrap_or_else(|| kernel.release.clone().unwrap_or_default()),
            host: None,
        },
        boot,
        seconds,
        log: log.to_path_buf(),
        qemu_exit: None,
        boot_id: None,
        lava: Some(job),
    }
}

fn short(c: &str) -> &str {
    &c[..c.len().min(12)]
}

/// Appends one JSON line and syncs it (a job id lost would be a job submitted twice).
fn append_line<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    f.write_all(format!("{}\n", serde_json::to_string(v)?).as_bytes())
        .and_then(|_| f.sync_data())
        .with_context(|| format!("cannot write {} ({})", path.display(), crate::host::free_space(path)))
}

impl SharedBoot for Shared<'_> {
    fn boot(&self, step: &BootStep, kernel: &Kernel, image: &Path, log: &Path) -> Result<BootRecord> {
        Shared::boot(self, step, kernel, image, log)
    }
}

impl OnLab<'_> {
    fn shared(&self) -> Shared<'_> {
        Shared {
            plan: self.plan,
            dir: self.dir,
            spec: self.spec,
            lab: &self.lab,
            journal: &self.journal,
            urls: &self.urls,
            initrds: &self.initrds,
        }
    }
}

impl Backend for OnLab<'_> {
    fn boot(&mut self, step: &BootStep, kernel: &Kernel, image: &Path, log: &Path) -> Result<Booted> {
        self.prepare(step, image)?;
        let r = self.shared().boot(step, kernel, image, log)?;
        Ok(Booted::Record(r))
    }

    fn side_by_side<'s>(
        &'s mut self,
        steps: &[(&BootStep, &Path)],
    ) -> Result<Option<Box<dyn SharedBoot + 's>>> {
        for (step, image) in steps {
            self.prepare(step, image)?;
        }
        Ok(Some(Box::new(self.shared())))
    }

    /// Nothing of ours stays on the lab: uploaded copies are removed, the server stops.
    fn finish(&mut self) -> Result<Option<String>> {
        if let Serve::Upload { dir, .. } = &self.spec.serve {
            for url in self.urls.values() {
                if let Some(name) = url.rsplit('/').next() {
                    let _ = std::fs::remove_file(dir.join(name));
                }
            }
        }
        self.server = None;
        Ok(None)
    }
}
