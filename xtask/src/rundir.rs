//! The evaluation directory (`target/eval/<name>/`) and everything in it, in one place:
//! `plan.json` (the key a re-run must match to resume), `records.jsonl` (one line per
//! finished boot, appended as each ends), the serial log of every boot under `boots/`,
//! `report.json` (rewritten atomically after every stage), the mails and the page,
//! and `host.json` (the machine's own kernel while it runs ours). A re-run with the same
//! plan resumes; a changed plan first moves the earlier evaluation to `previous-<id>/`;
//! `--fresh` discards its boots.

use crate::metal::Home;
use crate::model::{BootKey, Target};
use crate::plan::{Plan, PlanKey};
use crate::record::Stored;
use crate::report::Report;
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const PLAN: &str = "plan.json";
const RECORDS: &str = "records.jsonl";
const REPORT: &str = "report.json";
const HOST: &str = "host.json";
const LOCK: &str = "lock";
const BOOTS: &str = "boots";
/// On a LAVA lab: each submitted job's id, appended before it is waited for.
const LAVA_JOBS: &str = "lava-jobs.jsonl";
/// On a LAVA lab: the kernels and initramfs the jobs fetch (file:// or served).
const LAVA_FILES: &str = "lava-files";
pub const REPLY: &str = "reply.eml";
pub const REGRESSION: &str = "report.eml";
pub const PAGE: &str = "report.html";
/// What belongs to one plan (host.json belongs to the machine, and stays).
const OF_A_PLAN: [&str; 9] = [PLAN, RECORDS, REPORT, REPLY, REGRESSION, PAGE, BOOTS, LAVA_JOBS, LAVA_FILES];

/// What opening the directory for a plan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// Nothing earlier (or the same plan, to resume).
    Same,
    /// `--fresh`: the earlier boots were discarded.
    Fresh,
    /// Another plan's evaluation, moved aside to this directory.
    MovedAside(PathBuf),
}

/// What was in `records.jsonl`.
#[derive(Debug, Default)]
pub struct Records {
    /// The boots of this plan, each once, in the order they were recorded.
    pub boots: Vec<Stored>,
    /// Lines that were not a record (a crash mid-write leaves a truncated last line).
    pub unreadable: usize,
    /// Records of a boot recorded before (only the first counts).
    pub duplicates: usize,
    /// Records of boots this plan does not have.
    pub foreign: usize,
}

pub struct RunDir {
    path: PathBuf,
}

/// Held while a run writes the directory; the system releases it when the process ends,
/// however it ends, so a lock left by a dead run is simply taken.
#[derive(Debug)]
pub struct Lock {
    _file: std::fs::File,
}

impl RunDir {
    /// `path`, created.
    pub fn create(path: PathBuf) -> Result<RunDir> {
        let d = RunDir::at(path);
        d.ensure()?;
        Ok(d)
    }

    /// `path`, not created yet (a dry run writes nothing).
    pub fn at(path: PathBuf) -> RunDir {
        RunDir { path }
    }

    pub fn ensure(&self) -> Result<()> {
        std::fs::create_dir_all(&self.path).with_context(|| format!("cannot create {}", self.path.display()))
    }

    /// An evaluation directory that is there already (for `--dry-run`, which writes
    /// nothing).
    pub fn existing(path: &Path) -> Option<RunDir> {
        path.is_dir().then(|| RunDir { path: path.to_path_buf() })
    }

    /// Whether `plan.json` is this plan's key (its boots would be resumed).
    pub fn is_plan(&self, key: &PlanKey) -> bool {
        let Ok(old) = std::fs::read_to_string(self.file(PLAN)) else { return false };
        let key = serde_json::to_value(key).ok();
        serde_json::from_str::<serde_json::Value>(&old).ok() == key
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn report_path(&self) -> PathBuf {
        self.file(REPORT)
    }

    /// The directory for this run alone: two runs of one evaluation at once would
    /// clobber each other's serial logs. Refused, naming the holder, when one runs.
    pub fn lock(&self, wait: bool) -> Result<Lock> {
        use std::io::Write;
        self.ensure()?;
        let path = self.file(LOCK);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let got = match f.try_lock() {
            Err(std::fs::TryLockError::WouldBlock) if wait => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                crate::progress::say(&format!(
                    "{}: waiting for the other run of this evaluation ({}) to end",
                    self.path.display(),
                    holder.trim()
                ));
                f.lock().map_err(std::fs::TryLockError::Error)
            }
            other => other,
        };
        match got {
            Ok(()) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                f.set_len(0)?;
                write!(f, "pid {} since {}", std::process::id(), crate::render::rfc2822(now as i64, 0))?;
                Ok(Lock { _file: f })
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                anyhow::bail!(
                    "{}: another run of this evaluation is going on ({}); wait for it to end, or stop it",
                    self.path.display(),
                    holder.trim()
                )
            }
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }

    /// Makes the directory the plan's: resume when `plan.json` is this plan's key,
    /// discard the boots with `fresh`, else move the earlier evaluation aside; then
    /// writes the key. Never mixes two plans' boots.
    pub fn open(&self, key: &PlanKey, fresh: bool) -> Result<Opened> {
        self.ensure()?;
        let plan_path = self.file(PLAN);
        let mut opened = Opened::Same;
        if fresh {
            let _ = std::fs::remove_file(self.file(RECORDS));
            opened = Opened::Fresh;
        } else if let Ok(old) = std::fs::read_to_string(&plan_path) {
            if !self.is_plan(key) {
                // Another plan's boots must not mix with this one's; keep them, aside.
                let id = git2::Oid::hash_object(git2::ObjectType::Blob, old.as_bytes())?.to_string();
                let aside = self.file(&format!("previous-{}", &id[..8]));
                std::fs::create_dir_all(&aside)?;
                for name in OF_A_PLAN {
                    if self.file(name).exists() {
                        std::fs::rename(self.file(name), aside.join(name))
                            .with_context(|| format!("cannot move {} aside", self.file(name).display()))?;
                    }
                }
                opened = Opened::MovedAside(aside);
            }
        }
        write_json(&plan_path, key)?;
        Ok(opened)
    }

    /// The plan's finished boots: each boot once (the first record of it), records of
    /// other boots and unreadable lines counted and left out.
    pub fn records(&self, plan: &Plan) -> Result<Records> {
        let path = self.file(RECORDS);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Records::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let mut out = Records::default();
        let mut seen: BTreeSet<BootKey> = BTreeSet::new();
        // Line by line, as bytes: one bad byte spoils one line, not the file.
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)) {
            let Ok(s) = serde_json::from_slice::<Stored>(line) else {
                out.unreadable += 1;
                continue;
            };
            if !plan.wants(&s) {
                out.foreign += 1;
            } else if !seen.insert(s.key()) {
                out.duplicates += 1;
            } else {
                out.boots.push(s);
            }
        }
        Ok(out)
    }

    /// Appends one finished boot to `records.jsonl` (one write of one line).
    pub fn append(&self, s: &Stored) -> Result<()> {
        use std::io::Write;
        let path = self.file(RECORDS);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        // A line that cannot be written whole is taken back: no half record.
        let before = f.metadata()?.len();
        if let Err(e) = f.write_all(format!("{}\n", serde_json::to_string(s)?).as_bytes()) {
            let _ = f.set_len(before);
            anyhow::bail!(
                "cannot write {}: {e} ({}); free some space and run the same command again",
                path.display(),
                crate::host::free_space(&path)
            );
        }
        Ok(())
    }

    pub fn lava_jobs_path(&self) -> PathBuf {
        self.file(LAVA_JOBS)
    }

    pub fn lava_files(&self) -> PathBuf {
        self.file(LAVA_FILES)
    }

    pub fn records_path(&self) -> PathBuf {
        self.file(RECORDS)
    }

    /// Where the KVM probe boot of an architecture leaves its serial log.
    pub fn probe_log(&self, arch: &str) -> PathBuf {
        self.file(&format!("kvm-probe-{arch}.log"))
    }

    /// Where the serial log of a boot goes.
    pub fn boot_log(&self, key: &BootKey, target: &Target) -> PathBuf {
        let name = match target {
            Target::Qemu | Target::Lava(..) => {
                format!("{}-{}cpu-{}-{}-{}.log", key.arch, key.cpus, key.clock, key.variant, key.rep + 1)
            }
            Target::Local | Target::Ssh(_) => {
                format!("{}-metal-{}-{}.log", key.arch, key.variant, key.rep + 1)
            }
        };
        self.file(BOOTS).join(name)
    }

    pub fn write_report(&self, r: &Report) -> Result<()> {
        self.ensure()?;
        write_json(&self.report_path(), r)
    }

    /// Writes a mail or the page (whole, atomically).
    pub fn write_text(&self, name: &str, text: &str) -> Result<PathBuf> {
        self.ensure()?;
        let path = self.file(name);
        write_atomic(&path, text.as_bytes())?;
        Ok(path)
    }

    /// The machine's own kernel, saved while it runs ours.
    pub fn home(&self) -> Result<Option<Home>> {
        let path = self.file(HOST);
        match std::fs::read_to_string(&path) {
            Ok(t) => {
                Ok(Some(serde_json::from_str(&t).with_context(|| format!("{} is corrupt", path.display()))?))
            }
            Err(_) => Ok(None),
        }
    }

    pub fn save_home(&self, h: &Home) -> Result<()> {
        self.ensure()?;
        write_json(&self.file(HOST), h)
    }
}

/// JSON, pretty, written to a temporary file and renamed over the old one.
pub fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    write_atomic(path, (serde_json::to_string_pretty(v)? + "\n").as_bytes())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
