//! Reference kernel trees: `linux-ref/refs.yaml` says where each comes from; this
//! module fetches one into the cache and imports it into git, once.
//!
//! The import is one commit with a fixed author, committer, date and message, so the
//! same source gives the same commit id on every machine: the `base-commit:` lines of
//! the series in `patches/` name it.

use crate::host;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use xshell::{cmd, Shell};

#[derive(Debug, Deserialize)]
pub struct Manifest {
    pub default: String,
    pub refs: BTreeMap<String, RefSpec>,
}

#[derive(Debug, Deserialize)]
pub struct RefSpec {
    pub debian: Option<DebianSource>,
    /// A release tarball (kernel.org), tried when there is no Debian source.
    pub tarball: Option<TarballSource>,
    /// The kernel release, e.g. 7.2.13.
    pub release: String,
    /// Author and committer date of the import commit.
    pub date: String,
    /// The import commit id this source is known to give.
    pub commit: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct DebianSource {
    pub package: String,
    pub version: String,
    /// `debian` or `debian-security`: which of the system's mirrors to use.
    pub archive: String,
    pub suite: String,
    pub sha256: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct TarballSource {
    /// https://, or file:// for a tarball already on disk.
    pub url: String,
    pub sha256: String,
}

/// A provisioned tree.
#[derive(Debug, Clone)]
pub struct RefTree {
    pub name: String,
    pub path: PathBuf,
    pub commit: String,
}

/// The repository's top level (xtask lives one below it).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Build directories and trees live here, outside the work tree, so `cargo clean`
/// keeps them: `$MMEVAL_CACHE`, else `$XDG_CACHE_HOME/mmeval`, else `~/.cache/mmeval`.
pub fn cache_root() -> PathBuf {
    if let Some(p) = std::env::var_os("MMEVAL_CACHE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(p).join("mmeval");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".cache/mmeval")
}

pub fn manifest() -> Result<Manifest> {
    let path = project_root().join("linux-ref/refs.yaml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_yaml::from_str(&text).with_context(|| format!("{} is not a valid manifest", path.display()))
}

pub fn tree_path(name: &str) -> PathBuf {
    cache_root().join("trees").join(name)
}

/// Fetches and imports NAME (default: the manifest's default) unless already there.
pub fn provision(name: Option<&str>) -> Result<RefTree> {
    let m = manifest()?;
    let name = name.unwrap_or(&m.default).to_string();
    let Some(spec) = m.refs.get(&name) else {
        bail!(
            "no reference named {name} in linux-ref/refs.yaml (known: {})",
            m.refs.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    };
    let dest = tree_path(&name);
    if let Ok(repo) = git2::Repository::open(&dest) {
        if let Ok(c) = repo.head().and_then(|h| h.peel_to_commit()) {
            return Ok(RefTree { name, path: dest, commit: c.id().to_string() });
        }
    }
    let Some(deb) = &spec.debian else {
        let Some(t) = &spec.tarball else {
            bail!("reference {name} has no source in linux-ref/refs.yaml (debian: or tarball:)");
        };
        let work = cache_root().join("work");
        std::fs::create_dir_all(&work)?;
        let file = fetch_tarball(t, &work.join(format!("{name}.tar")))?;
        let message = format!("Linux {} ({})", spec.release, t.url.rsplit('/').next().unwrap_or(&t.url));
        return import_tarball(&name, &file, &message, &spec.date, &dest);
    };
    host::require(&[
        ("dpkg-deb", "dpkg"),
        ("xz", "xz-utils"),
        ("tar", "tar"),
        ("git", "git"),
        ("apt-get", "apt"),
    ])?;
    let sh = Shell::new()?;
    let work = cache_root().join("work");
    sh.create_dir(&work)?;
    let started = Instant::now();
    let deb_file = fetch_debian(&sh, deb, &work)?;
    crate::progress::say(&format!(
        "[ref] {name}: got {} ({:.0} s)",
        deb_file.display(),
        started.elapsed().as_secs_f64()
    ));

    let unpack = work.join(format!("unpack-{name}"));
    let _ = sh.remove_path(&unpack);
    sh.create_dir(&unpack)?;
    cmd!(sh, "dpkg-deb -x {deb_file} {unpack}/pkg").quiet().run()?;
    let tarball = find_tarball(&unpack.join("pkg/usr/src"))?;
    let src = unpack.join("src");
    sh.create_dir(&src)?;
    crate::progress::say(&format!("[ref] {name}: unpacking {}", tarball.display()));
    cmd!(sh, "tar -xf {tarball} -C {src} --strip-components=1").quiet().run()?;
    sh.remove_path(unpack.join("pkg"))?;

    crate::progress::say(&format!("[ref] {name}: importing into git (one commit)"));
    let message = format!("Linux {} (Debian {} {})", spec.release, deb.package, deb.version);
    let commit = import(&sh, &src, &message, &spec.date)?;
    if let Some(expected) = &spec.commit {
        if *expected != commit && deb.version == got_version(&deb_file) {
            crate::progress::say(&format!(
                "[ref] warning: {name} imported as {commit}, the manifest expects {expected}"
            ));
        }
    }
    if let Some(parent) = dest.parent() {
        sh.create_dir(parent)?;
    }
    std::fs::rename(&src, &dest).with_context(|| format!("cannot move the tree to {}", dest.display()))?;
    let _ = sh.remove_path(&unpack);
    crate::progress::say(&format!(
        "[ref] {name}: {} at {} ({:.0} s)",
        commit,
        dest.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(RefTree { name, path: dest, commit })
}

/// Downloads (curl) a release tarball and checks its SHA-256.
pub fn fetch_tarball(t: &TarballSource, dest: &Path) -> Result<PathBuf> {
    host::require(&[("curl", "curl"), ("sha256sum", "coreutils")])?;
    let sh = Shell::new()?;
    let url = &t.url;
    if !(url.starts_with("https://") || url.starts_with("file://")) {
        bail!("tarball url `{url}` must be https:// or file://");
    }
    if !dest.is_file() {
        let tmp = dest.with_extension("part");
        cmd!(sh, "curl -fsSL -o {tmp} {url}").run().with_context(|| format!("cannot download {url}"))?;
        std::fs::rename(&tmp, dest)?;
    }
    let sum = cmd!(sh, "sha256sum {dest}").quiet().read()?;
    if !sum.starts_with(t.sha256.as_str()) {
        let _ = std::fs::remove_file(dest);
        bail!(
            "{url} has the wrong SHA-256 (expected {}, got {}); removed it",
            t.sha256,
            sum.split(' ').next().unwrap_or("")
        );
    }
    Ok(dest.to_path_buf())
}

/// Unpacks a release tarball (its one top directory stripped) and imports it as one
/// reproducible commit at `dest`.
pub fn import_tarball(name: &str, tarball: &Path, message: &str, date: &str, dest: &Path) -> Result<RefTree> {
    host::require(&[("tar", "tar"), ("xz", "xz-utils"), ("git", "git")])?;
    let sh = Shell::new()?;
    let src = cache_root().join("work").join(format!("unpack-{name}"));
    let _ = sh.remove_path(&src);
    sh.create_dir(&src)?;
    crate::progress::say(&format!("[ref] {name}: unpacking {}", tarball.display()));
    cmd!(sh, "tar -xf {tarball} -C {src} --strip-components=1").quiet().run()?;
    crate::progress::say(&format!("[ref] {name}: importing into git (one commit)"));
    let commit = import(&sh, &src, message, date)?;
    if let Some(parent) = dest.parent() {
        sh.create_dir(parent)?;
    }
    std::fs::rename(&src, dest).with_context(|| format!("cannot move the tree to {}", dest.display()))?;
    Ok(RefTree { name: name.to_string(), path: dest.to_path_buf(), commit })
}

fn got_version(deb: &Path) -> String {
    deb.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('_').nth(1))
        .unwrap_or("")
        .replace("%3a", ":")
}

/// `apt-get download` through a private sources list and state directory.
fn fetch_debian(sh: &Shell, deb: &DebianSource, work: &Path) -> Result<PathBuf> {
    let apt = work.join("apt");
    for d in ["lists/partial", "cache/archives/partial", "empty", "debs"] {
        sh.create_dir(apt.join(d))?;
    }
    let mirror = host::debian_mirror(&deb.archive);
    let list = apt.join("sources.list");
    sh.write_file(
        &list,
        format!(
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {mirror} {} main\n",
            deb.suite
        ),
    )?;
    let opts = &[
        format!("-o=Dir::Etc::SourceList={}", list.display()),
        format!("-o=Dir::Etc::SourceParts={}", apt.join("empty").display()),
        format!("-o=Dir::State::Lists={}", apt.join("lists").display()),
        format!("-o=Dir::Cache={}", apt.join("cache").display()),
        "-o=APT::Sandbox::User=root".to_string(),
    ];
    let debs = apt.join("debs");
    let existing = |sh: &Shell| -> Result<Option<PathBuf>> {
        Ok(sh.read_dir(&debs)?.into_iter().find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{}_", deb.package)) && n.ends_with(".deb"))
        }))
    };
    if let Some(p) = existing(sh)? {
        return Ok(p);
    }
    cmd!(sh, "apt-get -q {opts...} update")
        .quiet()
        .run()
        .context("apt-get update with the private sources list failed")?;
    let _dir = sh.push_dir(&debs);
    let pinned = format!("{}={}", deb.package, deb.version);
    if cmd!(sh, "apt-get -q {opts...} download {pinned}").quiet().run().is_err() {
        crate::progress::say(&format!(
            "[ref] warning: {pinned} is no longer in {}; taking the suite's current version (the shipped series may then need --base or a three-way apply)",
            deb.suite
        ));
        let pkg = &deb.package;
        cmd!(sh, "apt-get -q {opts...} download {pkg}").quiet().run()?;
    }
    let file = existing(sh)?.context("apt-get download left no .deb")?;
    if let Some(want) = &deb.sha256 {
        if got_version(&file) == deb.version {
            let out = cmd!(sh, "sha256sum {file}").read()?;
            if !out.starts_with(want.as_str()) {
                let _ = sh.remove_path(&file);
                bail!("{} has the wrong checksum (expected {want}); removed it, try again", file.display());
            }
        }
    }
    Ok(file)
}

fn find_tarball(dir: &Path) -> Result<PathBuf> {
    std::fs::read_dir(dir)
        .with_context(|| format!("{} is missing from the package", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".tar.xz"))
        .with_context(|| format!("no .tar.xz in {}", dir.display()))
}

/// One commit of everything in `src` with a fixed identity: reproducible ids.
pub fn import(sh: &Shell, src: &Path, message: &str, date: &str) -> Result<String> {
    let _dir = sh.push_dir(src);
    let _env = [
        sh.push_env("GIT_AUTHOR_NAME", crate::apply::COMMITTER_NAME),
        sh.push_env("GIT_AUTHOR_EMAIL", crate::apply::COMMITTER_EMAIL),
        sh.push_env("GIT_COMMITTER_NAME", crate::apply::COMMITTER_NAME),
        sh.push_env("GIT_COMMITTER_EMAIL", crate::apply::COMMITTER_EMAIL),
        sh.push_env("GIT_AUTHOR_DATE", date),
        sh.push_env("GIT_COMMITTER_DATE", date),
    ];
    cmd!(sh, "git init -q -b main .").quiet().run()?;
    // -f: import exactly what the source ships, whatever its .gitignore files say.
    cmd!(sh, "git add -A -f .").quiet().run()?;
    cmd!(sh, "git -c commit.gpgsign=false commit -q -m {message}").quiet().run()?;
    Ok(cmd!(sh, "git rev-parse HEAD").read()?)
}
