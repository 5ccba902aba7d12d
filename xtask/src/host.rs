//! Facts about this host and the tools it lacks: what to install, and installing it
//! when we are root (otherwise saying exactly which package to install).

use anyhow::{bail, Result};
use std::path::Path;
use xshell::{cmd, Shell};

pub fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

fn is_root() -> bool {
    // SAFETY-free check: /proc/self/status's Uid line, effective uid is the 2nd field.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Ensures every (tool, Debian package) is present: installs the missing packages when
/// root, else fails naming them.
pub fn require(tools: &[(&str, &str)]) -> Result<()> {
    let mut missing: Vec<&str> = tools.iter().filter(|(t, _)| !have(t)).map(|(_, p)| *p).collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    install(&missing)?;
    let still: Vec<&str> = tools.iter().filter(|(t, _)| !have(t)).map(|(t, _)| *t).collect();
    if !still.is_empty() {
        bail!("still missing after installing {}: {}", missing.join(" "), still.join(" "));
    }
    Ok(())
}

/// Like [`require`], for header files and other files a package ships.
pub fn require_files(files: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = files.iter().filter(|(f, _)| !Path::new(f).exists()).map(|(_, p)| *p).collect();
    if missing.is_empty() {
        return Ok(());
    }
    install(&missing)?;
    if let Some((f, _)) = files.iter().find(|(f, _)| !Path::new(f).exists()) {
        bail!("still missing after installing {}: {f}", missing.join(" "));
    }
    Ok(())
}

/// `apt-get install` as root; otherwise the exact command for the user.
pub fn install(packages: &[&str]) -> Result<()> {
    if !is_root() || !have("apt-get") {
        bail!("missing packages: run `sudo apt-get install {}`", packages.join(" "));
    }
    // One install at a time from this process; apt's own lock for other processes.
    static APT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = APT.lock().unwrap_or_else(|e| e.into_inner());
    crate::progress::say(&format!("[host] installing {}", packages.join(" ")));
    let sh = Shell::new()?;
    let _env = sh.push_env("DEBIAN_FRONTEND", "noninteractive");
    let lock = "-o=DPkg::Lock::Timeout=300";
    if cmd!(sh, "apt-get install -y -q {lock} {packages...}").quiet().ignore_stdout().run().is_ok() {
        return Ok(());
    }
    // The package lists may be missing or stale on a fresh machine.
    cmd!(sh, "apt-get update -q {lock}").quiet().ignore_stdout().run()?;
    if cmd!(sh, "apt-get install -y -q {lock} {packages...}").quiet().ignore_stdout().run().is_ok() {
        return Ok(());
    }
    // A qemu-utils from backports (as some images ship) breaks the release's
    // qemu-system-*: take the release's qemu-utils with them.
    let mut with_utils: Vec<String> = packages.iter().map(|p| p.to_string()).collect();
    if packages.iter().any(|p| p.starts_with("qemu-system")) {
        if let Some(codename) = os_codename() {
            with_utils.push(format!("qemu-utils/{codename}"));
            cmd!(sh, "apt-get install -y -q {lock} --allow-downgrades {with_utils...}")
                .quiet()
                .ignore_stdout()
                .run()?;
            return Ok(());
        }
    }
    bail!("apt-get install {} failed; install them by hand", packages.join(" "))
}

fn os_codename() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines().find_map(|l| l.strip_prefix("VERSION_CODENAME=")).map(|c| c.trim_matches('"').to_string())
}

/// The mirror the system's own apt sources name for `archive` (`debian` or
/// `debian-security`), so a private sources list uses the same one.
pub fn debian_mirror(archive: &str) -> String {
    let mut uris = Vec::new();
    for f in ["/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"] {
        if let Ok(text) = std::fs::read_to_string(Path::new(f)) {
            for line in text.lines() {
                let line = line.trim();
                if let Some(u) = line.strip_prefix("URIs:") {
                    uris.extend(u.split_whitespace().map(String::from));
                } else if line.starts_with("deb ") {
                    uris.extend(line.split_whitespace().find(|w| w.contains("://")).map(String::from));
                }
            }
        }
    }
    let security = archive.ends_with("-security");
    uris.into_iter()
        .find(|u| u.trim_end_matches('/').ends_with("-security") == security)
        .map(|u| u.trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("http://deb.debian.org/{archive}"))
}
