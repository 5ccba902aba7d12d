//! QEMU command lines from the architecture table, and running them so that QEMU
//! always terminates: `-no-reboot`, `panic=-1`, a host-side deadline after which the
//! child is killed. The serial console comes to us on QEMU's stdout and is written to
//! the boot's log as it arrives, so a hang leaves the evidence on disk, a flood is cut
//! at a cap, and a log we cannot write (a full disk) is our fault, not the kernel's.

use crate::arch::Arch;
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use xshell::{cmd, Shell};

pub use crate::model::Clock;

/// How QEMU runs the guest: hardware virtualisation or TCG emulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Virt {
    Kvm,
    Tcg,
}

impl From<Virt> for crate::model::Accel {
    fn from(v: Virt) -> Self {
        match v {
            Virt::Kvm => crate::model::Accel::Kvm,
            Virt::Tcg => crate::model::Accel::Tcg,
        }
    }
}

#[derive(Debug, Clone)]
pub struct BootSpec {
    pub arch: Arch,
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cpus: u32,
    pub mem_mib: u32,
    pub accel: Virt,
    pub clock: Clock,
    /// Kernel command line words beyond console/panic (e.g. the harness's).
    pub append: Vec<String>,
    /// QEMU's seccomp sandbox (`-sandbox on`, no spawning, no privileges): set by
    /// [`run`] when the binary has it.
    pub sandbox: bool,
    /// Under the instruction clock: the boot's round, which fixes what the guest sees
    /// as random and as the time of day (see [`icount_args`]).
    pub round: usize,
}

/// The instruction clock: one nanosecond per guest instruction, and an idle guest's
/// clock jumps to its next timer instead of following the host's (`sleep=off`; with
/// QEMU's default `sleep=on` idle time is host time, which a loaded host, e.g. boots
/// side by side, could change).
pub const ICOUNT: &str = "shift=0,sleep=off";

/// The date the guest's RTC starts from under the instruction clock.
pub const ICOUNT_RTC: &str = "base=2026-01-01T00:00:00,clock=vm";

/// QEMU's options for the instruction clock in round `round`: `-icount`, and the
/// guest's randomness (`-seed`, RDRAND and the like) and RTC fixed. Measured on
/// x86_64: with the host's randomness and time of day, toggle_touch/1M took one of two
/// values 0.45% apart from boot to boot (the memory layout), whatever the clock; with
/// these, a boot repeats exactly, and each round still has a layout of its own.
pub fn icount_args(round: usize) -> Vec<String> {
    [
        "-icount".to_string(),
        ICOUNT.to_string(),
        "-seed".to_string(),
        (round + 1).to_string(),
        "-rtc".to_string(),
        ICOUNT_RTC.to_string(),
    ]
    .into()
}
/// The seccomp filter QEMU applies to itself: the guest is the series' kernel.
pub const SANDBOX: &str = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/// Whether `qemu` was built with `-sandbox` (seccomp). Asked once per binary.
pub fn has_sandbox(qemu: &str) -> bool {
    static CACHE: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, bool>>> =
        std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(v) = cache.lock().unwrap().get(qemu) {
        return *v;
    }
    let help = Shell::new().ok().and_then(|sh| cmd!(sh, "{qemu} -help").quiet().ignore_stderr().read().ok());
    let yes = help.is_some_and(|h| h.lines().any(|l| l.starts_with("-sandbox ")));
    cache.lock().unwrap().insert(qemu.to_string(), yes);
    yes
}

/// The kernel command line.
pub fn cmdline(spec: &BootSpec) -> String {
    let mut words =
        vec![format!("console={}", spec.arch.console), "panic=-1".to_string(), "oops=panic".to_string()];
    if spec.clock == Clock::Instructions && !spec.arch.icount_cmdline.is_empty() {
        words.push(spec.arch.icount_cmdline.clone());
    }
    words.extend(spec.append.iter().cloned());
    words.join(" ")
}

/// The QEMU argv (without the binary), serial console on stdout.
pub fn qemu_argv(spec: &BootSpec) -> Vec<String> {
    let a = &spec.arch;
    let mut v: Vec<String> = vec!["-M".into(), a.machine.clone()];
    match spec.accel {
        Virt::Kvm => v.extend(["-accel".into(), "kvm".into(), "-cpu".into(), "host".into()]),
        Virt::Tcg => v.extend(["-accel".into(), "tcg".into(), "-cpu".into(), a.cpu.clone()]),
    }
    if spec.clock == Clock::Instructions {
        v.extend(icount_args(spec.round));
    }
    if spec.sandbox {
        v.extend(["-sandbox".into(), SANDBOX.into()]);
    }
    v.extend([
        "-smp".into(),
        spec.cpus.to_string(),
        "-m".into(),
        format!("{}M", spec.mem_mib),
        "-nodefaults".into(),
        "-display".into(),
        "none".into(),
        "-no-reboot".into(),
        "-serial".into(),
        "stdio".into(),
        "-kernel".into(),
        spec.kernel.display().to_string(),
    ]);
    if let Some(i) = &spec.initrd {
        v.extend(["-initrd".into(), i.display().to_string()]);
    }
    v.extend(["-append".into(), cmdline(spec)]);
    v
}

#[derive(Debug, Clone, Serialize)]
pub struct QemuRun {
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub seconds: f64,
    pub serial_log: PathBuf,
    /// What QEMU itself printed (warnings, errors).
    pub qemu_stderr: String,
    /// The guest wrote more than the console cap: QEMU was stopped, the log cut there.
    pub flooded: bool,
}

/// The most a boot's serial console may write (a kernel that floods its console must
/// not fill the disk); a boot that writes more is stopped and fails.
pub const MAX_CONSOLE: u64 = 64 << 20;

/// Runs QEMU for `spec` until it exits or `deadline` passes (then kills it).
pub fn run(spec: &BootSpec, serial_log: &Path, deadline: Duration) -> Result<QemuRun> {
    run_capped(spec, serial_log, deadline, MAX_CONSOLE)
}

/// [`run`] with the console cap given.
pub fn run_capped(
    spec: &BootSpec,
    serial_log: &Path,
    deadline: Duration,
    max_console: u64,
) -> Result<QemuRun> {
    let sh = Shell::new()?;
    let qemu = &spec.arch.qemu;
    let spec = &BootSpec { sandbox: has_sandbox(qemu), ..spec.clone() };
    let argv = qemu_argv(spec);
    if let Some(dir) = serial_log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let ours = |e: std::io::Error, what: &Path| {
        anyhow::anyhow!(
            "cannot write {}: {e} ({}); free some space and run the same command again",
            what.display(),
            crate::host::free_space(what)
        )
    };
    let log = std::fs::File::create(serial_log).map_err(|e| ours(e, serial_log))?;
    let err_path = serial_log.with_extension("qemu-stderr");
    let err_file = std::fs::File::create(&err_path).map_err(|e| ours(e, &err_path))?;
    // QEMU dies with us, however we die (a killed run must not leave a guest running
    // beside the next run's boots): util-linux's setpriv sets the parent-death signal
    // and execs QEMU in the same process.
    let mut command = if crate::host::have("setpriv") {
        Command::from(cmd!(sh, "setpriv --pdeathsig KILL -- {qemu} {argv...}").quiet())
    } else {
        Command::from(cmd!(sh, "{qemu} {argv...}").quiet())
    };
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(err_file);
    let started = Instant::now();
    let mut child = command.spawn().with_context(|| format!("cannot start {qemu}"))?;
    let console = Console::default();
    let copier = {
        let (console, out) = (console.clone(), child.stdout.take().expect("piped"));
        std::thread::spawn(move || console.copy(out, log, max_console))
    };
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        let stop = started.elapsed() > deadline || console.stopped();
        if stop {
            let _ = child.kill();
            let _ = child.wait();
            timed_out = !console.stopped();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = copier.join();
    if let Some(e) = console.write_error() {
        return Err(ours(e, serial_log));
    }
    Ok(QemuRun {
        exit_code: status.and_then(|s| s.code()),
        timed_out,
        seconds: started.elapsed().as_secs_f64(),
        serial_log: serial_log.to_path_buf(),
        qemu_stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        flooded: console.flooded(),
    })
}

/// The guest's console on its way from QEMU's stdout to the log: what stopped it, if
/// anything (more than the cap, or a write of ours that failed).
#[derive(Clone, Default)]
struct Console(std::sync::Arc<std::sync::Mutex<ConsoleState>>);

#[derive(Default)]
struct ConsoleState {
    flooded: bool,
    write_error: Option<std::io::Error>,
}

impl Console {
    fn copy(&self, mut from: impl std::io::Read, mut to: std::fs::File, cap: u64) {
        use std::io::Write;
        let mut buf = vec![0u8; 64 << 10];
        let mut written = 0u64;
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            // Up to the cap, then QEMU is stopped: what it wrote until then is kept.
            let keep = n.min(cap.saturating_sub(written) as usize);
            if let Err(e) = to.write_all(&buf[..keep]) {
                self.0.lock().unwrap().write_error = Some(e);
                return;
            }
            written += keep as u64;
            if keep < n {
                self.0.lock().unwrap().flooded = true;
                return;
            }
        }
    }

    fn stopped(&self) -> bool {
        let s = self.0.lock().unwrap();
        s.flooded || s.write_error.is_some()
    }

    fn flooded(&self) -> bool {
        self.0.lock().unwrap().flooded
    }

    fn write_error(&self) -> Option<std::io::Error> {
        let s = self.0.lock().unwrap();
        s.write_error.as_ref().map(|e| std::io::Error::new(e.kind(), e.to_string()))
    }
}

/// Boots `kernel` with no initramfs: a kernel that reaches its console prints its
/// banner and then panics for want of a root file system, and QEMU exits. Returns the
/// banner line.
pub fn smoke(arch: &Arch, kernel: &Path, log: &Path) -> Result<String> {
    let spec = BootSpec {
        arch: arch.clone(),
        kernel: kernel.to_path_buf(),
        initrd: None,
        cpus: 1,
        mem_mib: 256,
        accel: Virt::Tcg,
        clock: Clock::Wall,
        append: vec![],
        sandbox: false,
        round: 0,
    };
    let r = run(&spec, log, Duration::from_secs(120))?;
    let text = String::from_utf8_lossy(&std::fs::read(log).unwrap_or_default()).into_owned();
    let banner = text.lines().find(|l| l.contains("Linux version")).map(|l| l.trim().to_string());
    match banner {
        Some(b) if !r.timed_out => Ok(b),
        Some(_) => {
            anyhow::bail!("{} reached its console but QEMU did not exit (log: {})", arch.name, log.display())
        }
        None => anyhow::bail!(
            "{} printed no kernel banner in {:.0} s (log: {}; QEMU said: {})",
            arch.name,
            r.seconds,
            log.display(),
            r.qemu_stderr.trim()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn qemu_argv_per_arch() {
        let table = crate::arch::table().unwrap();
        let mut out = String::new();
        for (name, accel, clock) in [
            ("x86_64", Virt::Tcg, Clock::Wall),
            ("x86_64", Virt::Kvm, Clock::Wall),
            ("x86_64", Virt::Tcg, Clock::Instructions),
            ("arm64", Virt::Tcg, Clock::Wall),
            ("ppc64le", Virt::Tcg, Clock::Instructions),
        ] {
            let spec = BootSpec {
                arch: table.get(name).unwrap().clone(),
                kernel: "/k/image".into(),
                initrd: Some("/k/initrd.cpio".into()),
                cpus: 2,
                mem_mib: 1024,
                accel,
                clock,
                append: vec!["mmeval.suite=quick".into()],
                sandbox: name == "arm64",
                round: 2,
            };
            out.push_str(&format!("{} {}\n", spec.arch.qemu, qemu_argv(&spec).join(" ")));
        }
        expect![[r#"
            qemu-system-x86_64 -M q35 -accel tcg -cpu max -smp 2 -m 1024M -nodefaults -display none -no-reboot -serial stdio -kernel /k/image -initrd /k/initrd.cpio -append console=ttyS0 panic=-1 oops=panic mmeval.suite=quick
            qemu-system-x86_64 -M q35 -accel kvm -cpu host -smp 2 -m 1024M -nodefaults -display none -no-reboot -serial stdio -kernel /k/image -initrd /k/initrd.cpio -append console=ttyS0 panic=-1 oops=panic mmeval.suite=quick
            qemu-system-x86_64 -M q35 -accel tcg -cpu max -icount shift=0,sleep=off -seed 3 -rtc base=2026-01-01T00:00:00,clock=vm -smp 2 -m 1024M -nodefaults -display none -no-reboot -serial stdio -kernel /k/image -initrd /k/initrd.cpio -append console=ttyS0 panic=-1 oops=panic noapictimer mmeval.suite=quick
            qemu-system-aarch64 -M virt -accel tcg -cpu max -sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny -smp 2 -m 1024M -nodefaults -display none -no-reboot -serial stdio -kernel /k/image -initrd /k/initrd.cpio -append console=ttyAMA0 panic=-1 oops=panic mmeval.suite=quick
            qemu-system-ppc64 -M pseries,x-vof=on -accel tcg -cpu power9 -icount shift=0,sleep=off -seed 3 -rtc base=2026-01-01T00:00:00,clock=vm -smp 2 -m 1024M -nodefaults -display none -no-reboot -serial stdio -kernel /k/image -initrd /k/initrd.cpio -append console=hvc0 panic=-1 oops=panic mmeval.suite=quick
        "#]]
        .assert_eq(&out);
    }
}
