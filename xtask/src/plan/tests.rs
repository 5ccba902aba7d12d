//! The plan's rules: the order of boots, machines, resume, the key.
use super::*;
use crate::model::Accel;
use crate::record::{BootRecord, Provenance};

fn spec(arches: &[&str], cpus: &[u32], clocks: &[Clock], reps: usize) -> Spec {
    let table = crate::arch::table().unwrap();
    Spec {
        arches: arches.iter().map(|a| table.get(a).unwrap().clone()).collect(),
        cpus: cpus.to_vec(),
        reps,
        auto_reps: false,
        suite: Suite { name: "quick".into(), description: String::new(), deadline_s: 60, runs: vec![] },
        clocks: clocks.to_vec(),
        accel: AccelChoice::Auto,
        mem_mib: 1024,
        build: BuildOptions::default(),
        from: None,
        out_root: PathBuf::from("/nonexistent"),
        fresh: false,
        wait: false,
        boot_jobs: 1,
        target: None,
        cpus_given: false,
        boot_timeout: Duration::from_secs(600),
        lab: None,
    }
}

fn kernels(names: &[&str]) -> Vec<Kernel> {
    let tree = TreeHandle { repo_path: "/t".into(), key: "t".into(), label: "tree".into() };
    names
        .iter()
        .enumerate()
        .map(|(i, n)| Kernel {
            variant: (*n).into(),
            tree: tree.clone(),
            commit: format!("{i:040}"),
            release: None,
        })
        .collect()
}

fn ids() -> Ids {
    Ids {
        revision: Some(2),
        stopping: None,
        harness: "h".into(),
        config: "c".into(),
        kvm_arches: vec!["x86_64".into()],
    }
}

fn order(p: &Plan) -> Vec<String> {
    p.boots.iter().map(|b| format!("{}{}", b.key.variant, b.key.rep + 1)).collect()
}

fn stored(b: &BootStep) -> Stored {
    let p = Provenance {
        arch: b.key.arch.clone(),
        accel: Accel::Tcg,
        clock: b.key.clock,
        cpu_model: String::new(),
        vcpus: b.key.cpus,
        kernel: String::new(),
        host: None,
    };
    let boot = crate::serial::parse("", false);
    let record = BootRecord {
        provenance: p,
        boot,
        seconds: 0.0,
        log: "x".into(),
        qemu_exit: None,
        boot_id: None,
        lava: None,
    };
    Stored { variant: b.key.variant.clone(), rep: b.key.rep, record }
}

#[test]
fn two_kernels_alternate_abba() {
    let p = plan(&spec(&["x86_64"], &[1], &[Clock::Wall], 4), kernels(&["baseline", "patched"]), ids());
    assert_eq!(
        order(&p),
        ["baseline1", "patched1", "patched2", "baseline2", "baseline3", "patched3", "patched4", "baseline4"]
    );
    assert_eq!(p.order, Order::Abba);
    assert_eq!(p.expected(), 8);
    assert_eq!(p.builds.len(), 2);
}

#[test]
fn three_kernels_round_robin_reversed_every_round() {
    let p = plan(&spec(&["x86_64"], &[1], &[Clock::Wall], 3), kernels(&["baseline", "v1", "v2"]), ids());
    assert_eq!(order(&p), ["baseline1", "v11", "v21", "v22", "v12", "baseline2", "baseline3", "v13", "v23"]);
    assert_eq!(p.info.order, "round robin, reversed every round");
}

#[test]
fn every_cell_of_a_round_before_the_next_round() {
    let s = spec(&["x86_64", "arm64"], &[1, 2], &[Clock::Wall, Clock::Instructions], 2);
    let p = plan(&s, kernels(&["baseline", "patched"]), ids());
    assert_eq!(p.expected(), 2 * 2 * 2 * 2 * 2);
    // The instruction clock first, side by side; then the wall clock, alone. In each,
    // the first round covers all 4 cells before round 2 begins.
    assert!(p.boots[..16].iter().all(|b| b.key.clock == Clock::Instructions && b.side_by_side));
    assert!(p.boots[16..].iter().all(|b| b.key.clock == Clock::Wall && !b.side_by_side));
    for half in [&p.boots[..16], &p.boots[16..]] {
        assert!(half[..8].iter().all(|b| b.key.rep == 0) && half[8..].iter().all(|b| b.key.rep == 1));
    }
    // Builds variant by variant: the baseline for every arch first.
    let builds: Vec<(usize, &str)> = p.builds.iter().map(|b| (b.kernel, b.arch.as_str())).collect();
    assert_eq!(builds, [(0, "x86_64"), (0, "arm64"), (1, "x86_64"), (1, "arm64")]);
    // The instruction clock never asks for KVM.
    assert!(p
        .boots
        .iter()
        .filter(|b| b.key.clock == Clock::Instructions)
        .all(|b| b.accel == AccelChoice::Tcg));
    // KVM is tried only where it could work at all.
    let wall = |a: &str| {
        p.boots
            .iter()
            .filter(|b| b.key.clock == Clock::Wall && b.key.arch == a)
            .map(|b| b.accel)
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(wall("x86_64"), [AccelChoice::Auto].into());
    assert_eq!(wall("arm64"), [AccelChoice::Tcg].into());
}

#[test]
fn a_real_machine_is_one_cell_of_its_own() {
    let facts = metal::parse_facts(
        "machine=x86_64\nonline=0-7\nuid=0\nkexec=/sbin/kexec\nrelease=6.1.0\nboot_id=b1\ncmdline=root=/dev/vda\n",
    );
    let home = Home {
        target: "ssh:root@box".into(),
        facts: facts.clone(),
        config_source: "/proc/config.gz".into(),
        config: "CONFIG_X=y\n".into(),
        modules: String::new(),
    };
    let m = MachineRun { target: metal::Target::ssh("root@box").unwrap(), home, now: facts };
    let table = crate::arch::table().unwrap();
    let mut s = spec(&["x86_64", "arm64", "ppc64le"], &[1], &[Clock::Wall, Clock::Instructions], 2);
    s.target = Some(m.target.clone());
    let narrowed = narrow(&s, Some(&m), table).unwrap();
    let p = plan(&narrowed, kernels(&["baseline", "patched"]), ids());
    assert_eq!(p.target, Target::Ssh("root@box".into()));
    assert_eq!(order(&p), ["baseline1", "patched1", "patched2", "baseline2"]);
    assert!(p.boots.iter().all(|b| b.key.cpus == 8 && b.key.clock == Clock::Wall && b.key.arch == "x86_64"));
    assert!(p.key.host_config.is_some());
    // What a machine cannot do is refused before anything runs.
    let mut only_icount = s.clone();
    only_icount.clocks = vec![Clock::Instructions];
    let err = |s: &Spec| narrow(s, Some(&m), table).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err(&only_icount).contains("only the wall clock"));
    let mut cpus = s.clone();
    cpus.cpus_given = true;
    assert!(err(&cpus).contains("--cpus is for QEMU"));
    let mut other = s.clone();
    other.arches = vec![table.get("arm64").unwrap().clone()];
    assert!(err(&other).contains("--arch can only be x86_64"));
}

#[test]
fn resume_skips_what_is_done_and_nothing_else() {
    let p = plan(
        &spec(&["x86_64"], &[1], &[Clock::Wall, Clock::Instructions], 3),
        kernels(&["baseline", "patched"]),
        ids(),
    );
    let k = 5;
    let done: Vec<Stored> = p.boots[..k].iter().map(stored).collect();
    let left = p.remaining(&done);
    assert_eq!(left.len(), p.expected() - k);
    assert_eq!(left[0].key, p.boots[k].key);
    // A boot done out of order is skipped where it stands.
    let odd = vec![stored(&p.boots[7])];
    assert!(p.remaining(&odd).iter().all(|b| b.key != p.boots[7].key));
    assert!(done.iter().all(|s| p.wants(s)));
    let text = p.describe(&done);
    assert!(
        text.starts_with(
            "plan: 2 kernels x 1 arch(es) = 2 builds; 12 boots (5 done, 7 to run) on qemu; order ABBA\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("boot    1: x86_64 baseline 1cpu instructions rep 1 (tcg, side by side) done\n"),
        "{text}"
    );
    assert!(
        text.contains("boot    7: x86_64 baseline 1cpu wall rep 1 (kvm if it works, else tcg) to run\n"),
        "{text}"
    );
    let mut two = p;
    two.boot_jobs = 2;
    assert!(two.describe(&done).starts_with("plan: 2 kernels x 1 arch(es) = 2 builds; 12 boots (5 done, 7 to run) on qemu; order ABBA; 6 instruction-clock boots 2 at a time, then the rest alone\n"));
}

#[test]
fn the_key_changes_with_what_the_numbers_depend_on() {
    let s = spec(&["x86_64"], &[1], &[Clock::Wall], 2);
    let a = plan(&s, kernels(&["baseline", "patched"]), ids()).key;
    let mut s2 = s.clone();
    s2.reps = 3;
    assert_ne!(plan(&s2, kernels(&["baseline", "patched"]), ids()).key, a);
    let mut other = kernels(&["baseline", "patched"]);
    other[1].commit = "f".repeat(40);
    assert_ne!(plan(&s, other, ids()).key, a);
    assert_eq!(plan(&s, kernels(&["baseline", "patched"]), ids()).key, a);
}
