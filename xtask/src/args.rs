//! The option groups the commands share (which revision, reading mail, the tree, the
//! build, what to measure) and how each becomes the library's values.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use xtask::model::Clock;
use xtask::plan::{AccelChoice, Spec};
use xtask::{arch, build, reftree, series, tree};

#[derive(Args)]
pub struct Pick {
    /// Which revision (default: the highest).
    #[arg(long = "rev")]
    pub rev: Option<u32>,
    /// Accept an incomplete revision and use the patches that are there.
    #[arg(long)]
    pub partial: bool,
    #[command(flatten)]
    pub format: FormatArg,
}

impl Pick {
    pub fn choice(&self) -> series::Choice {
        series::Choice { revision: self.rev, partial: self.partial }
    }
}

#[derive(Args)]
pub struct FormatArg {
    /// Read the mbox as mboxrd (`>From ` lines lose one `>`) even without public-inbox's
    /// `From mboxrd@z` separator; by default only such files are, as git am does.
    #[arg(long)]
    pub mboxrd: bool,
    /// The public-inbox archive a message-id is fetched from (default: `lore.url` in
    /// mmeval.yaml, else https://lore.kernel.org/all/).
    #[arg(long, value_name = "URL")]
    pub lore: Option<String>,
    /// Also search the archive for a newer revision of the series (as b4 does) and say
    /// so; `eval` then stops unless --rev names the revision to test.
    #[arg(long)]
    pub check_newer: bool,
}

impl FormatArg {
    /// With --check-newer: the archive to search for a newer revision.
    pub fn newer_in(&self, source: Option<&str>) -> Result<Option<String>> {
        self.check_newer.then(|| xtask::lore::archive_of(source, self.lore.as_deref())).transpose()
    }

    /// The input as a local file: as given, or the thread fetched from the archive.
    pub fn input(&self, arg: &str) -> Result<(PathBuf, Option<String>)> {
        xtask::lore::resolve(arg, self.lore.as_deref())
    }

    pub fn format(&self) -> xtask::mail::MboxFormat {
        if self.mboxrd {
            xtask::mail::MboxFormat::Mboxrd
        } else {
            xtask::mail::MboxFormat::Auto
        }
    }
}

#[derive(Args)]
pub struct TreeArgs {
    /// Your own kernel checkout (never modified); default: the reference tree.
    #[arg(long)]
    pub tree: Option<PathBuf>,
    /// A reference tree from linux-ref/refs.yaml (default: its default, v7.2).
    #[arg(long = "ref", conflicts_with = "tree")]
    pub reference: Option<String>,
}

impl TreeArgs {
    pub fn resolve(&self) -> Result<tree::TreeHandle> {
        tree::resolve(self.tree.as_deref(), self.reference.as_deref())
    }
}

#[derive(Args)]
pub struct BuildArgs {
    /// Architectures, comma-separated: x86_64, arm64, ppc64le, or all.
    #[arg(long, default_value = "all")]
    pub arch: String,
    /// Build with clang/LLVM (LLVM=1) instead of gcc.
    #[arg(long)]
    pub llvm: bool,
    /// Do not use ccache even when it is installed.
    #[arg(long)]
    pub no_ccache: bool,
    /// make -j (default: the number of CPUs).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// An extra Kconfig fragment merged after ours (repeatable); checked like ours.
    #[arg(long = "config", value_name = "FRAGMENT")]
    pub configs: Vec<PathBuf>,
    /// Run the tree's make without the bubblewrap sandbox (the series' code then runs
    /// as you, with your files and network).
    #[arg(long)]
    pub no_sandbox: bool,
}

impl BuildArgs {
    pub fn options(&self) -> build::BuildOptions {
        let mut o = build::BuildOptions {
            llvm: self.llvm,
            ccache: !self.no_ccache,
            extra_fragments: self.configs.clone(),
            sandbox: !self.no_sandbox,
            ..Default::default()
        };
        if let Some(j) = self.jobs {
            o.jobs = j.max(1);
        }
        o
    }
}

/// What `eval` and `compare` measure, and where the results go.
#[derive(Args)]
pub struct SpecArgs {
    #[command(flatten)]
    pub build: BuildArgs,
    /// vCPU counts, comma-separated (default: 1 for eval, 1,2,4 for compare).
    #[arg(long)]
    pub cpus: Option<String>,
    /// Boots of each kernel per (arch, vCPUs, clock), or `auto`: boot in rounds and
    /// stop each cell when every workload is decided (group-sequential, see README).
    /// Default: auto (a fixed 9 with --per-patch).
    #[arg(long, value_name = "N|auto")]
    pub reps: Option<String>,
    /// With `--reps auto`: the most boots of each kernel a cell may take.
    #[arg(long, default_value_t = xtask::sequential::DEFAULT_MAX_REPS, value_name = "N")]
    pub max_reps: usize,
    /// A suite from harness/suites (quick, default, full) or a suite file.
    #[arg(long, default_value = "default")]
    pub suite: String,
    /// wall, instructions (QEMU -icount), or both.
    #[arg(long, default_value = "both")]
    pub clock: String,
    /// auto (KVM when a probe boot shows it works), kvm or tcg.
    #[arg(long, default_value = "auto")]
    pub accel: AccelChoice,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 1024)]
    pub mem: u32,
    /// The tester, for From: and Tested-by: (default: mmeval.yaml, else git config).
    #[arg(long)]
    pub from: Option<String>,
    /// Discard finished boots of an earlier run of the same plan and start over.
    #[arg(long)]
    pub fresh: bool,
    /// When another run of the same evaluation holds it, wait for that run to end
    /// (default: say who holds it and stop).
    #[arg(long)]
    pub wait: bool,
    /// Instruction-clock boots run this many at a time (their figures do not depend on
    /// what else the host does); default: the number of CPUs. Wall-clock boots always
    /// run alone.
    #[arg(long, value_name = "N")]
    pub boot_jobs: Option<usize>,
    /// Where results go (default: target/eval); each run gets its own directory there.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run on this machine's hardware: kernels built from its running config, measured
    /// one boot at a time (each run measures the kernel it finds and says what to boot next).
    #[arg(long, conflicts_with = "host")]
    pub metal: bool,
    /// Run on another machine over ssh (user@box, root there, kexec-tools installed):
    /// kernels built from its running config, each booted there with kexec.
    #[arg(long, value_name = "USER@BOX")]
    pub host: Option<String>,
    /// Seconds a real machine may take to come back after a kexec.
    #[arg(long, default_value_t = 600)]
    pub boot_timeout: u64,
    #[command(flatten)]
    pub lab: LabArgs,
}

/// `--lava URL`: boots as the jobs of a LAVA lab.
#[derive(Args, Clone)]
pub struct LabArgs {
    /// Boot on a LAVA lab (its URL, e.g. http://lab:8000): one job per boot.
    #[arg(long, value_name = "URL", conflicts_with_all = ["metal", "host"])]
    pub lava: Option<String>,
    /// A file holding the lab's API token (default: the one `cargo xtask lab up` made,
    /// for that lab).
    #[arg(long, value_name = "FILE", requires = "lava")]
    pub lava_token_file: Option<PathBuf>,
    /// The lab's device type to boot on.
    #[arg(long, default_value = "qemu", value_name = "TYPE")]
    pub lava_device_type: String,
    /// Jobs queued at once (default: the lab's devices of that type).
    #[arg(long, value_name = "N", requires = "lava")]
    pub lava_jobs: Option<usize>,
    /// Serve the kernels to the lab from this machine over HTTP (HOST:PORT as the
    /// lab's workers reach it) instead of file:// paths on a shared disk.
    #[arg(long, value_name = "HOST:PORT", requires = "lava")]
    pub lava_serve: Option<String>,
    /// Copy the kernels into a directory the lab serves (DIR=URL); removed after the run.
    #[arg(long, value_name = "DIR=URL", requires = "lava")]
    pub lava_upload: Option<String>,
}

impl LabArgs {
    /// The lab, checked (reachable, the token a user's, devices of the type).
    pub fn spec(&self) -> Result<Option<xtask::lava::LabSpec>> {
        let Some(url) = &self.lava else { return Ok(None) };
        let url = xtask::lava::base_url(url)?;
        let token_file = match &self.lava_token_file {
            Some(f) => f.clone(),
            None => xtask::cmd::lab::token_file_for(&url).ok_or_else(|| {
                anyhow::anyhow!("--lava {url}: give the lab's API token with --lava-token-file FILE (`cargo xtask lab up` makes one for its own lab)")
            })?,
        };
        let serve = xtask::lava::Serve::parse(self.lava_serve.as_deref(), self.lava_upload.as_deref())?;
        let lab = xtask::lava::Lab::new(&url, &xtask::lava::read_token(&token_file)?)?;
        let jobs = match self.lava_jobs {
            Some(0) => anyhow::bail!("--lava-jobs 0: at least 1"),
            Some(n) => n,
            None => lab.check(&self.lava_device_type)?.1.len(),
        };
        Ok(Some(xtask::lava::LabSpec {
            url,
            device_type: self.lava_device_type.clone(),
            token_file,
            jobs,
            serve,
        }))
    }
}

impl SpecArgs {
    /// The spec; `default_reps` when `--reps` is not given ("auto", or a fixed count).
    pub fn spec(&self, default_cpus: &str, default_reps: &str) -> Result<Spec> {
        let (reps, auto_reps) = match self.reps.as_deref().unwrap_or(default_reps) {
            "auto" => (self.max_reps, true),
            n => match n.parse::<usize>() {
                Ok(r) if (1..=MAX_REPS).contains(&r) => (r, false),
                _ => anyhow::bail!("--reps {n}: use a number of boots from 1 to {MAX_REPS}, or auto"),
            },
        };
        if self.max_reps > MAX_REPS {
            anyhow::bail!("--max-reps {}: at most {MAX_REPS}", self.max_reps);
        }
        Ok(Spec {
            arches: arch::parse_list(&self.build.arch)?,
            cpus: parse_cpus(self.cpus.as_deref().unwrap_or(default_cpus))?,
            reps,
            auto_reps,
            suite: xtask::suite::load(&self.suite)?,
            clocks: parse_clocks(&self.clock)?,
            accel: self.accel,
            mem_mib: self.mem,
            build: self.build.options(),
            from: self.from.as_deref().map(xtask::config::parse_from).transpose()?,
            out_root: self.out.clone().unwrap_or_else(|| reftree::project_root().join("target/eval")),
            fresh: self.fresh,
            wait: self.wait,
            boot_jobs: self.boot_jobs.unwrap_or_else(default_boot_jobs).max(1),
            target: match (&self.host, self.metal) {
                (Some(h), _) => Some(xtask::metal::Target::ssh(h)?),
                (None, true) => Some(xtask::metal::Target::Local),
                (None, false) => None,
            },
            cpus_given: self.cpus.is_some(),
            boot_timeout: std::time::Duration::from_secs(self.boot_timeout.max(10)),
            lab: self.lab.spec()?,
        })
    }
}

/// The most boots of each kernel a cell may ask for.
pub const MAX_REPS: usize = 200;

pub fn default_boot_jobs() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

pub fn parse_clocks(clock: &str) -> Result<Vec<Clock>> {
    Clock::parse_list(clock).ok_or_else(|| anyhow::anyhow!("--clock {clock}: use wall, instructions or both"))
}

pub fn parse_cpus(cpus: &str) -> Result<Vec<u32>> {
    cpus.split(',')
        .map(|c| match c.trim().parse::<u32>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(anyhow::anyhow!("--cpus {c}: not a vCPU count")),
        })
        .collect()
}

/// `eval`'s `--reps` when none is given: auto, but a fixed 9 with `--per-patch` (each
/// step is compared at the same number of boots).
pub fn eval_default_reps(per_patch: bool) -> &'static str {
    if per_patch {
        "9"
    } else {
        "auto"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// `eval`'s options that decide its repetitions.
    #[derive(Parser)]
    struct Eval {
        #[command(flatten)]
        spec: SpecArgs,
        #[arg(long)]
        per_patch: bool,
    }

    fn eval_spec(args: &[&str]) -> Spec {
        let e = Eval::try_parse_from([&["eval"][..], args].concat()).unwrap();
        e.spec.spec("1", eval_default_reps(e.per_patch)).unwrap()
    }

    #[test]
    fn reps_default_to_auto_and_per_patch_to_a_fixed_nine() {
        let s = eval_spec(&[]);
        assert!(s.auto_reps && s.reps == 15, "auto with the budget of 15");
        let s = eval_spec(&["--max-reps", "10"]);
        assert!(s.auto_reps && s.reps == 10);
        let s = eval_spec(&["--reps", "9"]);
        assert!(!s.auto_reps && s.reps == 9);
        let s = eval_spec(&["--per-patch"]);
        assert!(!s.auto_reps && s.reps == 9, "--per-patch: fixed 9");
        // Asked for explicitly, auto with --per-patch is refused by eval itself.
        assert!(eval_spec(&["--per-patch", "--reps", "auto"]).auto_reps);
    }
}
