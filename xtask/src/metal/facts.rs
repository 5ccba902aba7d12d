//! What a machine says about itself (the probe's `key=value` lines), our token on a
//! test kernel's command line, and the command lines for going there and back. Pure.

use super::Target;
use serde::{Deserialize, Serialize};

/// What a machine says about itself.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Facts {
    pub hostname: String,
    /// Our name for the architecture (x86_64, arm64, ppc64le).
    pub arch: crate::model::ArchName,
    pub release: String,
    pub cmdline: String,
    pub boot_id: String,
    pub cpus: u32,
    pub root: bool,
    pub kexec: bool,
    pub systemctl: bool,
    /// The running kernel's image and initrd in /boot, when they are there.
    pub image: Option<String>,
    pub initrd: Option<String>,
    /// The CPU says it runs under a hypervisor (x86's `hypervisor` flag).
    #[serde(default)]
    pub hypervisor: bool,
    /// DMI vendor and product, when the firmware gives them.
    #[serde(default)]
    pub vendor: String,
}

impl Facts {
    /// How the report names the machine: where it is and what it is.
    pub fn describe(&self, t: &Target) -> String {
        let mut s = match t {
            Target::Local => format!("this host ({})", self.hostname),
            Target::Ssh(d) => d.clone(),
        };
        let vendor = self.vendor.trim();
        if !vendor.is_empty() {
            s.push_str(&format!(", {vendor}"));
        }
        if self.hypervisor {
            s.push_str(", a virtual machine (its CPU reports a hypervisor)");
        }
        s
    }
}
/// `uname -m` to our architecture names (the table's `machine_names`).
pub fn machine_to_arch(m: &str) -> crate::model::ArchName {
    crate::arch::table()
        .ok()
        .and_then(|t| t.from_machine(m))
        .map(|a| a.name.clone())
        .unwrap_or_else(|| m.into())
}

/// `0-3,6,8-9` (sysfs CPU lists) to a count.
pub fn count_cpus(list: &str) -> u32 {
    list.trim()
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('-') {
            Some((a, b)) => match (a.parse::<u32>(), b.parse::<u32>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 0,
            },
            None => u32::from(p.parse::<u32>().is_ok()),
        })
        .sum()
}

/// The probe script's output to facts. Pure.
pub fn parse_facts(text: &str) -> Facts {
    let mut f = Facts::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else { continue };
        let v = v.trim().to_string();
        match k {
            "hostname" => f.hostname = v,
            "machine" => f.arch = machine_to_arch(&v),
            "release" => f.release = v,
            "uid" => f.root = v == "0",
            "boot_id" => f.boot_id = v,
            "online" => f.cpus = count_cpus(&v),
            "kexec" => f.kexec = !v.is_empty(),
            "systemctl" => f.systemctl = !v.is_empty(),
            "image" if !v.is_empty() => f.image = Some(v),
            "initrd" if !v.is_empty() => f.initrd = Some(v),
            "cmdline" => f.cmdline = v,
            "hypervisor" => f.hypervisor = v == "yes",
            "vendor" => f.vendor = v,
            _ => {}
        }
    }
    f
}
/// The key of the word on the kernel command line that says which kernel we booted.
pub const TOKEN: &str = "mmeval.kernel=";

/// That word for a kernel.
pub fn token(variant: &str, commit: &str) -> String {
    format!("{TOKEN}{variant}/{}", &commit[..commit.len().min(12)])
}

/// Whether a machine with this command line runs one of our test kernels.
pub fn runs_test_kernel(cmdline: &str) -> bool {
    cmdline.split_whitespace().any(|w| w.starts_with(TOKEN))
}

/// The command line for a test kernel: the machine's own one without the boot loader's
/// words and our earlier token, then ours. `panic=10` makes a crashing test kernel
/// reboot (into the machine's default kernel) instead of hanging. Pure.
pub fn test_cmdline(home: &str, token: &str) -> String {
    let home = home_cmdline(home);
    let mut words: Vec<&str> = home.split_whitespace().filter(|w| !w.starts_with("mmeval.")).collect();
    // Arguments after `--` go to init; ours must come before them.
    let tail = words.iter().position(|w| *w == "--").map(|i| words.split_off(i)).unwrap_or_default();
    if !words.iter().any(|w| w.starts_with("panic=")) {
        words.push("panic=10");
    }
    words.push(token);
    words.extend(tail);
    words.join(" ")
}

/// The machine's own command line for going home: without the boot loader's words. Pure.
pub fn home_cmdline(home: &str) -> String {
    home.split_whitespace()
        .filter(|w| !w.starts_with("BOOT_IMAGE=") && !w.starts_with("initrd="))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(count_cpus("0-3"), 4);
        assert_eq!(count_cpus("0"), 1);
        assert_eq!(count_cpus("0-1,4,6-7\n"), 5);
        assert_eq!(count_cpus(""), 0);
    }

    #[test]
    fn facts_from_the_probe() {
        let f = parse_facts(
            "hostname=box\nmachine=aarch64\nrelease=7.2.13\nuid=0\nboot_id=abc\nonline=0-7\nkexec=/usr/sbin/kexec\nsystemctl=\nimage=/boot/vmlinuz-7.2.13\ncmdline=root=/dev/sda1 ro quiet x=a=b\n",
        );
        assert_eq!(f.arch, "arm64");
        assert_eq!(f.cpus, 8);
        assert!(f.root && f.kexec && !f.systemctl);
        assert_eq!(f.image.as_deref(), Some("/boot/vmlinuz-7.2.13"));
        assert_eq!(f.initrd, None);
        assert_eq!(f.cmdline, "root=/dev/sda1 ro quiet x=a=b");
    }

    #[test]
    fn test_kernel_command_lines() {
        let t = token("patched", "0123456789abcdef");
        assert_eq!(t, "mmeval.kernel=patched/0123456789ab");
        assert_eq!(
            test_cmdline("BOOT_IMAGE=/boot/vmlinuz-6.1 root=UUID=x ro quiet mmeval.kernel=baseline/aaaa", &t),
            "root=UUID=x ro quiet panic=10 mmeval.kernel=patched/0123456789ab"
        );
        assert_eq!(
            test_cmdline("console=ttyS0 panic=1 rdinit=/x -- --init-arg", &t),
            "console=ttyS0 panic=1 rdinit=/x mmeval.kernel=patched/0123456789ab -- --init-arg"
        );
    }
}
