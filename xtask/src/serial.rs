//! A serial log to data: the harness's `MMEVAL` lines (each checked by its CRC, and
//! stitched back together when a kernel message cut through it), and the boot's fate:
//! ran to the end, panicked, oopsed, warned, timed out, or stopped short. Pure.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the guest said about itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Env {
    pub kernel: String,
    pub machine: String,
    pub page_size: u64,
    pub cpus: u32,
    pub cpu_model: String,
    pub thp: String,
    pub shmem_thp: String,
    pub mthp: String,
    pub clocksource: String,
}

/// One workload's result in one boot: the in-boot repetitions and their summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub id: String,
    pub workload: String,
    pub metric: String,
    pub unit: String,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub reps: u32,
    pub pages: u64,
    pub iterations: u64,
    pub total_ns: u64,
    pub threads: u32,
    pub samples: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFailure {
    pub id: String,
    pub workload: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BootStatus {
    /// The harness printed its end marker.
    Ok,
    Panic,
    Timeout,
    /// The guest stopped (QEMU exited) without the end marker and without a panic.
    Incomplete,
    /// Not a single harness line: the harness never ran.
    NoHarness,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Boot {
    pub status: BootStatus,
    pub suite: Option<String>,
    pub env: Option<Env>,
    pub results: Vec<Sample>,
    pub failures: Vec<RunFailure>,
    /// Kernel WARNINGs seen (the first line of each).
    pub warnings: Vec<String>,
    /// The log lines that explain a bad status (panic, oops, the last lines).
    pub excerpt: Vec<String>,
    /// Harness lines whose CRC did not match even after stitching: lost data.
    pub corrupt_lines: usize,
    /// Harness lines cut by a kernel message and put back together.
    pub repaired_lines: usize,
}

fn crc_ok(line: &str) -> Option<&str> {
    let (body, crc) = line.rsplit_once(" crc=")?;
    let want = u32::from_str_radix(crc.trim(), 16).ok()?;
    let mut h = flate2::Crc::new();
    h.update(body.as_bytes());
    (h.sum() == want).then_some(body)
}

/// Where a printk line starts inside `line` (`[    1.234567] ` with PRINTK_TIME).
fn printk_at(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    let mut i = 0;
    while let Some(off) = line[i..].find('[') {
        let s = i + off;
        let mut j = s + 1;
        while j < b.len() && b[j] == b' ' {
            j += 1;
        }
        let digits = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > digits && j < b.len() && b[j] == b'.' {
            j += 1;
            let frac = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if j > frac && j < b.len() && b[j] == b']' {
                return Some(s);
            }
        }
        i = s + 1;
    }
    None
}

fn fields(body: &str) -> (String, BTreeMap<String, String>) {
    let mut words = body.split_whitespace();
    let kind = words.nth(1).unwrap_or("").to_string(); // after "MMEVAL"
    let map = words.filter_map(|w| w.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    (kind, map)
}

/// The harness lines of a log, CRC-checked, with cut lines stitched back together.
/// Returns the good bodies and the (repaired, corrupt) counts.
fn harness_lines(lines: &[&str]) -> (Vec<String>, usize, usize) {
    let (mut good, mut repaired, mut corrupt) = (Vec::new(), 0, 0);
    let mut i = 0;
    while i < lines.len() {
        let Some(at) = lines[i].find("MMEVAL ") else {
            i += 1;
            continue;
        };
        let line = &lines[i][at..];
        if let Some(body) = crc_ok(line) {
            good.push(body.to_string());
            i += 1;
            continue;
        }
        // A kernel message inside our line: drop it, join the rest with what follows.
        let mut joined = match printk_at(line) {
            Some(p) => line[..p].to_string(),
            None => line.to_string(),
        };
        let mut fixed = None;
        for (k, next) in lines.iter().enumerate().skip(i + 1).take(4) {
            let piece = match printk_at(next) {
                Some(0) => continue, // a whole kernel line between the pieces
                Some(p) => &next[..p],
                None => next,
            };
            joined.push_str(piece);
            if let Some(body) = crc_ok(&joined) {
                fixed = Some((body.to_string(), k));
                break;
            }
            if next.contains("MMEVAL ") {
                break;
            }
        }
        match fixed {
            Some((body, k)) => {
                good.push(body);
                repaired += 1;
                i = k + 1;
            }
            None => {
                corrupt += 1;
                i += 1;
            }
        }
    }
    (good, repaired, corrupt)
}

fn num<T: std::str::FromStr + Default>(m: &BTreeMap<String, String>, k: &str) -> T {
    m.get(k).and_then(|v| v.parse().ok()).unwrap_or_default()
}

fn text(m: &BTreeMap<String, String>, k: &str) -> String {
    m.get(k).cloned().unwrap_or_default()
}

const PANIC: &str = "Kernel panic - not syncing";
const TROUBLE: [&str; 6] =
    ["Oops", "BUG:", "Unable to handle kernel", "Kernel panic", "------------[ cut here ]", "Call Trace:"];

/// Parses a serial log. `timed_out`: the host killed QEMU at its deadline.
pub fn parse(log: &str, timed_out: bool) -> Boot {
    let lines: Vec<&str> = log.split('\n').map(|l| l.trim_end_matches('\r')).collect();
    let (bodies, repaired_lines, corrupt_lines) = harness_lines(&lines);
    let mut boot = Boot {
        status: BootStatus::NoHarness,
        suite: None,
        env: None,
        results: vec![],
        failures: vec![],
        warnings: vec![],
        excerpt: vec![],
        corrupt_lines,
        repaired_lines,
    };
    let mut ended = false;
    for b in &bodies {
        let (kind, m) = fields(b);
        match kind.as_str() {
            "begin" => boot.suite = m.get("suite").cloned(),
            "env" => {
                boot.env = Some(Env {
                    kernel: text(&m, "kernel"),
                    machine: text(&m, "machine"),
                    page_size: num(&m, "page_size"),
                    cpus: num(&m, "cpus"),
                    cpu_model: text(&m, "cpu_model"),
                    thp: text(&m, "thp"),
                    shmem_thp: text(&m, "shmem_thp"),
                    mthp: text(&m, "mthp"),
                    clocksource: text(&m, "clocksource"),
                })
            }
            "result" => boot.results.push(Sample {
                id: text(&m, "id"),
                workload: text(&m, "workload"),
                metric: text(&m, "metric"),
                unit: text(&m, "unit"),
                median: num(&m, "median"),
                min: num(&m, "min"),
                max: num(&m, "max"),
                reps: num(&m, "reps"),
                pages: num(&m, "pages"),
                iterations: num(&m, "iterations"),
                total_ns: num(&m, "total_ns"),
                threads: num(&m, "threads"),
                samples: m
                    .get("samples")
                    .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
                    .unwrap_or_default(),
            }),
            "fail" => boot.failures.push(RunFailure {
                id: text(&m, "id"),
                workload: text(&m, "workload"),
                reason: text(&m, "reason").replace('_', " "),
            }),
            "end" => ended = true,
            _ => {}
        }
    }
    for (i, l) in lines.iter().enumerate() {
        if l.contains("WARNING: CPU:") || l.contains("WARNING: at ") {
            boot.warnings.push(strip_time(l));
            if boot.excerpt.is_empty() {
                boot.excerpt = lines[i..].iter().take(25).map(|l| strip_time(l)).collect();
            }
        }
    }
    let panicked = lines.iter().any(|l| l.contains(PANIC));
    boot.status = if panicked {
        BootStatus::Panic
    } else if ended {
        BootStatus::Ok
    } else if timed_out {
        BootStatus::Timeout
    } else if bodies.is_empty() {
        BootStatus::NoHarness
    } else {
        BootStatus::Incomplete
    };
    if boot.status != BootStatus::Ok {
        // From the first sign of trouble (or the last lines) on.
        let start = lines.iter().position(|l| TROUBLE.iter().any(|t| l.contains(t)));
        boot.excerpt = match start {
            Some(s) => lines[s..].iter().take(40).map(|l| strip_time(l)).collect(),
            None => {
                let mut tail: Vec<String> = lines
                    .iter()
                    .rev()
                    .filter(|l| !l.trim().is_empty())
                    .take(15)
                    .map(|l| strip_time(l))
                    .collect();
                tail.reverse();
                tail
            }
        };
    }
    boot
}

/// `[    1.234567] foo` -> `foo`; lines kept short for the report.
fn strip_time(l: &str) -> String {
    let s = match (printk_at(l), l.find("] ")) {
        (Some(0), Some(e)) => &l[e + 2..],
        _ => l,
    };
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(body: &str) -> String {
        let mut h = flate2::Crc::new();
        h.update(body.as_bytes());
        format!("{body} crc={:08x}", h.sum())
    }

    #[test]
    fn crc_matches_the_harness() {
        // A line printed by harness/mmharness.c on x86_64.
        assert!(crc_ok("MMEVAL end results=1 failures=0 crc=98cb5997").is_some());
        assert!(crc_ok("MMEVAL end results=2 failures=0 crc=98cb5997").is_none());
    }

    #[test]
    fn a_kernel_message_inside_a_line_is_stitched_out() {
        let full = line("MMEVAL result id=a workload=toggle metric=ns_per_call unit=ns median=5 min=4 max=6 reps=3 pages=1 iterations=3 total_ns=15 threads=1 samples=4,5,6");
        let (a, b) = full.split_at(40);
        let log = format!(
            "{}\n{a}[    3.141592] random: crng init done\n{b}\n{}\n",
            line("MMEVAL begin suite=t"),
            line("MMEVAL end results=1 failures=0")
        );
        let boot = parse(&log, false);
        assert_eq!((boot.status, boot.repaired_lines, boot.corrupt_lines), (BootStatus::Ok, 1, 0));
        assert_eq!(boot.results[0].samples, vec![4.0, 5.0, 6.0]);
    }
}
