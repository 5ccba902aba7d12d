//! Kernel builds: one source checkout per tree and one build directory (O=) per
//! (tree, architecture) in the cache, reused across runs so that the patched build
//! after the baseline recompiles only what the series touched. Each finished build's
//! image, .config, System.map, log and metadata are copied out per (commit, config), so
//! a later build cannot overwrite them and a repeated request is answered from there.

mod argv;
mod log;
mod store;

pub use argv::{compiler_cmd, make_argv, make_vars};

pub use log::{compiler_errors, kbuild_step};
use log::{progress, stream};
use store::{store_artifacts, stored};
pub use store::{Artifacts, BuildFailure, BuildMeta, BuildOutcome};

use crate::arch::Arch;
use crate::reftree::{cache_root, project_root};
use crate::tree::TreeHandle;
use crate::{host, kconfig};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;
use xshell::{cmd, Shell};

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub llvm: bool,
    pub jobs: usize,
    /// Use ccache when it is installed.
    pub ccache: bool,
    /// The user's own fragments, merged after ours (their builds get their own O=).
    pub extra_fragments: Vec<PathBuf>,
    /// For a real machine: its running config instead of tinyconfig (own O= too).
    pub host_config: Option<HostConfig>,
    /// Run every make of the tree in a bubblewrap sandbox (see [`crate::sandbox`]);
    /// off only with --no-sandbox.
    pub sandbox: bool,
}

/// A machine's own kernel config, the base of the kernels built to run on it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostConfig {
    /// Where it came from, for the report: `box (6.1.0-25-amd64, /proc/config.gz)`.
    pub source: String,
    pub config: String,
    /// /proc/modules of the running kernel: `localyesconfig` builds these in, so the
    /// kernel boots the machine without installing modules there.
    pub modules: String,
}

impl HostConfig {
    fn id(&self) -> String {
        blob_id(format!("{}\n--\n{}", self.config, self.modules).as_bytes())
    }
}

/// A distribution's config made buildable from a plain tree: Debian and others name
/// their signing certificates, which only exist in their own build trees. Pure.
pub fn buildable_host_config(config: &str) -> String {
    let mut out = String::with_capacity(config.len());
    for line in config.lines() {
        let key = line.split('=').next().unwrap_or("");
        match key {
            "CONFIG_SYSTEM_TRUSTED_KEYS" | "CONFIG_SYSTEM_REVOCATION_KEYS" => {
                out.push_str(&format!("{key}=\"\"\n"));
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

impl Default for BuildOptions {
    fn default() -> Self {
        let jobs = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        BuildOptions {
            llvm: false,
            jobs,
            ccache: true,
            extra_fragments: Vec::new(),
            host_config: None,
            sandbox: true,
        }
    }
}

/// The name of a build directory: architecture, toolchain, and the user's fragments.
fn variant_dir(arch: &Arch, opts: &BuildOptions) -> String {
    let mut name = arch.name.to_string();
    if opts.llvm {
        name.push_str("-llvm");
    }
    if !opts.extra_fragments.is_empty() {
        let mut all = Vec::new();
        for f in &opts.extra_fragments {
            all.extend(std::fs::read(f).unwrap_or_default());
        }
        name.push_str(&format!("-x{}", &blob_id(&all)[..8]));
    }
    if let Some(h) = &opts.host_config {
        name.push_str(&format!("-host{}", &h.id()[..8]));
    }
    name
}

pub fn build_dir(tree: &TreeHandle, arch: &Arch, opts: &BuildOptions) -> PathBuf {
    cache_root().join("build").join(&tree.key).join(variant_dir(arch, opts))
}

/// Fragments in merge order, with their text: ours for QEMU guests, or on a machine's
/// own config only what the harness and kexec need; then the user's.
fn fragments(arch: &Arch, opts: &BuildOptions) -> Result<Vec<(PathBuf, String)>> {
    let dir = project_root().join("linux-ref/config");
    let ours = match opts.host_config {
        None => vec![dir.join("common.config"), dir.join(&arch.fragment)],
        Some(_) => vec![dir.join("metal.config")],
    };
    ours.into_iter()
        .chain(opts.extra_fragments.iter().cloned())
        .map(|p| {
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("cannot read fragment {}", p.display()))?;
            let p = std::fs::canonicalize(&p).unwrap_or(p);
            Ok((p, text))
        })
        .collect()
}

/// The content id of every fragment a build would merge (ours and the user's): part of
/// the plan keys, so that a resumed evaluation never mixes kernels of two configs.
pub fn fragments_id(opts: &BuildOptions) -> Result<String> {
    let dir = project_root().join("linux-ref/config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    files.sort();
    files.extend(opts.extra_fragments.iter().cloned());
    let mut all = Vec::new();
    for f in files {
        all.extend(std::fs::read(&f).with_context(|| format!("cannot read fragment {}", f.display()))?);
    }
    Ok(blob_id(&all))
}

/// Whether any Kconfig file differs between two commits (then olddefconfig must run).
fn kconfig_changed(tree: &TreeHandle, from: Option<&str>, to: &str) -> bool {
    let Some(from) = from else { return true };
    if from == to {
        return false;
    }
    let check = || -> Result<bool, git2::Error> {
        let repo = git2::Repository::open(&tree.repo_path)?;
        let a = repo.revparse_single(from)?.peel_to_tree()?;
        let b = repo.revparse_single(to)?.peel_to_tree()?;
        let diff = repo.diff_tree_to_tree(Some(&a), Some(&b), None)?;
        Ok(diff.deltas().any(|d| {
            [d.old_file().path(), d.new_file().path()].into_iter().flatten().any(|p| {
                p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("Kconfig"))
                    || p.starts_with("scripts/kconfig")
            })
        }))
    };
    check().unwrap_or(true)
}

fn blob_id(data: &[u8]) -> String {
    git2::Oid::hash_object(git2::ObjectType::Blob, data).map(|o| o.to_string()).unwrap_or_default()
}

/// Makes sure the host can build `arch`: tools, headers, the (cross) compiler.
pub fn check_toolchain(arch: &Arch, opts: &BuildOptions) -> Result<()> {
    let mut tools = vec![
        ("make", "make"),
        ("bc", "bc"),
        ("flex", "flex"),
        ("bison", "bison"),
        ("perl", "perl"),
        ("git", "git"),
        ("cpio", "cpio"),
        ("xz", "xz-utils"),
    ];
    let cc = compiler_cmd(arch, opts);
    if opts.llvm {
        tools.extend([("clang", "clang"), ("ld.lld", "lld"), ("llvm-ar", "llvm")]);
    } else {
        tools.push((cc.as_str(), arch.compiler_package.as_str()));
    }
    host::require(&tools)?;
    host::require_files(&[
        ("/usr/include/gelf.h", "libelf-dev"),
        ("/usr/include/openssl/ssl.h", "libssl-dev"),
    ])
}

/// Builds `commit` of `tree` for `arch`, or returns the stored artifacts of an earlier
/// identical build. A build that fails is [`BuildOutcome::Failed`]; an error is a fault
/// of the environment (a missing tool, a full disk).
pub fn build(
    tree: &TreeHandle,
    commit: &str,
    arch: &Arch,
    opts: &BuildOptions,
    label: &str,
) -> Result<BuildOutcome> {
    check_toolchain(arch, opts)?;
    let sh = Shell::new()?;
    let cc = compiler_cmd(arch, opts);
    let compiler = cmd!(sh, "{cc} --version").quiet().read()?.lines().next().unwrap_or("").to_string();
    let frags = fragments(arch, opts)?;
    let base = match &opts.host_config {
        None => "tinyconfig".to_string(),
        Some(h) => format!("host {}", h.id()),
    };
    let mut input = format!("{base}\n{compiler}\nllvm={}\n", opts.llvm);
    for (p, t) in &frags {
        input.push_str(&format!("{}\n{t}", p.file_name().unwrap().to_string_lossy()));
    }
    let config_input = blob_id(input.as_bytes());
    let store = cache_root()
        .join("artifacts")
        .join(&tree.key)
        .join(variant_dir(arch, opts))
        .join(format!("{commit}-{}", &config_input[..12]));
    if let Some(a) = stored(&store)? {
        return Ok(BuildOutcome::Built(a));
    }

    let _lock = lock(&tree.key)?;
    let started = Instant::now();
    // Refused before anything of the series runs when no sandbox can be made.
    let unprivileged = if opts.sandbox { Some(crate::sandbox::probe()?) } else { None };
    let src = checkout(&sh, tree, commit)?;
    let dir = build_dir(tree, arch, opts);
    sh.create_dir(&dir)?;
    // With the lock ours, anything still working in these directories was left by a
    // killed run: it must not write beside this build.
    let ended = host::end_strays(&[&dir, &src]);
    if !ended.is_empty() {
        crate::progress::say(&format!(
            "[build] ended {} process(es) a killed run left in {} (pids {ended:?})",
            ended.len(),
            dir.display()
        ));
    }
    let ccache = opts.ccache && host::have("ccache");
    let log_path = dir.join(".mmeval-build.log");
    let mut log = std::fs::File::create(&log_path)?;
    writeln!(log, "# {label}: {} {commit} for {}", tree.label, arch.name)?;

    // Configuration: tinyconfig + fragments once per input; olddefconfig again only
    // when a Kconfig file changed since (a series may add or change options).
    let requested: BTreeMap<String, String> = frags.iter().flat_map(|(_, t)| kconfig::parse(t)).collect();
    let key_file = dir.join(".mmeval-config-key");
    let commit_file = dir.join(".mmeval-config-commit");
    let vars = make_vars(arch, &dir, opts, false);
    // A failure keeps its log where the next build cannot overwrite it, and shows
    // paths relative to the tree.
    let failed_log = store.with_extension("failed.log");
    let src_prefix = format!("{}/", src.display());
    let fail = |step: &str, errors: Vec<String>| -> Result<BuildOutcome> {
        // A full disk is the environment's fault, never the series': nothing is kept.
        let said = std::fs::read_to_string(&log_path).unwrap_or_default();
        if said.contains("No space left on device") || said.contains("Disk quota exceeded") {
            bail!(
                "the {label} build for {} stopped for want of disk space ({}; log: {}): free some space and run the same command again",
                arch.name,
                host::free_space(&dir),
                log_path.display()
            );
        }
        // On a fresh cache nothing was stored for this arch yet: make the directory.
        let kept = failed_log
            .parent()
            .map(std::fs::create_dir_all)
            .transpose()
            .and_then(|_| std::fs::copy(&log_path, &failed_log));
        if let Err(e) = kept {
            crate::progress::say(&format!(
                "[build] warning: cannot keep the log at {}: {e}",
                failed_log.display()
            ));
        }
        Ok(BuildOutcome::Failed(BuildFailure {
            arch: arch.name.to_string(),
            commit: commit.to_string(),
            step: step.to_string(),
            errors: errors.into_iter().map(|e| e.replace(&src_prefix, "")).collect(),
            log: failed_log.clone(),
            sandboxed: unprivileged.is_some(),
        }))
    };
    // The series' code runs only in here: the source read-only, O= writable, nothing else.
    let mut sandbox_env: Vec<(String, String)> = Vec::new();
    let root = crate::sandbox::root_layout();
    let wrap = |argv: Vec<String>, env: &[(String, String)]| -> Vec<String> {
        match unprivileged {
            None => argv,
            Some(unprivileged) => {
                // merge_config.sh makes its temporary files in the current directory.
                let workdir = if argv[0].ends_with("merge_config.sh") { dir.clone() } else { src.clone() };
                let s = crate::sandbox::Sandbox {
                    source: src.clone(),
                    build: dir.clone(),
                    workdir,
                    env: env.to_vec(),
                    unprivileged,
                };
                crate::sandbox::argv(&s, &root).into_iter().chain(argv).collect()
            }
        }
    };
    {
        let _cwd = sh.push_dir(&src);
        let mut steps: Vec<Vec<String>> = Vec::new();
        let fresh = std::fs::read_to_string(&key_file).ok().as_deref() != Some(config_input.as_str());
        let last = std::fs::read_to_string(&commit_file).ok();
        let make = |target: &str| -> Vec<String> {
            vec!["make".into(), "-s".into()].into_iter().chain(vars.clone()).chain([target.into()]).collect()
        };
        if fresh {
            let _ = std::fs::remove_file(&key_file);
            match &opts.host_config {
                None => steps.push(make("tinyconfig")),
                Some(h) => {
                    std::fs::write(dir.join(".config"), buildable_host_config(&h.config))?;
                    steps.push(make("olddefconfig"));
                    let modular = h.config.lines().any(|l| l.trim() == "CONFIG_MODULES=y");
                    if modular && !h.modules.trim().is_empty() {
                        // Every module the machine has loaded becomes built in.
                        let lsmod = dir.join(".mmeval-lsmod");
                        std::fs::write(&lsmod, &h.modules)?;
                        sh.set_var("LSMOD", &lsmod);
                        sandbox_env.push(("LSMOD".into(), lsmod.display().to_string()));
                        steps.push(make("localyesconfig"));
                    } else if modular {
                        writeln!(
                            log,
                            "warning: no loaded modules known; drivers built as modules stay modules"
                        )?;
                    }
                }
            }
            let mut merge = vec![
                src.join("scripts/kconfig/merge_config.sh").display().to_string(),
                "-m".into(),
                "-O".into(),
                dir.display().to_string(),
                dir.join(".config").display().to_string(),
            ];
            // The fragments go into the build directory: the sandbox sees nothing else.
            let copies = dir.join(".mmeval-fragments");
            std::fs::create_dir_all(&copies)?;
            for (p, text) in &frags {
                let copy = copies.join(p.file_name().unwrap());
                std::fs::write(&copy, text)?;
                merge.push(copy.display().to_string());
            }
            steps.push(merge);
        }
        if fresh || kconfig_changed(tree, last.as_deref().map(str::trim), commit) {
            steps.push(make("olddefconfig"));
        }
        for argv in steps {
            let argv = wrap(argv, &sandbox_env);
            let (prog, args) = argv.split_first().unwrap();
            let mut c = Command::from(cmd!(sh, "{prog} {args...}").quiet());
            c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
            let out = host::spawn_group(c)?.wait_with_output()?;
            log.write_all(&out.stdout)?;
            log.write_all(&out.stderr)?;
            if !out.status.success() {
                let text = String::from_utf8_lossy(&out.stderr);
                return fail("configuration", compiler_errors(&text));
            }
        }
    }
    let config = std::fs::read_to_string(dir.join(".config"))?;
    let lost = kconfig::missing(&requested, &config);
    if !lost.is_empty() {
        writeln!(log, "options that did not survive olddefconfig: {lost:?}")?;
        return fail("configuration (options the fragments ask for did not survive olddefconfig)", lost);
    }
    std::fs::write(&key_file, &config_input)?;
    std::fs::write(&commit_file, commit)?;

    // The build itself, streamed to the log and the progress bar.
    let argv = make_argv(arch, &dir, opts, ccache);
    let steps_file = dir.join(".mmeval-steps");
    let expected: u64 =
        std::fs::read_to_string(&steps_file).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    let pb = progress(&format!("{} {label}", arch.name), expected);
    let argv = wrap(std::iter::once("make".to_string()).chain(argv).collect(), &[]);
    let (prog, args) = argv.split_first().unwrap();
    let mut command = Command::from(cmd!(sh, "{prog} {args...}").quiet());
    command.current_dir(&src).stdin(Stdio::null());
    let (ok, steps, tail) =
        stream(command, &mut log, &pb).map_err(|e| match e.downcast_ref::<std::io::Error>() {
            Some(io) if host::is_disk_full(io) => anyhow::anyhow!(
                "the {label} build for {}: {e:#} ({}): free some space and run the same command again",
                arch.name,
                host::free_space(&log_path)
            ),
            _ => e,
        })?;
    pb.finish_and_clear();
    if !ok {
        return fail("make", compiler_errors(&tail));
    }
    if expected == 0 || steps > expected / 2 {
        std::fs::write(&steps_file, steps.to_string())?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let meta = BuildMeta {
        arch: arch.name.to_string(),
        tree: tree.label.clone(),
        commit: commit.to_string(),
        llvm: opts.llvm,
        compiler,
        config_input,
        config_hash: blob_id(config.as_bytes()),
        fragments: opts
            .host_config
            .iter()
            .map(|h| format!("config of {}", h.source))
            .chain(frags.iter().map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned()))
            .collect(),
        make_target: arch.make_target.clone(),
        image: Path::new(&arch.image).file_name().unwrap().to_string_lossy().into_owned(),
        jobs: opts.jobs,
        ccache,
        seconds,
        sandboxed: Some(unprivileged.is_some()),
    };
    drop(log);
    let a = store_artifacts(&store, &dir, arch, &meta)?;
    crate::progress::say(&format!(
        "build {} {label}: {} in {:.0} s ({steps} steps)",
        arch.name,
        &commit[..12],
        seconds
    ));
    Ok(BuildOutcome::Built(a))
}

/// One build of a list: which variant, arch and commit, and how it went.
#[derive(Debug)]
pub struct BuildResult {
    pub variant: String,
    pub arch: String,
    pub commit: String,
    pub outcome: Result<BuildOutcome>,
}

/// Builds every (variant, commit) for every arch: variant by variant, so that each
/// architecture's build directory sees the baseline first and the patched tree second
/// and the source checkout switches only once per variant. One failure does not stop
/// the others.
pub fn build_variants(
    tree: &TreeHandle,
    variants: &[(&str, String)],
    arches: &[Arch],
    opts: &BuildOptions,
) -> Vec<BuildResult> {
    let mut out = Vec::new();
    for (variant, commit) in variants {
        for arch in arches {
            out.push(BuildResult {
                variant: variant.to_string(),
                arch: arch.name.to_string(),
                commit: commit.clone(),
                outcome: build(tree, commit, arch, opts, variant),
            });
        }
    }
    out
}

/// One build at a time per tree: they share the source checkout.
fn lock(key: &str) -> Result<std::fs::File> {
    let dir = cache_root().join("locks");
    std::fs::create_dir_all(&dir)?;
    let f = std::fs::File::create(dir.join(format!("{key}.lock")))?;
    f.lock().context("cannot lock the build directory")?;
    Ok(f)
}

/// Our own checkout of the tree (a `--shared` clone: objects stay in the user's
/// repository), switched to `commit`; only files that differ are rewritten, so make
/// sees only what changed.
fn checkout(sh: &Shell, tree: &TreeHandle, commit: &str) -> Result<PathBuf> {
    let src = cache_root().join("src").join(&tree.key);
    if !src.join(".git").exists() {
        let repo = &tree.repo_path;
        let _ = sh.remove_path(&src);
        sh.create_dir(src.parent().unwrap())?;
        cmd!(sh, "git clone -q --shared --no-checkout {repo} {src}").quiet().run()?;
    }
    cmd!(sh, "git -C {src} -c advice.detachedHead=false checkout -q --force --detach {commit}")
        .quiet()
        .run()
        .with_context(|| format!("cannot check out {commit} of {}", tree.label))?;
    Ok(src)
}

/// Checks that QEMU for `arch` is there (installing it as root).
pub fn check_qemu(arch: &Arch) -> Result<()> {
    host::require(&[(arch.qemu.as_str(), arch.qemu_package.as_str())])
}
