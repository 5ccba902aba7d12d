//! The harness for real: the initramfs read back by the system's cpio, the static
//! binary per architecture, a run on this host's kernel, and QEMU boots of the quick
//! suite on the reference kernels of every architecture.

mod common;

use std::process::Command;
use xtask::{arch, build, cpio, harness, qemu, reftree, serial, suite, tree};

#[test]
fn the_initramfs_reads_back_with_cpio() {
    let s = suite::load("quick").unwrap();
    let archive = cpio::initramfs(b"#!/bin/false\n".to_vec(), &suite::to_text(&s));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("initrd.cpio");
    std::fs::write(&file, &archive).unwrap();
    let list =
        Command::new("sh").arg("-c").arg(format!("cpio -it --quiet < {}", file.display())).output().unwrap();
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    assert_eq!(
        String::from_utf8_lossy(&list.stdout),
        "dev\ndev/console\ndev/null\ndev/zero\nproc\nsys\ntmp\ninit\nsuite.txt\n"
    );
    let verbose =
        Command::new("sh").arg("-c").arg(format!("cpio -itv --quiet < {}", file.display())).output().unwrap();
    let v = String::from_utf8_lossy(&verbose.stdout);
    assert!(
        v.lines().any(|l| l.starts_with("crw-------") && l.contains("5,") && l.ends_with("dev/console")),
        "{v}"
    );
    assert!(v.lines().any(|l| l.starts_with("-rwxr-xr-x") && l.ends_with("init")), "{v}");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("cpio -i --quiet --to-stdout suite.txt < {}", file.display()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), suite::to_text(&s));
}

#[test]
fn the_harness_is_a_static_binary_for_every_arch() {
    // ELF e_machine: x86-64 62, AArch64 183, PowerPC64 21; little-endian; no interpreter.
    for (name, machine) in [("x86_64", 62u16), ("arm64", 183), ("ppc64le", 21)] {
        let a = &arch::parse_list(name).unwrap()[0];
        let bin = std::fs::read(harness::build_harness(a).unwrap()).unwrap();
        assert_eq!(&bin[..4], b"\x7fELF", "{name}");
        assert_eq!(bin[5], 1, "{name} is not little-endian");
        assert_eq!(u16::from_le_bytes([bin[18], bin[19]]), machine, "{name}");
        assert!(!bin.windows(12).any(|w| w == b"/lib64/ld-li" || w == b"/lib/ld-linu"), "{name} is dynamic");
    }
}

#[test]
fn the_quick_suite_runs_on_this_hosts_kernel() {
    let me = arch::table().unwrap().host().expect("this host's architecture is in the table");
    let dir = tempfile::tempdir().unwrap();
    let s = suite::load("quick").unwrap();
    let log = dir.path().join("metal.log");
    let (boot, seconds) = xtask::metal::run_harness(
        &xtask::metal::Target::Local,
        &harness::build_harness(me).unwrap(),
        &s,
        &log,
    )
    .unwrap();
    let r = xtask::backend::machine::record(boot, seconds, &log, None, &me.name);
    assert_eq!(r.boot.status, serial::BootStatus::Ok, "{:#?}", r.boot);
    assert_eq!(r.provenance.accel, xtask::model::Accel::Metal);
    assert_eq!(r.provenance.arch, me.name);
    assert!(!r.provenance.cpu_model.is_empty() && !r.provenance.kernel.is_empty());
    // Every run either measured or said why not (large folios need root).
    assert_eq!(r.boot.results.len() + r.boot.failures.len(), s.runs.len());
    assert!(r.boot.results.iter().any(|x| x.id == "toggle/anon/small/400K" && x.median > 0.0));
}

#[test]
fn the_quick_suite_boots_on_every_arch_under_qemu() {
    let t = tree::resolve(None, None).unwrap();
    let commit = reftree::provision(None).unwrap().commit;
    let s = suite::load("quick").unwrap();
    let out = tempfile::tempdir().unwrap();
    for a in arch::parse_list("all").unwrap() {
        build::check_qemu(&a).unwrap();
        let k = build::build(&t, &commit, &a, &build::BuildOptions::default(), "baseline")
            .unwrap()
            .artifacts()
            .unwrap();
        let initrd = harness::initramfs(&a, &s).unwrap();
        for clock in [qemu::Clock::Wall, qemu::Clock::Instructions] {
            let b = xtask::backend::qemu::QemuBoot {
                arch: &a,
                kernel: &k.image,
                kernel_release: "",
                initrd: &initrd,
                cpus: 2,
                mem_mib: 1024,
                accel: qemu::Virt::Tcg,
                clock,
                deadline: std::time::Duration::from_secs(s.deadline_s),
                round: 0,
            };
            let r =
                xtask::backend::qemu::qemu_boot(&b, &out.path().join(format!("{}-{clock:?}.log", a.name)))
                    .unwrap();
            assert_eq!(r.boot.status, serial::BootStatus::Ok, "{} {clock:?}: {:#?}", a.name, r.boot.excerpt);
            assert!(r.boot.failures.is_empty(), "{} {clock:?}: {:?}", a.name, r.boot.failures);
            assert_eq!(r.boot.results.len(), s.runs.len(), "{} {clock:?}", a.name);
            let env = r.boot.env.as_ref().unwrap();
            assert!(env.kernel.starts_with("7.2.13"), "{}", env.kernel);
            assert_eq!(env.cpus, 2);
            assert_eq!((r.provenance.accel, r.provenance.vcpus), (xtask::model::Accel::Tcg, 2));
            assert_eq!(r.provenance.clock, clock);
        }
    }
}

#[test]
fn a_console_that_writes_too_much_is_stopped_at_the_cap() {
    let t = tree::resolve(None, None).unwrap();
    let commit = reftree::provision(None).unwrap().commit;
    let a = &arch::parse_list("x86_64").unwrap()[0];
    let k = build::build(&t, &commit, a, &build::BuildOptions::default(), "baseline")
        .unwrap()
        .artifacts()
        .unwrap();
    let s = suite::load("quick").unwrap();
    let spec = qemu::BootSpec {
        arch: a.clone(),
        kernel: k.image.clone(),
        initrd: Some(harness::initramfs(a, &s).unwrap()),
        cpus: 1,
        mem_mib: 512,
        accel: qemu::Virt::Tcg,
        clock: qemu::Clock::Wall,
        append: vec![],
        sandbox: false,
        round: 0,
    };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serial.log");
    // A real boot writes far more than 4 KiB to its console.
    let r = qemu::run_capped(&spec, &log, std::time::Duration::from_secs(120), 4096).unwrap();
    assert!(r.flooded && !r.timed_out, "{r:?}");
    assert!(std::fs::metadata(&log).unwrap().len() <= 4096);
}

#[test]
fn a_killed_run_takes_its_qemu_with_it() {
    use std::process::{Command, Stdio};
    let out = tempfile::tempdir().unwrap();
    let mut run = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "run", "--arch", "x86_64", "--suite", "quick", "--clock", "wall", "--boots", "3", "--accel",
            "tcg",
        ])
        .arg("--out")
        .arg(out.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for its QEMU (a child of the run), then kill the run as a crash would.
    let children = |pid: u32| -> Vec<u32> {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/stat"))
                    .ok()
                    .and_then(|s| {
                        s.rsplit_once(") ").map(|(_, r)| r.split(' ').nth(1) == Some(&pid.to_string()))
                    })
                    .unwrap_or(false)
            })
            .collect()
    };
    let is_qemu = |p: u32| {
        std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.starts_with("qemu-system"))
    };
    let started = std::time::Instant::now();
    let qemu = loop {
        if let Some(q) = children(run.id()).into_iter().find(|&p| is_qemu(p)) {
            break q;
        }
        assert!(started.elapsed().as_secs() < 300, "no QEMU appeared");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    run.kill().unwrap();
    run.wait().unwrap();
    // A boot takes seconds; an orphaned QEMU would still be running well after this.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let state = std::fs::read_to_string(format!("/proc/{qemu}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.chars().next().unwrap_or('?')));
    assert!(
        !is_qemu(qemu) || matches!(state, None | Some('Z') | Some('X')),
        "QEMU {qemu} outlived the killed run (state {state:?})"
    );
}
