//! The command line, in one place: flags in, stage calls out.

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use xtask::cmd::{self, run::RunResult, Ran};
use xtask::model::Clock;
use xtask::plan::{AccelChoice, Spec};
use xtask::{arch, build, progress, reftree, series, tree};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Evaluate linux-mm patch series: apply, build, boot, measure, reply")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The main job: apply a series, build baseline and patched kernels, boot them
    /// alternately, compare, and write a reply-ready email and a JSON report.
    Eval {
        /// An mbox, mbox.gz, .eml/.patch, a directory of patches, a message-id or a lore link.
        file: String,
        /// Revision(s): `2`, or `1,2` to evaluate them side by side against one baseline
        /// (default: the highest).
        #[arg(long = "rev", value_name = "N[,N...]")]
        rev: Option<String>,
        /// Every revision in the input, side by side.
        #[arg(long, conflicts_with = "rev")]
        all_revs: bool,
        /// Accept an incomplete revision and use the patches that are there.
        #[arg(long)]
        partial: bool,
        #[command(flatten)]
        format: FormatArg,
        #[command(flatten)]
        tree: TreeArgs,
        /// Base commit (default: the series' base-commit when the tree has it, else HEAD).
        #[arg(long)]
        base: Option<String>,
        #[command(flatten)]
        spec: SpecArgs,
        /// Print the plan (every build, every boot in order, what is done) and stop.
        #[arg(long)]
        dry_run: bool,
    },
    /// Compare two trees with no series: two references from linux-ref (v6.12 v7.2), or
    /// two commits of --tree. Writes a regression report that starts a new thread.
    Compare {
        a: String,
        b: String,
        /// Compare two commits of this checkout instead of two reference trees.
        #[arg(long)]
        tree: Option<PathBuf>,
        #[command(flatten)]
        spec: SpecArgs,
        /// Print the plan (every build, every boot in order, what is done) and stop.
        #[arg(long)]
        dry_run: bool,
    },
    /// The series check of `b4 review` (b4.review-series-check-cmd): the cover letter on
    /// stdin, a JSON list of check results on stdout, from our evaluation of the series.
    #[command(name = "b4-check")]
    B4Check {
        /// Where evaluations are (default: target/eval of this project).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The public-inbox archive the thread is fetched from when b4 gives none.
        #[arg(long, value_name = "URL")]
        lore: Option<String>,
    },
    /// Read a series (mbox, mbox.gz, .eml/.patch, or a directory) and summarise it.
    Series {
        /// An mbox, mbox.gz, .eml/.patch, a directory of patches, a message-id or a lore link.
        file: String,
        #[command(flatten)]
        pick: Pick,
        /// Print the whole model as JSON (every revision, warnings, trailers).
        #[arg(long)]
        json: bool,
    },
    /// Apply a series to a kernel tree with git2, as commits on refs/heads/eval/<slug>.
    Apply {
        /// An mbox, mbox.gz, .eml/.patch, a directory of patches, a message-id or a lore link.
        file: String,
        #[command(flatten)]
        pick: Pick,
        #[command(flatten)]
        tree: TreeArgs,
        /// Base commit (default: the series' base-commit when the tree has it, else HEAD).
        #[arg(long)]
        base: Option<String>,
    },
    /// Build kernels: the base, or with a series the baseline and then the patched tree,
    /// for each architecture (images and metadata are stored in the cache).
    Build {
        /// A series to apply first (default: build only the base).
        file: Option<PathBuf>,
        #[command(flatten)]
        pick: Pick,
        #[command(flatten)]
        tree: TreeArgs,
        /// Base commit (default: the series' base-commit when the tree has it, else HEAD).
        #[arg(long)]
        base: Option<String>,
        #[command(flatten)]
        build: BuildArgs,
        /// Boot each image under QEMU to its console (a smoke test).
        #[arg(long)]
        smoke: bool,
    },
    /// Run the harness: boots of a kernel under QEMU (built if needed), or this host's
    /// kernel (--metal), or another host's (--host user@box); prints every boot and the
    /// boot-to-boot variation per workload.
    Run {
        #[command(flatten)]
        tree: TreeArgs,
        /// The kernel's commit (default: the tree's HEAD).
        #[arg(long)]
        commit: Option<String>,
        #[command(flatten)]
        build: BuildArgs,
        /// A suite from harness/suites (quick, default, full).
        #[arg(long, default_value = "quick")]
        suite: String,
        /// vCPU counts, comma-separated.
        #[arg(long, default_value = "1")]
        cpus: String,
        /// wall, instructions (QEMU -icount: guest instructions as time), or both.
        #[arg(long, default_value = "wall")]
        clock: String,
        /// Boots per (arch, vCPUs, clock).
        #[arg(long, default_value_t = 1)]
        boots: usize,
        /// Instruction-clock boots this many at a time (default: the number of CPUs).
        #[arg(long, value_name = "N")]
        boot_jobs: Option<usize>,
        /// Guest memory in MiB.
        #[arg(long, default_value_t = 1024)]
        mem: u32,
        /// auto (KVM when a probe boot shows it works), kvm or tcg.
        #[arg(long, default_value = "auto")]
        accel: AccelChoice,
        /// Start over instead of resuming an earlier run of the same plan.
        #[arg(long)]
        fresh: bool,
        /// Print the plan and stop.
        #[arg(long)]
        dry_run: bool,
        /// Run on this host's own kernel instead of QEMU.
        #[arg(long, conflicts_with = "host")]
        metal: bool,
        /// Run on another host's kernel over ssh (user@box).
        #[arg(long)]
        host: Option<String>,
        /// Where logs and records go (default: target/run/<suite>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Fetch and import a reference tree from linux-ref/refs.yaml into the cache.
    Ref {
        /// A name from linux-ref/refs.yaml (default: the manifest's default).
        name: Option<String>,
    },
}

#[derive(Args)]
struct Pick {
    /// Which revision (default: the highest).
    #[arg(long = "rev")]
    rev: Option<u32>,
    /// Accept an incomplete revision and use the patches that are there.
    #[arg(long)]
    partial: bool,
    #[command(flatten)]
    format: FormatArg,
}

impl Pick {
    fn choice(&self) -> series::Choice {
        series::Choice { revision: self.rev, partial: self.partial }
    }
}

#[derive(Args)]
struct FormatArg {
    /// Read the mbox as mboxrd (`>From ` lines lose one `>`) even without public-inbox's
    /// `From mboxrd@z` separator; by default only such files are, as git am does.
    #[arg(long)]
    mboxrd: bool,
    /// The public-inbox archive a message-id is fetched from (default: `lore.url` in
    /// mmeval.yaml, else https://lore.kernel.org/all/).
    #[arg(long, value_name = "URL")]
    lore: Option<String>,
    /// Also search the archive for a newer revision of the series (as b4 does) and say
    /// so; `eval` then stops unless --rev names the revision to test.
    #[arg(long)]
    check_newer: bool,
}

impl FormatArg {
    /// With --check-newer: a newer revision in the archive (version, message-id, archive).
    fn newer(
        &self,
        file: &std::path::Path,
        source: Option<&str>,
        choice: series::Choice,
    ) -> Result<Option<(u32, String, String)>> {
        if !self.check_newer {
            return Ok(None);
        }
        let s = xtask::input::read_series_as(file, choice, self.format())?;
        let base = xtask::lore::archive_of(source, self.lore.as_deref())?;
        progress::say(&format!("searching {base} for a revision newer than v{}", s.version));
        Ok(xtask::lore::newer(&base, &s)?.map(|(v, id)| (v, id, base)))
    }

    /// The input as a local file: as given, or the thread fetched from the archive.
    fn input(&self, arg: &str) -> Result<(PathBuf, Option<String>)> {
        xtask::lore::resolve(arg, self.lore.as_deref())
    }

    fn format(&self) -> xtask::mail::MboxFormat {
        if self.mboxrd {
            xtask::mail::MboxFormat::Mboxrd
        } else {
            xtask::mail::MboxFormat::Auto
        }
    }
}

#[derive(Args)]
struct TreeArgs {
    /// Your own kernel checkout (never modified); default: the reference tree.
    #[arg(long)]
    tree: Option<PathBuf>,
    /// A reference tree from linux-ref/refs.yaml (default: its default, v7.2).
    #[arg(long = "ref", conflicts_with = "tree")]
    reference: Option<String>,
}

impl TreeArgs {
    fn resolve(&self) -> Result<tree::TreeHandle> {
        tree::resolve(self.tree.as_deref(), self.reference.as_deref())
    }
}

#[derive(Args)]
struct BuildArgs {
    /// Architectures, comma-separated: x86_64, arm64, ppc64le, or all.
    #[arg(long, default_value = "all")]
    arch: String,
    /// Build with clang/LLVM (LLVM=1) instead of gcc.
    #[arg(long)]
    llvm: bool,
    /// Do not use ccache even when it is installed.
    #[arg(long)]
    no_ccache: bool,
    /// make -j (default: the number of CPUs).
    #[arg(long)]
    jobs: Option<usize>,
    /// An extra Kconfig fragment merged after ours (repeatable); checked like ours.
    #[arg(long = "config", value_name = "FRAGMENT")]
    configs: Vec<PathBuf>,
    /// Run the tree's make without the bubblewrap sandbox (the series' code then runs
    /// as you, with your files and network).
    #[arg(long)]
    no_sandbox: bool,
}

impl BuildArgs {
    fn options(&self) -> build::BuildOptions {
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
struct SpecArgs {
    #[command(flatten)]
    build: BuildArgs,
    /// vCPU counts, comma-separated (default: 1 for eval, 1,2,4 for compare).
    #[arg(long)]
    cpus: Option<String>,
    /// Boots of each kernel per (arch, vCPUs, clock), or `auto`: boot in rounds and
    /// stop each cell when every workload is decided (group-sequential, see README).
    #[arg(long, default_value = "9", value_name = "N|auto")]
    reps: String,
    /// With `--reps auto`: the most boots of each kernel a cell may take.
    #[arg(long, default_value_t = 15, value_name = "N")]
    max_reps: usize,
    /// A suite from harness/suites (quick, default, full) or a suite file.
    #[arg(long, default_value = "default")]
    suite: String,
    /// wall, instructions (QEMU -icount), or both.
    #[arg(long, default_value = "both")]
    clock: String,
    /// auto (KVM when a probe boot shows it works), kvm or tcg.
    #[arg(long, default_value = "auto")]
    accel: AccelChoice,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 1024)]
    mem: u32,
    /// The tester, for From: and Tested-by: (default: mmeval.yaml, else git config).
    #[arg(long)]
    from: Option<String>,
    /// Discard finished boots of an earlier run of the same plan and start over.
    #[arg(long)]
    fresh: bool,
    /// When another run of the same evaluation holds it, wait for that run to end
    /// (default: say who holds it and stop).
    #[arg(long)]
    wait: bool,
    /// Instruction-clock boots run this many at a time (their figures do not depend on
    /// what else the host does); default: the number of CPUs. Wall-clock boots always
    /// run alone.
    #[arg(long, value_name = "N")]
    boot_jobs: Option<usize>,
    /// Where results go (default: target/eval); each run gets its own directory there.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run on this machine's hardware: kernels built from its running config, measured
    /// one boot at a time (each run measures the kernel it finds and says what to boot next).
    #[arg(long, conflicts_with = "host")]
    metal: bool,
    /// Run on another machine over ssh (user@box, root there, kexec-tools installed):
    /// kernels built from its running config, each booted there with kexec.
    #[arg(long, value_name = "USER@BOX")]
    host: Option<String>,
    /// Seconds a real machine may take to come back after a kexec.
    #[arg(long, default_value_t = 600)]
    boot_timeout: u64,
}

impl SpecArgs {
    fn spec(&self, default_cpus: &str) -> Result<Spec> {
        let (reps, auto_reps) = match self.reps.as_str() {
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
        })
    }
}

/// The most boots of each kernel a cell may ask for.
const MAX_REPS: usize = 200;

fn default_boot_jobs() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn parse_clocks(clock: &str) -> Result<Vec<Clock>> {
    Clock::parse_list(clock).ok_or_else(|| anyhow::anyhow!("--clock {clock}: use wall, instructions or both"))
}

fn parse_cpus(cpus: &str) -> Result<Vec<u32>> {
    cpus.split(',')
        .map(|c| match c.trim().parse::<u32>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(anyhow::anyhow!("--cpus {c}: not a vCPU count")),
        })
        .collect()
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Errors quote mail (subjects, paths, hunks): no control sequences reach the terminal.
            eprintln!("error: {}", xtask::mail::scrub_text(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

/// Progress on stderr: as it is on a terminal, each line with the time in a log.
fn progress_sink(command: &'static str) {
    let tty = std::io::stderr().is_terminal();
    progress::set_sink(move |e| {
        let text = xtask::mail::scrub_text(&progress::text(e));
        if tty {
            eprintln!("{command}: {text}");
        } else {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let t = now % 86400;
            eprintln!("[{:02}:{:02}:{:02}] {command}: {text}", t / 3600, t / 60 % 60, t % 60);
        }
    });
}

fn run(cli: Cli) -> Result<()> {
    let started = std::time::Instant::now();
    match cli.command {
        Command::Compare { a, b, tree, spec, dry_run } => {
            progress_sink("compare");
            let opts = cmd::compare::CompareOptions { a, b, tree, spec: spec.spec("1,2,4")?, dry_run };
            match cmd::compare::compare(&opts)? {
                Ran::Planned(p) => print!("{p}"),
                Ran::Measured(out) => out.print(started),
            }
        }
        Command::Eval { file, rev, all_revs, partial, format, tree, base, spec, dry_run } => {
            progress_sink("eval");
            let revisions = match &rev {
                None => vec![],
                Some(list) => list
                    .split(',')
                    .map(|r| r.trim().trim_start_matches('v').parse::<u32>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| {
                        anyhow::anyhow!("--rev {list}: give revision numbers, e.g. --rev 2 or --rev 1,2")
                    })?,
            };
            let (file, source) = format.input(&file)?;
            let choice = match revisions.as_slice() {
                [one] => series::Choice { revision: Some(*one), ..Default::default() },
                _ => Default::default(),
            };
            if let Some((v, id, base)) = format.newer(&file, source.as_deref(), choice)? {
                let what = format!("v{v} of this series is in {base} (<{}>)", xtask::mail::scrub_text(&id));
                if rev.is_none() && !all_revs {
                    anyhow::bail!(
                        "{what}: evaluate it (cargo xtask eval {}), or pass --rev to test the one given",
                        xtask::render::reply::shell_word(&xtask::mail::scrub_text(&id))
                    );
                }
                progress::say(&format!("warning: {what}; testing the revision asked for"));
            }
            let opts = cmd::eval::EvalOptions {
                file,
                source,
                mbox_format: format.format(),
                revisions,
                all_revisions: all_revs,
                partial,
                tree: tree.resolve()?,
                base,
                spec: spec.spec("1")?,
                dry_run,
            };
            match cmd::eval::eval(&opts)? {
                Ran::Planned(p) => print!("{p}"),
                Ran::Measured(out) => out.print(started),
            }
        }
        Command::B4Check { out, lore } => {
            let out = out.unwrap_or_else(|| reftree::project_root().join("target/eval"));
            let checks = cmd::b4check::b4_check(&out, lore.as_deref());
            println!("{}", serde_json::to_string(&checks)?);
        }
        Command::Series { file, pick, json } => {
            let (file, source) = pick.format.input(&file)?;
            if pick.format.check_newer {
                let newer = pick.format.newer(&file, source.as_deref(), pick.choice())?;
                let base = xtask::lore::archive_of(source.as_deref(), pick.format.lore.as_deref())?;
                // On stderr: stdout stays the summary, as without the flag.
                progress::say(&xtask::mail::scrub_text(&match newer {
                    Some((v, id, _)) => {
                        format!(
                            "newer: v{v} is in {base} (<{id}>): cargo xtask series {}",
                            xtask::render::reply::shell_word(&id)
                        )
                    }
                    None => format!("newer: none in {base}"),
                }));
            }
            print!(
                "{}",
                xtask::mail::scrub_text(&cmd::ingest::series(
                    &file,
                    pick.choice(),
                    pick.format.format(),
                    json
                )?)
            );
        }
        Command::Apply { file, pick, tree, base } => {
            let (file, _) = pick.format.input(&file)?;
            let tree = tree.resolve()?;
            let text =
                cmd::ingest::apply(&file, pick.choice(), pick.format.format(), &tree, base.as_deref())?;
            print!("{}", xtask::mail::scrub_text(&text));
        }
        Command::Build { file, pick, tree, base, build: b, smoke } => {
            progress_sink("build");
            let arches = arch::parse_list(&b.arch)?;
            let tree = tree.resolve()?;
            let options = b.options();
            cmd::kernels::build_kernels(&cmd::kernels::BuildRequest {
                series: file.as_deref().map(|f| (f, pick.choice(), pick.format.format())),
                tree: &tree,
                base: base.as_deref(),
                arches: &arches,
                options: &options,
                smoke,
            })?;
        }
        Command::Run {
            tree,
            commit,
            build: b,
            suite,
            cpus,
            clock,
            boots,
            boot_jobs,
            mem,
            accel,
            fresh,
            dry_run,
            metal,
            host,
            out,
        } => {
            progress_sink("run");
            let suite = xtask::suite::load(&suite)?;
            let out = out.unwrap_or_else(|| cmd::run::default_out(&suite.name));
            let target = match (&host, metal) {
                (Some(h), _) => Some(xtask::metal::Target::ssh(h)?),
                (None, true) => Some(xtask::metal::Target::Local),
                (None, false) => None,
            };
            let (tree, commit) = if target.is_some() {
                (
                    tree::TreeHandle { repo_path: PathBuf::new(), key: String::new(), label: String::new() },
                    String::new(),
                )
            } else {
                let t = tree.resolve()?;
                let c = tree::resolve_commit(&t, commit.as_deref().unwrap_or("HEAD"))?;
                (t, c)
            };
            let spec = Spec {
                arches: arch::parse_list(&b.arch)?,
                cpus: parse_cpus(&cpus)?,
                reps: boots.max(1),
                auto_reps: false,
                suite,
                clocks: parse_clocks(&clock)?,
                accel,
                mem_mib: mem,
                build: b.options(),
                from: None,
                out_root: out.clone(),
                fresh,
                wait: false,
                boot_jobs: boot_jobs.unwrap_or_else(default_boot_jobs).max(1),
                target,
                cpus_given: false,
                boot_timeout: std::time::Duration::from_secs(600),
            };
            match cmd::run::run(&cmd::run::RunOptions { tree, commit, spec, out: out.clone(), dry_run })? {
                RunResult::Plan(p) => print!("{p}"),
                RunResult::Done(records) => print!("{}", cmd::run::summary(&records, &out)),
            }
        }
        Command::Ref { name } => {
            let r = reftree::provision(name.as_deref())?;
            println!("{} at {} (commit {})", r.name, r.path.display(), r.commit);
        }
    }
    Ok(())
}
