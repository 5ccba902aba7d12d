//! How a boot of the plan is run: one small interface, one module per way. QEMU on
//! this machine ([`qemu::QemuHere`]), a real machine over ssh with kexec or this host
//! itself ([`machine::Machine`]), a LAVA lab's devices ([`lava::OnLab`]), and in tests a fake that replays recorded serial logs.
//! A new backend is one module here and one arm in [`for_plan`].

pub mod lava;
pub mod machine;
pub mod qemu;

use crate::model::Target;
use crate::plan::{BootStep, Kernel, MachineRun, Plan};
use crate::record::{BootRecord, Stored};
use crate::rundir::RunDir;
use anyhow::Result;
use std::path::Path;

/// What came of asking for one boot.
pub enum Booted {
    /// The boot happened; its record says how it went (a kernel that panicked is data).
    Record(BootRecord),
    /// Not booted: what the user must do before running the same command again (this
    /// host cannot kexec itself and carry on).
    Pending(String),
    /// Recorded, and then the run cannot go on (a machine that stopped answering): the
    /// record is kept and the run stops with this message.
    Stop(BootRecord, String),
}

pub trait Backend {
    /// Boots `kernel` (its image for the step's architecture at `image`) once, runs the
    /// harness, and leaves the serial log at `log`.
    fn boot(&mut self, step: &BootStep, kernel: &Kernel, image: &Path, log: &Path) -> Result<Booted>;

    /// For boots that may run side by side (`steps`, each with its image): makes ready
    /// what they need and returns a booter that several threads can use at once. None:
    /// this backend boots one at a time.
    fn side_by_side<'s>(
        &'s mut self,
        _steps: &[(&BootStep, &Path)],
    ) -> Result<Option<Box<dyn SharedBoot + 's>>> {
        Ok(None)
    }

    /// After the last boot of the plan: put things back (a machine goes home to its
    /// own kernel). What the user must still do, if anything.
    fn finish(&mut self) -> Result<Option<String>> {
        Ok(None)
    }
}

/// Boots that threads run at once (the same contract as [`Backend::boot`]).
pub trait SharedBoot: Sync {
    fn boot(&self, step: &BootStep, kernel: &Kernel, image: &Path, log: &Path) -> Result<BootRecord>;
}

/// The backend a plan's target calls for.
pub fn for_plan<'a>(
    plan: &'a Plan,
    machine: Option<&'a MachineRun>,
    done: &[Stored],
    dir: &'a RunDir,
) -> Result<Box<dyn Backend + 'a>> {
    Ok(match (&plan.target, machine) {
        (Target::Qemu, _) => Box::new(qemu::QemuHere::new(plan, dir)),
        (Target::Lava(..), _) => Box::new(lava::OnLab::new(plan, dir)?),
        (Target::Local | Target::Ssh(_), Some(m)) if plan.as_found => {
            Box::new(machine::AsFound::new(plan, m)?)
        }
        (Target::Local | Target::Ssh(_), Some(m)) => Box::new(machine::Machine::new(plan, m, done)?),
        (t, None) => anyhow::bail!("a plan for {} needs the machine's facts", t.name()),
    })
}
