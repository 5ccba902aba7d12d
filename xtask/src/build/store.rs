//! What a build leaves: its metadata, the artifacts stored per (commit, config input)
//! (copied out of the build directory atomically, so a later build cannot overwrite
//! them), and what it came to: built, or a failure of the tree under test.

use crate::arch::Arch;
use crate::kconfig;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// What is recorded next to every image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BuildMeta {
    pub arch: String,
    pub tree: String,
    pub commit: String,
    pub llvm: bool,
    pub compiler: String,
    /// Hash of everything that decides the .config (base target, fragments, compiler).
    pub config_input: String,
    /// git blob id of the final .config.
    pub config_hash: String,
    pub fragments: Vec<String>,
    pub make_target: String,
    pub image: String,
    pub jobs: usize,
    pub ccache: bool,
    pub seconds: f64,
    /// Built in the sandbox (None: stored before the tool recorded it).
    #[serde(default)]
    pub sandboxed: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct Artifacts {
    pub dir: PathBuf,
    pub image: PathBuf,
    pub meta: BuildMeta,
    /// Answered from the artifact store without running make.
    pub reused: bool,
}

impl Artifacts {
    /// The preemption model the stored .config ended with (`PREEMPT_LAZY`, ...).
    pub fn preempt(&self) -> Option<String> {
        let config = std::fs::read_to_string(self.dir.join("config")).ok()?;
        kconfig::preemption_model(&config)
    }
}

/// What a build came to: artifacts, or a failure of the tree under test (data, not a
/// fault of the tool).
#[derive(Debug)]
pub enum BuildOutcome {
    Built(Artifacts),
    Failed(BuildFailure),
}

impl BuildOutcome {
    /// The artifacts, or the failure as an error (for callers that cannot go on).
    pub fn artifacts(self) -> Result<Artifacts> {
        match self {
            BuildOutcome::Built(a) => Ok(a),
            BuildOutcome::Failed(f) => Err(anyhow::anyhow!("{f}")),
        }
    }
}

/// A build that failed: a result about the tree under test, with the compiler's words.
#[derive(Debug, Clone, Serialize)]
pub struct BuildFailure {
    pub arch: String,
    pub commit: String,
    pub step: String,
    pub errors: Vec<String>,
    pub log: PathBuf,
    /// It ran in the build sandbox.
    pub sandboxed: bool,
}

impl fmt::Display for BuildFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} build of {} failed at {} (log: {})",
            self.arch,
            &self.commit[..12],
            self.step,
            self.log.display()
        )?;
        for e in &self.errors {
            write!(f, "\n    {e}")?;
        }
        Ok(())
    }
}

pub(super) fn stored(store: &Path) -> Result<Option<Artifacts>> {
    let meta_path = store.join("meta.json");
    let Ok(text) = std::fs::read_to_string(&meta_path) else { return Ok(None) };
    let meta: BuildMeta =
        serde_json::from_str(&text).with_context(|| format!("{} is corrupt", meta_path.display()))?;
    let image = store.join(&meta.image);
    if !image.is_file() {
        return Ok(None);
    }
    Ok(Some(Artifacts { dir: store.to_path_buf(), image, meta, reused: true }))
}

/// Copies the results out of the build directory, atomically (a temp dir renamed).
pub(super) fn store_artifacts(store: &Path, dir: &Path, arch: &Arch, meta: &BuildMeta) -> Result<Artifacts> {
    let tmp = store.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    std::fs::copy(dir.join(&arch.image), tmp.join(&meta.image))
        .with_context(|| format!("the build left no {}", arch.image))?;
    std::fs::copy(dir.join(".config"), tmp.join("config"))?;
    std::fs::copy(dir.join("System.map"), tmp.join("System.map"))?;
    std::fs::copy(dir.join(".mmeval-build.log"), tmp.join("build.log"))?;
    std::fs::write(tmp.join("meta.json"), serde_json::to_string_pretty(meta)?)?;
    let _ = std::fs::remove_dir_all(store);
    std::fs::rename(&tmp, store)?;
    Ok(Artifacts {
        dir: store.to_path_buf(),
        image: store.join(&meta.image),
        meta: meta.clone(),
        reused: false,
    })
}
