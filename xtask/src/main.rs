//! The command line, in one place: flags in, stage calls out.

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use xtask::{apply, arch, build, input, qemu, reftree, series, tree};

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
        file: PathBuf,
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
    },
    /// Read a series (mbox, mbox.gz, .eml/.patch, or a directory) and summarise it.
    Series {
        file: PathBuf,
        #[command(flatten)]
        pick: Pick,
        /// Print the whole model as JSON (every revision, warnings, trailers).
        #[arg(long)]
        json: bool,
    },
    /// Apply a series to a kernel tree with git2, as commits on refs/heads/eval/<slug>.
    Apply {
        file: PathBuf,
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
        /// Guest memory in MiB.
        #[arg(long, default_value_t = 1024)]
        mem: u32,
        /// auto (KVM when a probe boot shows it works), kvm or tcg.
        #[arg(long, default_value = "auto")]
        accel: xtask::run::AccelChoice,
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
}

impl FormatArg {
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
}

impl BuildArgs {
    fn options(&self) -> build::BuildOptions {
        let mut o = build::BuildOptions {
            llvm: self.llvm,
            ccache: !self.no_ccache,
            extra_fragments: self.configs.clone(),
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
    /// Boots of each kernel per (arch, vCPUs, clock).
    #[arg(long, default_value_t = 9)]
    reps: usize,
    /// A suite from harness/suites (quick, default, full) or a suite file.
    #[arg(long, default_value = "default")]
    suite: String,
    /// wall, instructions (QEMU -icount), or both.
    #[arg(long, default_value = "both")]
    clock: String,
    /// auto (KVM when a probe boot shows it works), kvm or tcg.
    #[arg(long, default_value = "auto")]
    accel: xtask::run::AccelChoice,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 1024)]
    mem: u32,
    /// The tester, for From: and Tested-by: (default: mmeval.yaml, else git config).
    #[arg(long)]
    from: Option<String>,
    /// Discard finished boots of an earlier run of the same plan and start over.
    #[arg(long)]
    fresh: bool,
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
    fn spec(&self, default_cpus: &str) -> Result<xtask::eval::Spec> {
        if self.reps < 1 {
            anyhow::bail!("--reps must be at least 1");
        }
        Ok(xtask::eval::Spec {
            arches: arch::parse_list(&self.build.arch)?,
            cpus: parse_cpus(self.cpus.as_deref().unwrap_or(default_cpus))?,
            reps: self.reps,
            suite: xtask::suite::load(&self.suite)?,
            clocks: parse_clocks(&self.clock)?,
            accel: self.accel,
            mem_mib: self.mem,
            build: self.build.options(),
            from: self.from.as_deref().map(xtask::eval::parse_from).transpose()?,
            out_root: self.out.clone().unwrap_or_else(|| reftree::project_root().join("target/eval")),
            fresh: self.fresh,
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

/// Where the results are, what they say, and how long each stage took.
fn print_outcome(out: &xtask::eval::EvalOutcome, started: std::time::Instant) {
    use xtask::compare::Verdict;
    let r = &out.report;
    println!("email:  {}", out.email.display());
    println!("report: {}", out.dir.join("report.json").display());
    println!("page:   {}", out.dir.join("report.html").display());
    if r.apply.is_some() {
        println!("result: the series does not apply");
    } else {
        println!(
            "result: {} builds, {}/{} boots ok; {} improvements, {} regressions, {} no change, {} too noisy, {} too few runs{}",
            r.builds.len(),
            r.boots.iter().filter(|b| b.status == xtask::serial::BootStatus::Ok).count(),
            r.expected_boots(),
            r.count(Verdict::Improvement),
            r.count(Verdict::Regression),
            r.count(Verdict::NoSignificantChange),
            r.count(Verdict::TooNoisy),
            r.count(Verdict::TooFewRuns),
            match (r.releases.is_some(), r.all_passed()) {
                (true, _) => "",
                (false, true) => "; Tested-by given",
                (false, false) => "; no Tested-by (not everything passed)",
            }
        );
    }
    if let Some(p) = &out.pending {
        println!("next:   {p}");
    }
    println!("time:");
    for s in &r.timing {
        println!("  {:<12} {:>8.1} s", s.stage, s.seconds);
    }
    println!("  {:<12} {:>8.1} s", "total", started.elapsed().as_secs_f64());
}

fn parse_clocks(clock: &str) -> Result<Vec<qemu::Clock>> {
    Ok(match clock {
        "wall" => vec![qemu::Clock::Wall],
        "instructions" => vec![qemu::Clock::Instructions],
        "both" => vec![qemu::Clock::Wall, qemu::Clock::Instructions],
        other => anyhow::bail!("--clock {other}: use wall, instructions or both"),
    })
}

fn parse_cpus(cpus: &str) -> Result<Vec<u32>> {
    cpus.split(',')
        .map(|c| match c.trim().parse::<u32>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(anyhow::anyhow!("--cpus {c}: not a vCPU count")),
        })
        .collect()
}

fn qemu_check(name: &str) -> Result<()> {
    build::check_qemu(&arch::table()?[name])
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Compare { a, b, tree, spec } => {
            let started = std::time::Instant::now();
            let opts = xtask::eval::CompareOptions { a, b, tree, spec: spec.spec("1,2,4")? };
            print_outcome(&xtask::eval::compare_trees(&opts)?, started);
        }
        Command::Eval { file, rev, all_revs, partial, format, tree, base, spec } => {
            let started = std::time::Instant::now();
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
            let opts = xtask::eval::EvalOptions {
                file,
                mbox_format: format.format(),
                revisions,
                all_revisions: all_revs,
                partial,
                tree: tree.resolve()?,
                base,
                spec: spec.spec("1")?,
            };
            print_outcome(&xtask::eval::eval(&opts)?, started);
        }
        Command::Series { file, pick, json } => {
            if json {
                let mb = input::read_mailbox_as(&file, pick.format.format())?;
                let chosen = series::choose(&mb, pick.choice())?;
                let out = serde_json::json!({ "chosen": chosen, "mailbox": mb });
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print!(
                    "{}",
                    series::summary(&input::read_series_as(&file, pick.choice(), pick.format.format())?)
                );
            }
        }
        Command::Apply { file, pick, tree, base } => {
            let s = input::read_series_as(&file, pick.choice(), pick.format.format())?;
            let tree = tree.resolve()?;
            let applied = apply::apply_to_repo(&tree.repo_path, &s, base.as_deref())?;
            println!("Applied v{} of \"{}\" to {}", s.version, s.subject(), tree.label);
            println!("  base {} ({})", applied.base, applied.base_source);
            if let Some(from) = s.rerolled_from {
                println!("  a partial reroll: the patches marked (from v{from}) are v{from}'s");
            }
            for (p, sp) in applied.patches.iter().zip(&s.patches) {
                let how = if p.three_way { "  (three-way)" } else { "" };
                let from = sp.from_revision.map(|v| format!("  (from v{v})")).unwrap_or_default();
                println!("  {} {}/{} {}{how}{from}", &p.commit[..12], p.number, s.patches.len(), p.subject);
                for o in &p.offsets {
                    println!("      applied at an offset: {o}");
                }
            }
            println!("  {} -> {}", applied.refname, applied.tip);
        }
        Command::Build { file, pick, tree, base, build: b, smoke } => {
            let arches = arch::parse_list(&b.arch)?;
            let tree = tree.resolve()?;
            let variants = match &file {
                Some(f) => {
                    let s = input::read_series_as(f, pick.choice(), pick.format.format())?;
                    let applied = apply::apply_to_repo(&tree.repo_path, &s, base.as_deref())?;
                    println!("Applied v{} of \"{}\" as {}", s.version, s.subject(), applied.refname);
                    vec![("baseline", applied.base), ("patched", applied.tip)]
                }
                None => vec![("baseline", tree::resolve_commit(&tree, base.as_deref().unwrap_or("HEAD"))?)],
            };
            let results = build::build_variants(&tree, &variants, &arches, &b.options());
            let mut failed = 0;
            for r in &results {
                match &r.outcome {
                    Ok(a) => {
                        let how = if a.reused {
                            format!("stored (built earlier in {:.1} s)", a.meta.seconds)
                        } else {
                            format!("built in {:.1} s", a.meta.seconds)
                        };
                        println!(
                            "{:<8} {:<9} {} {how}  {}",
                            r.arch,
                            r.variant,
                            &r.commit[..12],
                            a.image.display()
                        );
                        if smoke {
                            qemu_check(&r.arch)?;
                            let log = a.dir.join("smoke-serial.log");
                            let table = arch::table()?;
                            let banner = qemu::smoke(&table[&r.arch], &a.image, &log)?;
                            println!("{:<8} {:<9} boots: {banner}", r.arch, r.variant);
                        }
                    }
                    Err(e) => {
                        failed += 1;
                        println!("{:<8} {:<9} {} FAILED: {e:#}", r.arch, r.variant, &r.commit[..12]);
                    }
                }
            }
            if failed > 0 {
                anyhow::bail!("{failed} of {} builds failed", results.len());
            }
        }
        Command::Run { tree, commit, build: b, suite, cpus, clock, boots, mem, accel, metal, host, out } => {
            let suite = xtask::suite::load(&suite)?;
            let out = out.unwrap_or_else(|| reftree::project_root().join("target/run").join(&suite.name));
            let records = if metal || host.is_some() {
                let mut records = Vec::new();
                for i in 0..boots.max(1) {
                    let log = out.join(format!("metal-{}.log", i + 1));
                    let r = match &host {
                        None => {
                            let me = arch::parse_list(std::env::consts::ARCH)?.remove(0);
                            xtask::run::metal(&xtask::harness::build_harness(&me)?, &suite, &log)?
                        }
                        Some(h) => xtask::run::ssh(h, &suite, &log)?,
                    };
                    eprintln!(
                        "[run] metal {} {} ({}): {:?}, {} results, {} failed runs",
                        r.provenance.host.as_deref().unwrap_or(""),
                        r.provenance.kernel,
                        r.provenance.cpu_model,
                        r.boot.status,
                        r.boot.results.len(),
                        r.boot.failures.len()
                    );
                    records.push(r);
                }
                records
            } else {
                let tree = tree.resolve()?;
                let commit = tree::resolve_commit(&tree, commit.as_deref().unwrap_or("HEAD"))?;
                let clocks = parse_clocks(&clock)?;
                let cpus = parse_cpus(&cpus)?;
                let plan = xtask::run::Plan {
                    tree,
                    commit,
                    arches: arch::parse_list(&b.arch)?,
                    suite,
                    cpus,
                    clocks,
                    boots: boots.max(1),
                    mem_mib: mem,
                    accel,
                    out: out.clone(),
                    build: b.options(),
                };
                xtask::run::run_plan(&plan)?
            };
            for r in &records {
                for f in &r.boot.failures {
                    println!("failed run: {} {}: {}", r.provenance.arch, f.id, f.reason);
                }
                if r.boot.status != xtask::serial::BootStatus::Ok {
                    println!("boot {:?} ({}):", r.boot.status, r.log.display());
                    for l in &r.boot.excerpt {
                        println!("    {l}");
                    }
                }
            }
            print!("{}", xtask::run::variation_table(&records));
            println!("records: {}", out.join("records.jsonl").display());
        }
        Command::Ref { name } => {
            let r = reftree::provision(name.as_deref())?;
            println!("{} at {} (commit {})", r.name, r.path.display(), r.commit);
        }
    }
    Ok(())
}
