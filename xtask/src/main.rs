//! The command line, in one place (with `args.rs`, the option groups the commands
//! share): flags in, stage calls out.

mod args;

use anyhow::Result;
use args::{
    default_boot_jobs, parse_clocks, parse_cpus, BuildArgs, FormatArg, LabArgs, Pick, SpecArgs, TreeArgs,
};
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use xtask::cmd::{self, run::RunResult, Ran};
use xtask::plan::{AccelChoice, Spec};
use xtask::{arch, progress, reftree, tree};

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
        /// Also measure the tree after each patch (1/N ... N/N) in the same interleaved
        /// run, and report what each patch changes against the one before.
        #[arg(long, conflicts_with = "all_revs")]
        per_patch: bool,
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
    /// The first commit between GOOD and BAD (first-parent history) at which the
    /// workloads became slower (or faster), measured: GOOD and BAD first, then each
    /// midpoint booted interleaved with both; writes `bisect.json` and a report naming it.
    Bisect {
        good: String,
        bad: String,
        #[command(flatten)]
        tree: TreeArgs,
        /// A workload to follow (repeatable; default: every one GOOD -> BAD moved).
        #[arg(long = "workload", value_name = "ID")]
        workloads: Vec<String>,
        /// Look for the commit that made them faster instead.
        #[arg(long)]
        improvement: bool,
        /// The smallest change that counts, in percent (default: min_change_pct of mmeval.yaml).
        #[arg(long, value_name = "PCT")]
        threshold: Option<f64>,
        #[command(flatten)]
        build: BuildArgs,
        /// A suite from harness/suites (quick, default, full) or a suite file.
        #[arg(long, default_value = "quick")]
        suite: String,
        /// wall or instructions (the instruction clock decides fastest and repeats).
        #[arg(long, default_value = "instructions")]
        clock: String,
        /// vCPUs of the guest.
        #[arg(long, default_value = "1")]
        cpus: String,
        /// Boots of each kernel per step (twice as many again for a step still undecided).
        #[arg(long, default_value_t = 4)]
        reps: usize,
        /// Guest memory in MiB.
        #[arg(long, default_value_t = 1024)]
        mem: u32,
        /// Where results go (default: target/eval).
        #[arg(long)]
        out: Option<PathBuf>,
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
        #[command(flatten)]
        lab: LabArgs,
    },
    /// A local LAVA lab to try `--lava` with: `up` installs what is missing (as root),
    /// starts PostgreSQL, lava-server and a worker with two qemu devices on 127.0.0.1,
    /// and prints the URL and the token file; `down` stops exactly what `up` started.
    Lab {
        #[command(subcommand)]
        action: LabAction,
    },
    /// Fetch and import a reference tree from linux-ref/refs.yaml into the cache.
    Ref {
        /// A name from linux-ref/refs.yaml (default: the manifest's default).
        name: Option<String>,
    },
}

#[derive(Subcommand)]
enum LabAction {
    /// Start the lab (install what is missing when root) and print its URL and token file.
    Up,
    /// Stop exactly the processes `up` started.
    Down,
    /// What runs, with pids.
    Status,
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
            let opts =
                cmd::compare::CompareOptions { a, b, tree, spec: spec.spec("1,2,4", "auto")?, dry_run };
            match cmd::compare::compare(&opts)? {
                Ran::Planned(p) => print!("{p}"),
                Ran::Measured(out) => out.print(started),
            }
        }
        Command::Eval { file, rev, all_revs, partial, format, tree, base, spec, dry_run, per_patch } => {
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
            let opts = cmd::eval::EvalOptions {
                file,
                newer_in: format.newer_in(source.as_deref())?,
                source,
                mbox_format: format.format(),
                revisions,
                all_revisions: all_revs,
                partial,
                tree: tree.resolve()?,
                base,
                spec: spec.spec("1", args::eval_default_reps(per_patch))?,
                dry_run,
                per_patch,
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
            if let Some(base) = pick.format.newer_in(source.as_deref())? {
                let s = xtask::input::read_series_as(&file, pick.choice(), pick.format.format())?;
                // On stderr: stdout stays the summary, as without the flag.
                progress::say(&match xtask::lore::newer(&base, &s)? {
                    Some((v, id)) => format!(
                        "newer: v{v} is in {base} (<{id}>): cargo xtask series {}",
                        xtask::render::reply::shell_word(&id)
                    ),
                    None => format!("newer: none in {base}"),
                });
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
            lab,
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
                lab: lab.spec()?,
            };
            match cmd::run::run(&cmd::run::RunOptions { tree, commit, spec, out: out.clone(), dry_run })? {
                RunResult::Plan(p) => print!("{p}"),
                RunResult::Done(records) => print!("{}", cmd::run::summary(&records, &out)),
            }
        }
        Command::Bisect {
            good,
            bad,
            tree,
            workloads,
            improvement,
            threshold,
            build: b,
            suite,
            clock,
            cpus,
            reps,
            mem,
            out,
        } => {
            progress_sink("bisect");
            if !(1..=args::MAX_REPS).contains(&reps) {
                anyhow::bail!("--reps {reps}: from 1 to {}", args::MAX_REPS);
            }
            let spec = Spec {
                arches: arch::parse_list(&b.arch)?,
                cpus: parse_cpus(&cpus)?,
                reps,
                auto_reps: false,
                suite: xtask::suite::load(&suite)?,
                clocks: parse_clocks(&clock)?,
                accel: AccelChoice::Auto,
                mem_mib: mem,
                build: b.options(),
                from: None,
                out_root: out.unwrap_or_else(|| reftree::project_root().join("target/eval")),
                fresh: false,
                wait: false,
                boot_jobs: default_boot_jobs(),
                target: None,
                cpus_given: true,
                boot_timeout: std::time::Duration::from_secs(600),
                lab: None,
            };
            let opts = cmd::bisect::BisectOptions {
                good,
                bad,
                tree: tree.resolve()?,
                workloads,
                direction: if improvement {
                    xtask::bisect::Direction::Faster
                } else {
                    xtask::bisect::Direction::Slower
                },
                threshold_pct: threshold,
                spec,
            };
            let (b, mail) = cmd::bisect::bisect(&opts)?;
            print!("{}", cmd::bisect::text(&b));
            println!("report: {}", mail.display());
        }
        Command::Lab { action } => {
            progress_sink("lab");
            match action {
                LabAction::Up => {
                    let s = cmd::lab::up()?;
                    println!("{} {}", s.url, s.token_file.display());
                }
                LabAction::Down => cmd::lab::down()?,
                LabAction::Status => print!("{}", cmd::lab::status()?),
            }
        }
        Command::Ref { name } => {
            let r = reftree::provision(name.as_deref())?;
            println!("{} at {} (commit {})", r.name, r.path.display(), r.commit);
        }
    }
    Ok(())
}
