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
    install_with(packages, &[])
}

/// [`install`] with apt-get options (e.g. `--no-install-recommends`).
pub fn install_with(packages: &[&str], opts: &[&str]) -> Result<()> {
    if !is_root() || !have("apt-get") {
        bail!(
            "missing packages: run `sudo apt-get install {}{}`",
            opts.iter().map(|o| format!("{o} ")).collect::<String>(),
            packages.join(" ")
        );
    }
    // One install at a time from this process; apt's own lock for other processes.
    static APT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = APT.lock().unwrap_or_else(|e| e.into_inner());
    crate::progress::say(&format!("[host] installing {}", packages.join(" ")));
    let sh = Shell::new()?;
    let _env = sh.push_env("DEBIAN_FRONTEND", "noninteractive");
    let lock = "-o=DPkg::Lock::Timeout=300";
    if cmd!(sh, "apt-get install -y -q {lock} {opts...} {packages...}").quiet().ignore_stdout().run().is_ok()
    {
        return Ok(());
    }
    // The package lists may be missing or stale on a fresh machine.
    cmd!(sh, "apt-get update -q {lock}").quiet().ignore_stdout().run()?;
    if cmd!(sh, "apt-get install -y -q {lock} {opts...} {packages...}").quiet().ignore_stdout().run().is_ok()
    {
        return Ok(());
    }
    // A qemu-utils from backports (as some images ship) breaks the release's
    // qemu-system-*: take the release's qemu-utils with them.
    let mut with_utils: Vec<String> = packages.iter().map(|p| p.to_string()).collect();
    if packages.iter().any(|p| p.starts_with("qemu-system")) {
        if let Some(codename) = os_codename() {
            with_utils.push(format!("qemu-utils/{codename}"));
            cmd!(sh, "apt-get install -y -q {lock} {opts...} --allow-downgrades {with_utils...}")
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

/// How much space is left on the file system holding `path` (`df`'s words, e.g.
/// "0 KiB free on /mnt/out"), for an error that says why a write failed.
pub fn free_space(path: &Path) -> String {
    let dir = path.ancestors().find(|p| p.exists()).unwrap_or(Path::new("/"));
    let out = Shell::new().ok().and_then(|sh| cmd!(sh, "df -Pk {dir}").quiet().ignore_stderr().read().ok());
    // Filesystem 1024-blocks Used Available Capacity Mounted-on
    let row = out.as_deref().and_then(|o| o.lines().nth(1)).map(|l| l.split_whitespace().collect::<Vec<_>>());
    match row.as_deref() {
        Some([_, _, _, avail, _, mount, ..]) => format!("{avail} KiB free on {mount}"),
        _ => "free space unknown".to_string(),
    }
}

/// Whether an I/O error is the disk being full (ENOSPC, EDQUOT).
pub fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(28) | Some(122))
}

/// Ends (SIGKILL) every process whose working directory is in one of `dirs`, and waits
/// for them to go; their pids. For a caller that holds the lock of those directories:
/// whatever still runs there was left by a run that died.
pub fn end_strays(dirs: &[&Path]) -> Vec<u32> {
    let me = std::process::id();
    let in_dirs = |pid: u32| {
        std::fs::read_link(format!("/proc/{pid}/cwd"))
            .is_ok_and(|cwd| dirs.iter().any(|d| cwd.starts_with(d)))
    };
    let strays: Vec<u32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me && in_dirs(pid))
        .collect();
    if strays.is_empty() {
        return strays;
    }
    if let Ok(sh) = Shell::new() {
        let pids: Vec<String> = strays.iter().map(u32::to_string).collect();
        let _ = cmd!(sh, "kill -KILL {pids...}").quiet().ignore_status().ignore_stderr().run();
    }
    let gone = |pid: &u32| !running(*pid);
    for _ in 0..250 {
        if strays.iter().all(gone) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    strays
}

/// A command in a process group of its own that ends with us, however we end: a
/// watchdog shell holds the read end of a pipe only we write to, and when that pipe
/// closes (our exit, a crash, SIGKILL, Ctrl-C) it kills the whole group. For make,
/// whose sub-makes and compilers a parent-death signal on make alone would leave
/// running.
pub struct Group {
    pub child: std::process::Child,
    watchdog: Option<std::process::Child>,
}

/// The watchdog: ignores the terminal's signals, waits for end of file, kills group $1.
const WATCHDOG: &str = r#"trap '' INT HUP TERM QUIT; read _; kill -KILL -"$1" 2>/dev/null"#;

pub fn spawn_group(mut command: std::process::Command) -> Result<Group> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    command.process_group(0);
    let child = command.spawn()?;
    // Without the watchdog, the group would outlive us: stop it and say why.
    let watchdog = Command::new("sh")
        .args(["-c", WATCHDOG, "mmeval-watchdog", &child.id().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut g = Group { child, watchdog: None };
    match watchdog {
        Ok(w) => g.watchdog = Some(w),
        Err(e) => {
            g.kill();
            anyhow::bail!("cannot start the watchdog shell (sh): {e}");
        }
    }
    Ok(g)
}

/// Whether process `pid` exists and runs (a zombie, its parent not reaping it yet, no
/// longer does).
pub fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, r)| !r.starts_with('Z')))
}

/// Waits up to `limit` for group `pgid` to have no running member; whether it has none.
pub fn wait_group_gone(pgid: u32, limit: std::time::Duration) -> bool {
    let started = std::time::Instant::now();
    while !group_members(pgid).is_empty() {
        if started.elapsed() > limit {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    true
}

/// The processes of group `pgid` that still run (a zombie no longer does).
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
                // After the command's name: state, ppid, pgrp.
                let f: Vec<&str> =
                    s.rsplit_once(") ").map(|(_, r)| r.split(' ').collect()).unwrap_or_default();
                f.len() > 2 && f[0] != "Z" && f[2] == pgid.to_string()
            })
        })
        .collect()
}

impl Group {
    /// Kills every process of the group.
    pub fn kill(&mut self) {
        if let Ok(sh) = Shell::new() {
            let pgid = format!("-{}", self.child.id());
            let _ = cmd!(sh, "kill -KILL -- {pgid}").quiet().ignore_status().ignore_stderr().run();
        }
        let _ = self.child.wait();
        // SIGKILL is delivered, not done: the group's other members may still be on
        // their way out. Callers go on to reuse or remove their directories.
        wait_group_gone(self.child.id(), std::time::Duration::from_secs(5));
    }

    /// Output and status of a command whose stdout and stderr are piped.
    pub fn wait_with_output(mut self) -> std::io::Result<std::process::Output> {
        use std::io::Read;
        let out = self.child.stdout.take();
        let reader = std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut o) = out {
                let _ = o.read_to_end(&mut v);
            }
            v
        });
        let mut stderr = Vec::new();
        if let Some(mut e) = self.child.stderr.take() {
            e.read_to_end(&mut stderr)?;
        }
        let stdout = reader.join().unwrap_or_default();
        let status = self.child.wait()?;
        Ok(std::process::Output { status, stdout, stderr })
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // The group ended (or is being dropped on an error path: end it first); the
        // watchdog is killed before the group's id can be reused by anything else.
        if self.child.try_wait().ok().flatten().is_none() {
            self.kill();
        }
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_process_left_working_in_a_directory_is_ended() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("o");
        std::fs::create_dir(&sub).unwrap();
        let mut child = std::process::Command::new("sleep").arg("600").current_dir(&sub).spawn().unwrap();
        let other = tempfile::tempdir().unwrap();
        let mut bystander =
            std::process::Command::new("sleep").arg("600").current_dir(other.path()).spawn().unwrap();
        let ended = super::end_strays(&[dir.path()]);
        assert_eq!(ended, vec![child.id()]);
        let status = child.wait().unwrap();
        assert!(!status.success(), "killed: {status:?}");
        assert_eq!(bystander.try_wait().unwrap(), None, "a process elsewhere is left alone");
        bystander.kill().unwrap();
        bystander.wait().unwrap();
    }

    use super::group_members as members;

    fn sleepers() -> super::Group {
        let mut c = std::process::Command::new("sh");
        c.args(["-c", "sleep 600 & sleep 600 & wait"]);
        let g = super::spawn_group(c).unwrap();
        let pgid = g.child.id();
        for _ in 0..100 {
            if members(pgid).len() == 3 {
                return g;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("the group did not start: {:?}", members(pgid));
    }

    #[test]
    fn a_group_ends_whole_when_dropped_and_when_we_go_away() {
        let g = sleepers();
        let pgid = g.child.id();
        drop(g);
        assert!(members(pgid).is_empty(), "{:?}", members(pgid));

        // Our end of the watchdog's pipe closing is what our death looks like to it.
        let mut g = sleepers();
        let pgid = g.child.id();
        drop(g.watchdog.as_mut().unwrap().stdin.take());
        for _ in 0..100 {
            if members(pgid).is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(members(pgid).is_empty(), "{:?}", members(pgid));
    }
}
