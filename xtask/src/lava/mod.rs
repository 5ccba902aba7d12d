//! A LAVA lab: the job definition of one boot of the plan, what the REST API answers
//! (a job's state, its log), and the client that asks it. The definitions and the
//! readers of answers are pure and tested with recorded answers; [`Lab`] is the IO.
//!
//! A boot is judged by our serial parser on the console lines of the job's log, never
//! by LAVA's own results: LAVA files an early guest death as an infrastructure error
//! and renames test cases.

use crate::arch::Arch;
use crate::model::Clock;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Where a boot ran on the lab, kept in its record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabJob {
    pub id: u64,
    /// The job's page (`<lab>/scheduler/job/ID`).
    pub url: String,
    /// The device that ran it (`actual_device`).
    pub device: Option<String>,
    /// Complete, Incomplete or Canceled.
    pub health: String,
    /// The QEMU command line the lab ran (a QEMU device), as its log says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The lab's QEMU package and version, as its log says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qemu: Option<String>,
}

/// `--lava URL` and its options: which lab, which devices, how many jobs at once, and
/// how the lab gets our kernels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabSpec {
    /// The lab's base URL, ending in `/`.
    pub url: String,
    pub device_type: String,
    pub token_file: std::path::PathBuf,
    /// Jobs queued at once.
    pub jobs: usize,
    pub serve: Serve,
}

/// How the lab fetches the kernels and initramfs of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serve {
    /// `file://` paths: the lab's workers share this machine's disk.
    File,
    /// A small HTTP server of ours for the run, listening on this address (host:port,
    /// as the lab's workers reach it).
    Http(String),
    /// Copied into a directory the lab serves at a URL (removed after the run).
    Upload { dir: std::path::PathBuf, url: String },
}

impl Serve {
    /// `--lava-serve ADDR` / `--lava-upload DIR=URL` (at most one).
    pub fn parse(serve: Option<&str>, upload: Option<&str>) -> Result<Serve> {
        match (serve, upload) {
            (None, None) => Ok(Serve::File),
            (Some(_), Some(_)) => bail!("--lava-serve and --lava-upload: give one of them"),
            (Some(addr), None) => {
                let ok =
                    addr.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
                if !ok || addr.chars().any(|c| c.is_whitespace() || c == '/') {
                    bail!("--lava-serve {addr:?}: give host:port as the lab's workers reach this machine, e.g. 192.0.2.10:8080");
                }
                Ok(Serve::Http(addr.to_string()))
            }
            (None, Some(u)) => {
                let Some((dir, url)) = u.split_once('=') else {
                    bail!("--lava-upload {u:?}: give DIR=URL, the directory the lab serves and its URL");
                };
                let url = base_url(url).map_err(|_| {
                    anyhow::anyhow!("--lava-upload {u:?}: the URL after = must be http:// or https://")
                })?;
                Ok(Serve::Upload { dir: dir.into(), url })
            }
        }
    }
}

/// What kind of device a device type is: QEMU on a worker (arch, memory and QEMU's
/// options go into the job), or real boards (the same boot without them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Qemu,
    Board,
}

impl DeviceKind {
    pub fn of(device_type: &str) -> DeviceKind {
        if device_type == "qemu" {
            DeviceKind::Qemu
        } else {
            DeviceKind::Board
        }
    }
}

/// One boot, as the job definition needs it.
#[derive(Debug, Clone)]
pub struct JobSpec<'a> {
    pub name: String,
    pub device_type: &'a str,
    pub arch: &'a Arch,
    pub kernel_url: String,
    pub initrd_url: String,
    /// The kernel command line, as the local backend gives it.
    pub cmdline: String,
    pub cpus: u32,
    pub mem_mib: u32,
    pub clock: Clock,
    /// How long the harness may run once booted (the suite's deadline).
    pub deadline_s: u64,
    /// The boot's round (under the instruction clock, its seed).
    pub round: usize,
}

/// The harness's first and last lines (see harness/mmharness.c `emit`).
const START: &str = "MMEVAL begin";
const END: &str = "MMEVAL end results=";

/// The job definition (JSON, which LAVA accepts as YAML) for one boot.
pub fn definition(j: &JobSpec) -> Value {
    let kind = DeviceKind::of(j.device_type);
    // Boot, then the suite, then a margin for LAVA's own steps (download, teardown).
    let test_s = j.deadline_s + 60;
    let (deploy, boot, context) = match kind {
        DeviceKind::Qemu => {
            let mut extra = vec![
                format!("-machine {}", j.arch.machine),
                format!("-cpu {}", j.arch.cpu),
                format!("-smp {}", j.cpus),
                // panic=-1 reboots: QEMU then exits instead of booting again.
                "-no-reboot".to_string(),
            ];
            if j.clock == Clock::Instructions {
                extra.extend(crate::qemu::icount_args(j.round).chunks(2).map(|o| o.join(" ")));
            }
            let mut context = json!({
                "arch": j.arch.lava_arch,
                "memory": j.mem_mib,
                "extra_options": extra,
            });
            // KVM has no instruction clock; a wall-clock boot runs as the device does.
            if j.clock == Clock::Instructions {
                context["no_kvm"] = json!(true);
            }
            let deploy = json!({
                "to": "tmpfs",
                "timeout": {"minutes": 5},
                "images": {
                    "kernel": {
                        "url": j.kernel_url,
                        "image_arg": format!("-kernel {{kernel}} -append \"{}\"", j.cmdline),
                    },
                    "initrd": {"url": j.initrd_url, "image_arg": "-initrd {initrd}"},
                },
            });
            let boot = json!({"method": "qemu", "media": "tmpfs", "timeout": {"minutes": 2}});
            (deploy, boot, Some(context))
        }
        DeviceKind::Board => {
            let deploy = json!({
                "to": "tftp",
                "timeout": {"minutes": 5},
                "kernel": {"url": j.kernel_url, "type": j.arch.lava_kernel_type},
                // Our initramfs is a plain cpio; u-boot's bootm wants its header.
                "ramdisk": {"url": j.initrd_url, "add_header": "u-boot"},
            });
            let boot = json!({
                "method": "u-boot",
                "commands": "ramdisk",
                "timeout": {"minutes": 5},
                "prompts": [START],
            });
            (deploy, boot, None)
        }
    };
    let mut job = json!({
        "device_type": j.device_type,
        "job_name": j.name,
        "priority": "medium",
        "visibility": "public",
        "timeouts": {
            "job": {"seconds": test_s + 600},
            "connection": {"minutes": 2},
        },
        "actions": [
            {"deploy": deploy},
            {"boot": boot},
            {"test": {
                "timeout": {"seconds": test_s},
                "monitors": [{
                    "name": "mmeval",
                    "start": START,
                    "end": END,
                    // Only to satisfy the schema: the console is judged by our parser.
                    "pattern": "MMEVAL lava-unused (?P<test_case_id>\\S+) (?P<result>pass|fail) ",
                }],
            }},
        ],
    });
    if let Some(c) = context {
        job["context"] = c;
    }
    job
}

/// A job as `GET /api/v0.2/jobs/ID/` says it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct JobState {
    pub id: u64,
    /// Submitted, Scheduling, Scheduled, Running, Canceling, Finished.
    pub state: String,
    /// Unknown until finished; then Complete, Incomplete or Canceled.
    pub health: String,
    #[serde(default)]
    pub actual_device: Option<String>,
    #[serde(default)]
    pub failure_comment: Option<String>,
}

impl JobState {
    pub fn parse(body: &[u8]) -> Result<JobState> {
        serde_json::from_slice(body).context("the lab's job answer is not a job")
    }

    pub fn finished(&self) -> bool {
        self.state == "Finished"
    }
}

/// What a job's log (`GET /api/v0.2/jobs/ID/logs/`, YAML, one `{dt, lvl, msg}` per
/// line) says: the guest's console, how QEMU was started, and LAVA's errors.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobLog {
    /// The target's lines joined with newlines: the serial log, as the local backend
    /// would have written it.
    pub console: String,
    /// The command line LAVA ran (on a QEMU device), for the accelerator it used.
    pub command: Option<String>,
    /// LAVA's error lines and the job's error result (`error_msg`).
    pub errors: Vec<String>,
    /// "qemu-system-x86 1:7.2+dfsg-7+deb12u18+b3": the dispatcher's QEMU package.
    pub qemu: Option<String>,
}

#[derive(Deserialize)]
struct LogLine {
    #[serde(default)]
    lvl: String,
    #[serde(default)]
    msg: serde_yaml::Value,
}

impl JobLog {
    pub fn parse(text: &str) -> Result<JobLog> {
        // A log cut in the middle of its last entry (a job still writing it) loses that
        // entry only.
        let lines: Vec<LogLine> = match serde_yaml::from_str(text) {
            Ok(l) => l,
            Err(_) => {
                let whole = text.rfind("\n- ").map(|i| &text[..i]).filter(|w| w.starts_with("- "));
                let whole = whole.context("the lab's job log is not LAVA's YAML log")?;
                serde_yaml::from_str(whole).context("the lab's job log is not LAVA's YAML log")?
            }
        };
        let mut log = JobLog::default();
        let mut console = Vec::new();
        for l in lines {
            match (l.lvl.as_str(), &l.msg) {
                ("target" | "feedback", serde_yaml::Value::String(s)) => console.push(s.clone()),
                ("error", serde_yaml::Value::String(s)) => log.errors.push(s.clone()),
                ("results", serde_yaml::Value::Mapping(m)) => {
                    let get = |k: &str| m.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
                    if get("case") == "job" && get("result") == "fail" {
                        let (kind, msg) = (get("error_type"), get("error_msg"));
                        if !msg.is_empty() {
                            log.errors.push(format!("{kind}: {msg}").trim_start_matches(": ").to_string());
                        }
                    }
                }
                (_, serde_yaml::Value::String(s)) => {
                    if let Some(c) = s.strip_prefix("Boot command: ") {
                        log.command.get_or_insert_with(|| c.to_string());
                    }
                    // "qemu-system-x86, installed at version: 1:7.2+dfsg-7+deb12u18+b3, host ..."
                    if let Some((pkg, rest)) = s.split_once(", installed at version: ") {
                        if pkg.starts_with("qemu-system") {
                            let v = rest.split(',').next().unwrap_or(rest);
                            log.qemu.get_or_insert_with(|| format!("{pkg} {v}"));
                        }
                    }
                }
                _ => {}
            }
        }
        log.console = console.join("\n");
        if !log.console.is_empty() {
            log.console.push('\n');
        }
        Ok(log)
    }

    /// Whether QEMU ran under KVM.
    pub fn used_kvm(&self) -> bool {
        self.command.as_deref().is_some_and(|c| c.split_whitespace().any(|w| w == "-enable-kvm"))
    }
}

/// A finished job's boot as our parser judges its console; a job LAVA did not finish
/// Complete is a failed boot, with LAVA's error in front of the console's excerpt.
pub fn judge(id: u64, health: &str, log: &JobLog) -> crate::serial::Boot {
    use crate::serial::BootStatus;
    let mut boot = crate::serial::parse(&log.console, false);
    if health != "Complete" {
        if boot.status == BootStatus::Ok {
            boot.status = BootStatus::Incomplete;
        }
        let why = log.errors.last().map(|e| e.trim().to_string()).unwrap_or_else(|| "no error given".into());
        boot.excerpt.insert(0, format!("LAVA job {id} {health}: {why}"));
    }
    boot
}

mod client;
pub use client::{base_url, random_word, read_token, Lab};

#[cfg(test)]
mod tests;
