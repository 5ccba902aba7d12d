//! The lab's job definitions per device type (goldens) and its answers, recorded from a
//! real lava-server 2023.01 (tests/data/lava/): Complete, a kernel panic, a job that
//! never booted, Canceled, and a log cut mid-entry.

use super::*;
use crate::serial::BootStatus;
use expect_test::expect;

fn data(name: &str) -> String {
    let p = crate::reftree::project_root().join("xtask/tests/data/lava").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn spec<'a>(arch: &'a Arch, device_type: &'a str, clock: Clock) -> JobSpec<'a> {
    JobSpec {
        name: format!("mmeval {} patched 2cpu {clock} rep 3 0123456789ab", arch.name),
        device_type,
        arch,
        kernel_url: "file:///srv/mmeval/lava-files/aaaa-Image".into(),
        initrd_url: "http://192.0.2.10:8080/bbbb-initrd.cpio".into(),
        cmdline: format!("console={} panic=-1 oops=panic", arch.console),
        cpus: 2,
        mem_mib: 1024,
        clock,
        deadline_s: 300,
        round: 2,
    }
}

/// One golden per device type: QEMU (each clock), and a board.
#[test]
fn job_definitions() {
    let table = crate::arch::table().unwrap();
    let x86 = table.get("x86_64").unwrap();
    let arm = table.get("arm64").unwrap();
    let pretty = |j: &JobSpec| serde_json::to_string_pretty(&definition(j)).unwrap();
    expect![[r#"
        {
          "actions": [
            {
              "deploy": {
                "images": {
                  "initrd": {
                    "image_arg": "-initrd {initrd}",
                    "url": "http://192.0.2.10:8080/bbbb-initrd.cpio"
                  },
                  "kernel": {
                    "image_arg": "-kernel {kernel} -append \"console=ttyS0 panic=-1 oops=panic\"",
                    "url": "file:///srv/mmeval/lava-files/aaaa-Image"
                  }
                },
                "timeout": {
                  "minutes": 5
                },
                "to": "tmpfs"
              }
            },
            {
              "boot": {
                "media": "tmpfs",
                "method": "qemu",
                "timeout": {
                  "minutes": 2
                }
              }
            },
            {
              "test": {
                "monitors": [
                  {
                    "end": "MMEVAL end results=",
                    "name": "mmeval",
                    "pattern": "MMEVAL lava-unused (?P<test_case_id>\\S+) (?P<result>pass|fail) ",
                    "start": "MMEVAL begin"
                  }
                ],
                "timeout": {
                  "seconds": 360
                }
              }
            }
          ],
          "context": {
            "arch": "amd64",
            "extra_options": [
              "-machine q35",
              "-cpu max",
              "-smp 2",
              "-no-reboot",
              "-icount shift=0,sleep=off",
              "-seed 3",
              "-rtc base=2026-01-01T00:00:00,clock=vm"
            ],
            "memory": 1024,
            "no_kvm": true
          },
          "device_type": "qemu",
          "job_name": "mmeval x86_64 patched 2cpu instructions rep 3 0123456789ab",
          "priority": "medium",
          "timeouts": {
            "connection": {
              "minutes": 2
            },
            "job": {
              "seconds": 960
            }
          },
          "visibility": "public"
        }"#]]
    .assert_eq(&pretty(&spec(x86, "qemu", Clock::Instructions)));
    // Wall clock: no -icount, and KVM when the device has it.
    let wall = definition(&spec(arm, "qemu", Clock::Wall));
    expect![[
        r#"{"arch":"arm64","extra_options":["-machine virt","-cpu max","-smp 2","-no-reboot"],"memory":1024}"#
    ]]
    .assert_eq(&wall["context"].to_string());
    expect![[r#"
        {
          "actions": [
            {
              "deploy": {
                "kernel": {
                  "type": "image",
                  "url": "file:///srv/mmeval/lava-files/aaaa-Image"
                },
                "ramdisk": {
                  "add_header": "u-boot",
                  "url": "http://192.0.2.10:8080/bbbb-initrd.cpio"
                },
                "timeout": {
                  "minutes": 5
                },
                "to": "tftp"
              }
            },
            {
              "boot": {
                "commands": "ramdisk",
                "method": "u-boot",
                "prompts": [
                  "MMEVAL begin"
                ],
                "timeout": {
                  "minutes": 5
                }
              }
            },
            {
              "test": {
                "monitors": [
                  {
                    "end": "MMEVAL end results=",
                    "name": "mmeval",
                    "pattern": "MMEVAL lava-unused (?P<test_case_id>\\S+) (?P<result>pass|fail) ",
                    "start": "MMEVAL begin"
                  }
                ],
                "timeout": {
                  "seconds": 360
                }
              }
            }
          ],
          "device_type": "bcm2711-rpi-4-b",
          "job_name": "mmeval arm64 patched 2cpu wall rep 3 0123456789ab",
          "priority": "medium",
          "timeouts": {
            "connection": {
              "minutes": 2
            },
            "job": {
              "seconds": 960
            }
          },
          "visibility": "public"
        }"#]]
    .assert_eq(&pretty(&spec(arm, "bcm2711-rpi-4-b", Clock::Wall)));
}

/// A recorded Complete job (instruction clock, round 2): the console is the serial
/// log, judged by our parser.
#[test]
fn a_complete_job() {
    let state = JobState::parse(data("complete.job.json").as_bytes()).unwrap();
    assert!(state.finished());
    assert_eq!((state.health.as_str(), state.actual_device.as_deref()), ("Complete", Some("qemu02")));
    let log = JobLog::parse(&data("complete.log.yaml")).unwrap();
    assert!(log.errors.is_empty(), "{:?}", log.errors);
    let command = log.command.as_deref().unwrap();
    assert!(command.starts_with("/usr/bin/qemu-system-x86_64 -nodefaults"), "{command}");
    assert!(command.contains("-icount shift=0,sleep=off -seed 2 "), "{command}");
    assert!(!log.used_kvm());
    assert_eq!(log.qemu.as_deref(), Some("qemu-system-x86 1:7.2+dfsg-7+deb12u18+b3"));
    // Whole lines, as QEMU wrote them: every harness line's CRC holds.
    let boot = judge(state.id, &state.health, &log);
    assert_eq!(boot.status, BootStatus::Ok, "{:?}", boot.excerpt);
    assert_eq!(boot.results.len(), 8);
    assert_eq!(boot.corrupt_lines, 0);
    assert!(log.console.starts_with("[    0.000000] Linux version 7.2.13+"), "{:.80}", log.console);
}

/// A kernel that panicked: LAVA calls it an infrastructure error; we call it a panic.
#[test]
fn an_incomplete_job_whose_kernel_panicked() {
    let state = JobState::parse(data("panic.job.json").as_bytes()).unwrap();
    let log = JobLog::parse(&data("panic.log.yaml")).unwrap();
    let boot = judge(state.id, &state.health, &log);
    assert_eq!(state.health, "Incomplete");
    assert_eq!(boot.status, BootStatus::Panic, "{:?}", boot.excerpt);
    assert_eq!(boot.excerpt[0], "LAVA job 5 Incomplete: Infrastructure: Connection closed");
    assert!(boot.excerpt.iter().any(|l| l.contains("Kernel panic")), "{:?}", boot.excerpt);
}

/// A job that never booted (its kernel URL was wrong): LAVA's reason, no console.
#[test]
fn an_incomplete_job_that_never_booted() {
    let state = JobState::parse(data("missing-kernel.job.json").as_bytes()).unwrap();
    let log = JobLog::parse(&data("missing-kernel.log.yaml")).unwrap();
    assert_eq!(log.console, "");
    let boot = judge(state.id, &state.health, &log);
    assert_eq!(boot.status, BootStatus::NoHarness);
    assert!(
        boot.excerpt[0].starts_with("LAVA job 6 Incomplete: Job: Invalid job data: [\"Image file '/nonexistent/bzImage' does not exist"),
        "{:?}",
        boot.excerpt
    );
}

/// Canceled while the harness ran: a failed boot, however far it got.
#[test]
fn a_canceled_job() {
    let state = JobState::parse(data("canceled.job.json").as_bytes()).unwrap();
    let log = JobLog::parse(&data("canceled.log.yaml")).unwrap();
    let boot = judge(state.id, &state.health, &log);
    assert_eq!(state.health, "Canceled");
    assert_ne!(boot.status, BootStatus::Ok);
    assert_eq!(boot.excerpt[0], "LAVA job 7 Canceled: Canceled: The job was canceled");
}

/// A log cut in the middle of an entry (a job still writing it): the entries before
/// the cut are read, and the console is a prefix of the whole one.
#[test]
fn a_log_cut_mid_line() {
    let whole = data("complete.log.yaml");
    let full = JobLog::parse(&whole).unwrap();
    let results = whole.find("MMEVAL result").unwrap();
    let cut = &whole[..results + 40];
    let log = JobLog::parse(cut).unwrap();
    assert!(full.console.starts_with(&log.console));
    assert!(log.console.len() < full.console.len());
    let boot = judge(3, "Complete", &log);
    assert_ne!(boot.status, BootStatus::Ok);
    assert!(boot.results.len() < 8);
    assert!(JobLog::parse("not: [a log").is_err());
}

#[test]
fn urls_tokens_and_serving_are_checked() {
    assert_eq!(base_url("http://lab:8000").unwrap(), "http://lab:8000/");
    assert_eq!(base_url("https://lab.example.org/").unwrap(), "https://lab.example.org/");
    for bad in ["lab:8000", "ftp://lab", "http://lab\"x", "http://a b", "http://lab\n"] {
        assert!(base_url(bad).is_err(), "{bad:?}");
    }
    assert!(Lab::new("http://lab", "abc123").is_ok());
    for bad in ["", "a b", "tok\"en", "x\nheader = \"evil\""] {
        assert!(Lab::new("http://lab", bad).is_err(), "{bad:?}");
    }
    assert_eq!(Serve::parse(None, None).unwrap(), Serve::File);
    assert_eq!(Serve::parse(Some("192.0.2.10:8080"), None).unwrap(), Serve::Http("192.0.2.10:8080".into()));
    assert!(Serve::parse(Some("nohost"), None).is_err());
    assert!(Serve::parse(Some("h:1"), Some("/d=http://x/")).is_err());
    assert_eq!(
        Serve::parse(None, Some("/srv/www=http://lab/files")).unwrap(),
        Serve::Upload { dir: "/srv/www".into(), url: "http://lab/files/".into() }
    );
    assert!(Serve::parse(None, Some("/srv/www")).is_err());
}
