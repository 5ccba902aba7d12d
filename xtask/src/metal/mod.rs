//! Real machines: this host (`--metal`) or one reached with ssh (`--host user@box`).
//!
//! A metal evaluation cannot boot two kernels side by side, so it boots them one after
//! the other on the machine itself. Over ssh that is automatic: each kernel (built from
//! the box's own running config) is copied over, loaded with `kexec -l`, started with
//! `systemctl kexec` (or `kexec -e`), and the tool waits for the box to come back and
//! checks that it runs the kernel it was sent (a `mmeval.kernel=` word on the command
//! line and a new boot id) before running the harness. On this host the tool cannot
//! survive the kexec, so each invocation measures the kernel it finds running (when it
//! is the next one the plan wants) and prints the command that boots the next.
//!
//! Commands run on the box go through ssh, which hands them to the box's shell: every
//! value in them is quoted with [`quote`]; the fixed scripts here are ours.

mod facts;

pub use facts::{
    count_cpus, home_cmdline, machine_to_arch, parse_facts, runs_test_kernel, test_cmdline, token, Facts,
    TOKEN,
};

use crate::serial::{self, Boot};
use crate::suite::{self, Suite};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};
use xshell::{cmd, Shell};

/// Where the harness runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// This host.
    Local,
    /// `user@box` (anything ssh accepts as a destination, options from ssh_config).
    Ssh(String),
}

impl From<&Target> for crate::model::Target {
    fn from(t: &Target) -> Self {
        match t {
            Target::Local => crate::model::Target::Local,
            Target::Ssh(d) => crate::model::Target::Ssh(d.clone()),
        }
    }
}

impl Target {
    pub fn ssh(dest: &str) -> Result<Target> {
        if dest.is_empty()
            || dest.starts_with('-')
            || dest.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            bail!("--host `{dest}` is not a user@host destination");
        }
        Ok(Target::Ssh(dest.to_string()))
    }

    /// How the report names it: `ssh:user@box` or `metal`.
    pub fn plan_name(&self) -> String {
        match self {
            Target::Local => "metal".into(),
            Target::Ssh(d) => format!("ssh:{d}"),
        }
    }

    fn ssh_options(connect_timeout: u32) -> Vec<String> {
        let mut o: Vec<String> = [
            "-o",
            "BatchMode=yes",
            "-o",
            &format!("ConnectTimeout={connect_timeout}"),
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // A config of its own (tests, or a lab's jump hosts) without touching ~/.ssh.
        if let Some(f) = std::env::var_os("MMEVAL_SSH_CONFIG") {
            o.push("-F".into());
            o.push(f.to_string_lossy().into_owned());
        }
        o
    }

    /// Runs a shell script there; the exit status is the caller's to judge.
    pub fn script(&self, script: &str, stdin: Vec<u8>) -> Result<Output> {
        self.script_with_timeout(script, stdin, 10)
    }

    fn script_with_timeout(&self, script: &str, stdin: Vec<u8>, connect_timeout: u32) -> Result<Output> {
        let sh = Shell::new()?;
        Ok(match self {
            Target::Local => cmd!(sh, "sh -c {script}").quiet().ignore_status().stdin(stdin).output()?,
            Target::Ssh(dest) => {
                let opts = Self::ssh_options(connect_timeout);
                cmd!(sh, "ssh {opts...} {dest} {script}").quiet().ignore_status().stdin(stdin).output()?
            }
        })
    }

    /// Runs a script and returns its standard output, or says what failed.
    pub fn read(&self, script: &str) -> Result<String> {
        let out = self.script(script, vec![])?;
        if !out.status.success() {
            bail!(
                "{}: `{}` failed: {}",
                self.describe(),
                script.lines().next().unwrap_or(""),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn describe(&self) -> String {
        match self {
            Target::Local => "this host".into(),
            Target::Ssh(d) => d.clone(),
        }
    }

    /// Copies `data` to `path` there (atomically: a temp file renamed).
    pub fn put(&self, data: Vec<u8>, path: &str, mode: &str) -> Result<()> {
        let (p, m) = (quote(path), quote(mode));
        let dir = quote(
            Path::new(path).parent().map(|d| d.to_string_lossy().into_owned()).as_deref().unwrap_or("/"),
        );
        let script = format!("mkdir -p {dir} && cat > {p}.tmp && chmod {m} {p}.tmp && mv {p}.tmp {p}");
        let out = self.script(&script, data)?;
        if !out.status.success() {
            bail!(
                "{}: cannot write {path}: {}",
                self.describe(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

/// One argument for a POSIX shell, whatever it contains.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The probe script: what a machine says about itself, one `key=value` a line. The
/// kernel images it looks for in /boot are the table's `boot_image` names.
fn probe_script() -> String {
    let mut names: Vec<String> = crate::arch::table()
        .map(|t| t.rows().iter().flat_map(|a| a.boot_images.clone()).collect())
        .unwrap_or_default();
    names.sort();
    names.dedup();
    let images: Vec<String> = names.iter().map(|n| format!("/boot/{n}-$r")).collect();
    PROBE.replace("@IMAGES@", &images.join(" "))
}

const PROBE: &str = r#"r=$(uname -r)
echo "hostname=$(uname -n)"
echo "machine=$(uname -m)"
echo "release=$r"
echo "uid=$(id -u)"
echo "boot_id=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)"
echo "online=$(cat /sys/devices/system/cpu/online 2>/dev/null)"
echo "kexec=$(command -v kexec)"
echo "systemctl=$(command -v systemctl)"
for f in @IMAGES@; do [ -f "$f" ] && { echo "image=$f"; break; }; done
for f in /boot/initrd.img-$r /boot/initramfs-$r.img; do [ -f "$f" ] && { echo "initrd=$f"; break; }; done
grep -qw hypervisor /proc/cpuinfo 2>/dev/null && echo "hypervisor=yes"
echo "vendor=$(cat /sys/class/dmi/id/sys_vendor 2>/dev/null) $(cat /sys/class/dmi/id/product_name 2>/dev/null)"
echo "cmdline=$(cat /proc/cmdline)"
"#;

pub fn probe(t: &Target) -> Result<Facts> {
    let text = t.read(&probe_script()).with_context(|| match t {
        Target::Ssh(d) => format!("cannot reach {d} with ssh (BatchMode: keys, no passwords)"),
        Target::Local => "cannot describe this host".into(),
    })?;
    let f = parse_facts(&text);
    if f.arch.is_empty() || f.release.is_empty() {
        bail!("{}: the probe said nothing useful: {text}", t.describe());
    }
    Ok(f)
}

/// The running kernel's config, and where it came from.
pub fn running_config(t: &Target) -> Result<(String, String)> {
    let text = t.read(
        r#"if [ -r /proc/config.gz ]; then echo /proc/config.gz; zcat /proc/config.gz
elif [ -r "/boot/config-$(uname -r)" ]; then echo "/boot/config-$(uname -r)"; cat "/boot/config-$(uname -r)"
else echo none; fi"#,
    )?;
    let (source, config) = text.split_once('\n').unwrap_or((text.as_str(), ""));
    if source == "none" || !config.contains("CONFIG_") {
        bail!(
            "{}: the running kernel's config is in neither /proc/config.gz nor /boot/config-<release>; boot a kernel with CONFIG_IKCONFIG_PROC=y or install its config",
            t.describe()
        );
    }
    Ok((source.to_string(), config.to_string()))
}

/// The loaded modules (/proc/modules, which localyesconfig reads like lsmod's output).
pub fn loaded_modules(t: &Target) -> Result<String> {
    t.read("cat /proc/modules 2>/dev/null; true")
}

/// The kernel a machine should come home to when the evaluation ends, and how it was
/// configured: saved the first time the machine is seen running its own kernel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Home {
    pub target: String,
    pub facts: Facts,
    pub config_source: String,
    pub config: String,
    pub modules: String,
}

impl Home {
    /// The saved home while the machine runs one of our test kernels (its config is not
    /// the machine's own then); else taken now, from the running kernel (it may have
    /// been upgraded since). The flag says it was taken now and should be saved.
    pub fn resolve(t: &Target, facts: &Facts, saved: Option<Home>) -> Result<(Home, bool)> {
        if runs_test_kernel(&facts.cmdline) {
            if let Some(h) = saved.filter(|h| h.target == t.plan_name()) {
                return Ok((h, false));
            }
            bail!(
                "{} runs a test kernel of another evaluation ({}); boot its own kernel, then run this again",
                t.describe(),
                facts.cmdline.split_whitespace().find(|w| w.starts_with(TOKEN)).unwrap_or("")
            );
        }
        let (config_source, config) = running_config(t)?;
        let h = Home {
            target: t.plan_name(),
            facts: facts.clone(),
            config_source,
            config,
            modules: loaded_modules(t)?,
        };
        Ok((h, true))
    }

    /// The build options' view: the machine's config as the base of every build.
    pub fn host_config(&self) -> crate::build::HostConfig {
        crate::build::HostConfig {
            source: format!(
                "{} ({}, {})",
                self.target.strip_prefix("ssh:").unwrap_or(&self.facts.hostname),
                self.facts.release,
                self.config_source
            ),
            config: self.config.clone(),
            modules: self.modules.clone(),
        }
    }
}

/// The content-addressed place of a file on the box (survives the reboots).
fn remote_path(data: &[u8], name: &str) -> String {
    let id = git2::Oid::hash_object(git2::ObjectType::Blob, data).map(|o| o.to_string()).unwrap_or_default();
    format!("/var/tmp/mmeval/{}/{name}", &id[..16])
}

/// Copies a kernel image to the box, unless it is there already; returns its path there.
pub fn upload(t: &Target, image: &Path) -> Result<String> {
    let data = std::fs::read(image).with_context(|| format!("cannot read {}", image.display()))?;
    let name = image.file_name().unwrap().to_string_lossy().into_owned();
    let path = remote_path(&data, &name);
    let have = t.script(&format!("test -s {}", quote(&path)), vec![])?.status.success();
    if !have {
        t.put(data, &path, "644")?;
    }
    Ok(path)
}

/// Loads the kernel at `path` (on the box) with `kexec -l` and starts it; returns once
/// the box answers again with a new boot id, or `Ok(None)` when it does not in time.
pub fn kexec_into(
    t: &Target,
    path: &str,
    initrd: Option<&str>,
    cmdline: &str,
    old_boot_id: &str,
    timeout: Duration,
) -> Result<Option<Facts>> {
    let mut load = format!("kexec -l {}", quote(path));
    if let Some(i) = initrd {
        load.push_str(&format!(" --initrd={}", quote(i)));
    }
    load.push_str(&format!(" --command-line={}", quote(cmdline)));
    t.read(&load).context("kexec could not load the kernel")?;
    // In the background with every descriptor closed, so that ssh returns before the
    // machine goes away (no tty, so no SIGHUP when the session ends).
    t.read(
        "sh -c 'sleep 1; if command -v systemctl >/dev/null 2>&1; then systemctl kexec; else sync; kexec -e; fi' >/dev/null 2>&1 </dev/null &",
    )?;
    wait_for_new_boot(t, old_boot_id, timeout)
}

/// Polls until the machine answers with a boot id other than `old`.
pub fn wait_for_new_boot(t: &Target, old: &str, timeout: Duration) -> Result<Option<Facts>> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        std::thread::sleep(Duration::from_secs(2));
        if let Ok(out) = t.script_with_timeout(&probe_script(), vec![], 5) {
            if out.status.success() {
                let f = parse_facts(&String::from_utf8_lossy(&out.stdout));
                if !f.boot_id.is_empty() && f.boot_id != old {
                    return Ok(Some(f));
                }
            }
        }
    }
    Ok(None)
}

/// Runs the harness there on the running kernel: copied to a fresh directory, run with
/// the suite, removed. Needs root for the THP knobs (it restores them).
pub fn run_harness(t: &Target, harness: &Path, suite: &Suite, log: &Path) -> Result<(Boot, f64)> {
    let dir = log.parent().context("log has no directory")?;
    std::fs::create_dir_all(dir)?;
    let started = Instant::now();
    let stdout = match t {
        Target::Local => {
            let sh = Shell::new()?;
            let suite_file = dir.join("suite.txt");
            sh.write_file(&suite_file, suite::to_text(suite))?;
            cmd!(sh, "{harness} {suite_file}").quiet().ignore_status().output()?.stdout
        }
        Target::Ssh(_) => {
            let remote = t.read("mktemp -d")?;
            let remote = remote.trim();
            // It goes into scripts: only a plain path is acceptable.
            if !remote.starts_with('/')
                || !remote.chars().all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
            {
                bail!("{}: mktemp gave an unusable directory `{remote}`", t.describe());
            }
            t.put(std::fs::read(harness)?, &format!("{remote}/mmharness"), "755")?;
            t.put(suite::to_text(suite).into_bytes(), &format!("{remote}/suite.txt"), "644")?;
            let out = t.script(&format!("{remote}/mmharness {remote}/suite.txt"), vec![])?;
            let _ = t.script(&format!("rm -rf {remote}"), vec![]);
            out.stdout
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    // The kernel's log since boot goes with it: a WARNING or BUG of the kernel under
    // test must reach the report even when the harness finished.
    let dmesg = t.script("dmesg 2>/dev/null", vec![]).map(|o| o.stdout).unwrap_or_default();
    let mut text = String::from_utf8_lossy(&stdout).into_owned();
    text.push_str("\n--- dmesg ---\n");
    text.push_str(&String::from_utf8_lossy(&dmesg));
    std::fs::write(log, &text)?;
    let mut boot = serial::parse(&text, false);
    for l in String::from_utf8_lossy(&dmesg).lines() {
        if l.contains("BUG:") || l.contains("Oops:") {
            boot.warnings.push(l.trim().to_string());
        }
    }
    Ok((boot, seconds))
}

/// What to type to boot `image` on this host next (the tool cannot survive it).
pub fn boot_instructions(image: &Path, initrd: Option<&str>, cmdline: &str) -> String {
    let initrd = initrd.map(|i| format!(" --initrd={}", quote(i))).unwrap_or_default();
    format!(
        "kexec -l {}{initrd} --command-line={} && systemctl kexec",
        quote(&image.display().to_string()),
        quote(cmdline)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_anything() {
        assert_eq!(quote("plain"), "'plain'");
        assert_eq!(quote("it's; rm -rf /"), r"'it'\''s; rm -rf /'");
        // Checked with a real shell: the argument arrives as one word, unchanged.
        let hostile = "a'b\"c $(id) `id` ; \n x";
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", quote(hostile)))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), hostile);
    }

    #[test]
    fn ssh_destinations_are_checked() {
        assert!(Target::ssh("root@box").is_ok());
        assert!(Target::ssh("-oProxyCommand=x").is_err());
        assert!(Target::ssh("a b").is_err());
        assert!(Target::ssh("a\nb").is_err());
        assert!(Target::ssh("").is_err());
    }

    #[test]
    fn boot_instructions_quote_the_command_line() {
        let s = boot_instructions(
            Path::new("/c/bzImage"),
            Some("/boot/initrd.img-6.1"),
            "root=/dev/sda1 ro x='y'",
        );
        assert_eq!(
            s,
            r"kexec -l '/c/bzImage' --initrd='/boot/initrd.img-6.1' --command-line='root=/dev/sda1 ro x='\''y'\''' && systemctl kexec"
        );
    }
}
