//! Boots on a real machine: over ssh, each kernel copied over, loaded with `kexec -l`
//! and started, the box waited for, checked to run the kernel sent (its token on the
//! command line) in a boot no sample came from yet, then the harness; at the end the box
//! goes back to its own kernel. On this host the tool cannot survive the kexec: it
//! measures the kernel it finds running when that is the next one wanted, and says
//! what to boot next.

use super::{Backend, Booted};
use crate::metal::{self, Facts, Target};
use crate::model::{Accel, Clock};
use crate::plan::{BootStep, Kernel, MachineRun, Plan};
use crate::record::{BootRecord, Provenance, Stored};
use crate::serial::{self, Boot};
use anyhow::Result;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// A harness run on a real machine as a record.
pub fn record(boot: Boot, seconds: f64, log: &Path, host: Option<String>, arch: &str) -> BootRecord {
    let env = boot.env.clone().unwrap_or_default();
    BootRecord {
        provenance: Provenance {
            arch: if env.machine.is_empty() { arch.into() } else { metal::machine_to_arch(&env.machine) },
            accel: Accel::Metal,
            clock: Clock::Wall,
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
        lava: None,
    }
}

pub struct Machine<'a> {
    plan: &'a Plan,
    m: &'a MachineRun,
    harness: PathBuf,
    /// What the machine said last.
    facts: Facts,
    /// Boot ids that gave a sample already.
    used: HashSet<String>,
}

impl<'a> Machine<'a> {
    pub fn new(plan: &'a Plan, m: &'a MachineRun, done: &[Stored]) -> Result<Machine<'a>> {
        let arch = plan.arches.first().ok_or_else(|| anyhow::anyhow!("a plan without an architecture"))?;
        Ok(Machine {
            plan,
            m,
            harness: crate::harness::build_harness(arch)?,
            facts: m.now.clone(),
            used: done.iter().filter_map(|s| s.record.boot_id.clone()).collect(),
        })
    }

    fn runs(&self, token: &str) -> bool {
        self.facts.cmdline.split_whitespace().any(|w| w == token) && !self.used.contains(&self.facts.boot_id)
    }

    /// A boot that never reached the harness, as a record.
    fn failed(&self, status: serial::BootStatus, why: String, log: &Path) -> Result<BootRecord> {
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
        let mut r = record(boot, 0.0, log, Some(self.m.target.describe()), &self.plan.arches[0].name);
        r.provenance.vcpus = self.m.home.facts.cpus;
        Ok(r)
    }
}

impl Backend for Machine<'_> {
    fn boot(&mut self, step: &BootStep, kernel: &Kernel, image: &Path, log: &Path) -> Result<Booted> {
        let (t, home) = (&self.m.target, &self.m.home);
        let variant = &step.key.variant;
        let token = metal::token(variant, &kernel.commit);
        let cmdline = metal::test_cmdline(&home.facts.cmdline, &token);
        if !self.runs(&token) {
            if *t == Target::Local {
                return Ok(Booted::Pending(format!(
                    "next boot {variant} (round {}):\n  {}\nthen run this command again",
                    step.key.rep + 1,
                    metal::boot_instructions(image, home.facts.initrd.as_deref(), &cmdline)
                )));
            }
            crate::progress::say(&format!(
                "kexec {} into {variant} ({token}) for round {}",
                t.describe(),
                step.key.rep + 1
            ));
            let remote = metal::upload(t, image)?;
            let back = metal::kexec_into(
                t,
                &remote,
                home.facts.initrd.as_deref(),
                &cmdline,
                &self.facts.boot_id,
                self.plan.boot_timeout,
            )?;
            match back {
                None => {
                    let why = format!(
                        "{} did not answer within {} s of the kexec into {variant}",
                        t.describe(),
                        self.plan.boot_timeout.as_secs()
                    );
                    let r = self.failed(serial::BootStatus::Timeout, why.clone(), log)?;
                    return Ok(Booted::Stop(
                        r,
                        format!(
                            "{why}: bring it back (reset it), then run this again; finished boots are kept"
                        ),
                    ));
                }
                Some(f) => self.facts = f,
            }
            if !self.runs(&token) {
                // It rebooted, but not into our kernel: it failed to boot, or panicked
                // and the machine fell back to its default kernel.
                let why = format!(
                    "{} came back running {} without {token}: the {variant} kernel did not boot (or it panicked and the machine rebooted)",
                    t.describe(),
                    self.facts.release
                );
                crate::progress::say(&why);
                let r = self.failed(serial::BootStatus::NoHarness, why, log)?;
                self.used.insert(self.facts.boot_id.clone());
                return Ok(Booted::Record(r));
            }
        }
        let (boot, seconds) = metal::run_harness(t, &self.harness, &self.plan.suite, log)?;
        let mut r = record(boot, seconds, log, Some(t.describe()), &step.key.arch);
        r.boot_id = Some(self.facts.boot_id.clone());
        self.used.insert(self.facts.boot_id.clone());
        Ok(Booted::Record(r))
    }

    /// Everything measured: the machine goes back to its own kernel.
    fn finish(&mut self) -> Result<Option<String>> {
        let (t, home) = (&self.m.target, &self.m.home);
        if !metal::runs_test_kernel(&self.facts.cmdline) {
            return Ok(None);
        }
        let home_line = metal::home_cmdline(&home.facts.cmdline);
        match (t, &home.facts.image) {
            (Target::Ssh(_), Some(image)) => {
                crate::progress::say(&format!(
                    "kexec {} back into its own kernel {}",
                    t.describe(),
                    home.facts.release
                ));
                let back = metal::kexec_into(
                    t,
                    image,
                    home.facts.initrd.as_deref(),
                    &home_line,
                    &self.facts.boot_id,
                    self.plan.boot_timeout,
                )?;
                match back {
                    Some(f) if f.release == home.facts.release => {
                        self.facts = f;
                        Ok(None)
                    }
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
}

/// The kernel a machine runs now, measured as it is: the harness, nothing booted.
pub struct AsFound<'a> {
    plan: &'a Plan,
    m: &'a MachineRun,
    harness: PathBuf,
}

impl<'a> AsFound<'a> {
    pub fn new(plan: &'a Plan, m: &'a MachineRun) -> Result<AsFound<'a>> {
        let arch = plan.arches.first().ok_or_else(|| anyhow::anyhow!("a plan without an architecture"))?;
        Ok(AsFound { plan, m, harness: crate::harness::build_harness(arch)? })
    }
}

impl Backend for AsFound<'_> {
    fn boot(&mut self, step: &BootStep, _kernel: &Kernel, _image: &Path, log: &Path) -> Result<Booted> {
        let t = &self.m.target;
        let (boot, seconds) = metal::run_harness(t, &self.harness, &self.plan.suite, log)?;
        let host = match t {
            Target::Local => self.m.now.hostname.clone(),
            Target::Ssh(d) => d.clone(),
        };
        let mut r = record(boot, seconds, log, Some(host), &step.key.arch);
        // The boot that gave it: every run of an as-found plan is the same boot.
        r.boot_id = Some(self.m.now.boot_id.clone());
        Ok(Booted::Record(r))
    }
}
