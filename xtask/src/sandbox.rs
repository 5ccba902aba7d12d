//! Building untrusted code: a series from the list can change a Makefile, a Kconfig
//! `$(shell ...)` or a host tool the build runs, so every `make` of a series' tree runs
//! in a bubblewrap sandbox (Debian's `bubblewrap`, what Flatpak uses): a fresh mount
//! namespace with the system read-only (`/usr` and the few files of `/etc` a compiler
//! needs), the source checkout read-only, its build directory (O=) the only thing
//! writable, a private `/tmp`, no network, no `$HOME`, `/root`, cache, ssh agent or
//! user's tree, a cleared environment, and an unprivileged uid where the machine allows
//! it. The argv is built here (pure, golden-tested); [`probe`] says whether one can be
//! made on this machine.

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One sandboxed command's world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// Read-only: the source checkout.
    pub source: PathBuf,
    /// Read-write: the build directory.
    pub build: PathBuf,
    /// Where the command starts (the source tree, or the build directory for scripts
    /// that write temporary files next to themselves).
    pub workdir: PathBuf,
    /// The only environment the command gets (besides PATH, HOME, LC_ALL).
    pub env: Vec<(String, String)>,
    /// Run as uid/gid 65534 in a user namespace.
    pub unprivileged: bool,
}

/// The parts of the root file system a toolchain needs, and how this machine has them:
/// on a merged-/usr system `/bin` and friends are symlinks into `/usr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    Link(String, String),
    Dir(String),
}

/// `/bin`, `/sbin`, `/lib*` as they are here.
pub fn root_layout() -> Vec<Root> {
    ["/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"]
        .iter()
        .filter_map(|p| {
            let path = Path::new(p);
            match std::fs::read_link(path) {
                Ok(t) => Some(Root::Link(t.display().to_string(), p.to_string())),
                Err(_) if path.is_dir() => Some(Root::Dir(p.to_string())),
                Err(_) => None,
            }
        })
        .collect()
}

/// Files of /etc a compiler, make and perl read (only those that exist are bound).
const ETC: [&str; 8] = [
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/passwd",
    "/etc/group",
    "/etc/perl",
];

/// `bwrap` and its arguments, up to the command to run (which follows). Pure.
pub fn argv(s: &Sandbox, root: &[Root]) -> Vec<String> {
    let mut v: Vec<String> = vec!["bwrap".into()];
    let mut add = |xs: &[&str]| v.extend(xs.iter().map(|x| x.to_string()));
    add(&["--unshare-all", "--die-with-parent", "--new-session", "--clearenv"]);
    if s.unprivileged {
        add(&["--unshare-user", "--uid", "65534", "--gid", "65534"]);
    }
    add(&["--ro-bind", "/usr", "/usr"]);
    for r in root {
        match r {
            Root::Link(target, path) => add(&["--symlink", target, path]),
            Root::Dir(path) => add(&["--ro-bind", path, path]),
        }
    }
    for e in ETC {
        add(&["--ro-bind-try", e, e]);
    }
    add(&["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);
    let (src, out, wd) =
        (s.source.display().to_string(), s.build.display().to_string(), s.workdir.display().to_string());
    add(&["--ro-bind", &src, &src, "--bind", &out, &out, "--chdir", &wd]);
    add(&[
        "--setenv",
        "PATH",
        "/usr/bin:/bin:/usr/sbin:/sbin",
        "--setenv",
        "HOME",
        "/tmp",
        "--setenv",
        "LC_ALL",
        "C",
    ]);
    for (k, val) in &s.env {
        add(&["--setenv", k, val]);
    }
    add(&["--"]);
    v
}

/// Whether this machine can make the sandbox, and as which uid: unprivileged (a user
/// namespace) when it allows it, else as the calling user. Tried once per process, with
/// a real command in a real sandbox; the error says why not and what to do.
pub fn probe() -> Result<bool> {
    static PROBE: OnceLock<std::result::Result<bool, String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            if let Err(e) = crate::host::require(&[("bwrap", "bubblewrap")]) {
                return Err(format!("{e:#}"));
            }
            let dir = std::env::temp_dir();
            let try_one = |unprivileged: bool| -> std::result::Result<(), String> {
                let s = Sandbox { source: dir.clone(), build: dir.clone(), workdir: dir.clone(), env: vec![], unprivileged };
                let mut a = argv(&s, &root_layout());
                a.push("/usr/bin/true".into());
                let out = std::process::Command::new(&a[0]).args(&a[1..]).output().map_err(|e| e.to_string())?;
                if out.status.success() {
                    Ok(())
                } else {
                    Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
                }
            };
            match try_one(true) {
                Ok(()) => Ok(true),
                Err(_) => try_one(false).map(|()| false),
            }
        })
        .clone()
        .or_else(|why| {
            bail!(
                "cannot make a build sandbox here (bubblewrap: {why}); allow user namespaces, or pass --no-sandbox to build the series' code without one"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn the_sandbox_binds_only_what_a_build_needs() {
        let s = Sandbox {
            source: "/cache/src/ref-v7.2".into(),
            build: "/cache/build/ref-v7.2/x86_64".into(),
            workdir: "/cache/src/ref-v7.2".into(),
            env: vec![("LSMOD".into(), "/cache/build/ref-v7.2/x86_64/.mmeval-lsmod".into())],
            unprivileged: true,
        };
        let root = [Root::Link("usr/bin".into(), "/bin".into()), Root::Dir("/lib64".into())];
        expect![[r#"bwrap --unshare-all --die-with-parent --new-session --clearenv --unshare-user --uid 65534 --gid 65534 --ro-bind /usr /usr --symlink usr/bin /bin --ro-bind /lib64 /lib64 --ro-bind-try /etc/alternatives /etc/alternatives --ro-bind-try /etc/ld.so.cache /etc/ld.so.cache --ro-bind-try /etc/ld.so.conf /etc/ld.so.conf --ro-bind-try /etc/ld.so.conf.d /etc/ld.so.conf.d --ro-bind-try /etc/localtime /etc/localtime --ro-bind-try /etc/passwd /etc/passwd --ro-bind-try /etc/group /etc/group --ro-bind-try /etc/perl /etc/perl --proc /proc --dev /dev --tmpfs /tmp --ro-bind /cache/src/ref-v7.2 /cache/src/ref-v7.2 --bind /cache/build/ref-v7.2/x86_64 /cache/build/ref-v7.2/x86_64 --chdir /cache/src/ref-v7.2 --setenv PATH /usr/bin:/bin:/usr/sbin:/sbin --setenv HOME /tmp --setenv LC_ALL C --setenv LSMOD /cache/build/ref-v7.2/x86_64/.mmeval-lsmod --"#]]
        .assert_eq(&argv(&s, &root).join(" "));
    }
}
