//! What one boot leaves behind: where its numbers came from ([`Provenance`]), what the
//! serial console said ([`serial::Boot`]), and, in `records.jsonl`, which boot of the plan
//! it was ([`Stored`]). Pure types, serialized as they always were.

use crate::model::{Accel, ArchName, BootKey, Clock, Variant};
use crate::serial::Boot;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where a sample came from; printed next to every number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    pub arch: ArchName,
    pub accel: Accel,
    pub clock: Clock,
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
    /// On a LAVA lab: the job that ran it and the device it ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lava: Option<crate::lava::LabJob>,
}

/// One finished boot of a plan, as a line of records.jsonl.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stored {
    pub variant: Variant,
    pub rep: usize,
    pub record: BootRecord,
}

impl Stored {
    /// Which boot of the plan this was.
    pub fn key(&self) -> BootKey {
        let p = &self.record.provenance;
        BootKey {
            arch: p.arch.clone(),
            cpus: p.vcpus,
            clock: p.clock,
            variant: self.variant.clone(),
            rep: self.rep,
        }
    }
}
