//! `cargo xtask eval --host` for real, against a machine that is really reached with
//! ssh and really kexec'ed: a small x86_64 QEMU machine ("the box") with its root on a
//! virtio disk, sshd, kexec-tools and its config in /proc/config.gz. The tool builds
//! baseline and patched kernels from that config, kexecs the box into each in turn,
//! checks each time that the box runs the kernel it was sent, runs the harness there,
//! and brings the box back to its own kernel. (On this CI machine the box is emulated,
//! so its numbers are not the point; the mechanics are.)

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use xtask::{arch, build, host, tree};

/// QEMU, killed when the test ends however it ends.
struct Machine(Child);

impl Drop for Machine {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A program and the shared libraries it needs, copied into `root`.
fn copy_with_libs(prog: &str, root: &Path) {
    let mut files = vec![PathBuf::from(prog)];
    for line in run(Command::new("ldd").arg(prog)).lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next().unwrap_or(""),
            None => line.split_whitespace().next().unwrap_or(""),
        };
        if path.starts_with('/') {
            files.push(PathBuf::from(path));
        }
    }
    for f in files {
        let dest = root.join(f.strip_prefix("/").unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&f, &dest).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
}

fn write(root: &Path, path: &str, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

const RCS: &str = "#!/bin/sh
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
mount -o remount,rw /
mkdir -p /run/sshd
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
/usr/sbin/sshd -e
echo box-ready
";

const SSHD_CONFIG: &str = "Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin yes
PubkeyAuthentication yes
AuthorizedKeysFile /root/.ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
";

/// The box's disk: busybox, sshd and kexec with their libraries, a host key, our key,
/// and its own kernel in /boot (where the tool finds it to go home).
fn make_disk(dir: &Path, kernel: &Path, release: &str, pubkey: &str) -> PathBuf {
    let root = dir.join("root");
    for d in [
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "var/tmp",
        "etc/ssh",
        "root/.ssh",
        "boot",
        "sbin",
        "bin",
        "usr/bin",
        "usr/sbin",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    std::os::unix::fs::symlink("../bin/busybox", root.join("sbin/init")).unwrap();
    copy_with_libs("/usr/sbin/sshd", &root);
    copy_with_libs("/usr/sbin/kexec", &root);
    write(&root, "etc/rcS", RCS, 0o755);
    write(&root, "etc/inittab", "::sysinit:/etc/rcS\n", 0o644);
    write(
        &root,
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nsshd:x:101:65534::/run/sshd:/bin/false\n",
        0o644,
    );
    write(&root, "etc/shadow", "root:*:19000:0:99999:7:::\n", 0o600);
    write(&root, "etc/group", "root:x:0:\nnogroup:x:65534:\n", 0o644);
    write(&root, "etc/ssh/sshd_config", SSHD_CONFIG, 0o644);
    write(&root, "root/.ssh/authorized_keys", pubkey, 0o600);
    let key = root.join("etc/ssh/ssh_host_ed25519_key");
    run(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key));
    std::fs::copy(kernel, root.join(format!("boot/vmlinuz-{release}"))).unwrap();
    let disk = dir.join("disk.img");
    run(Command::new("mkfs.ext4").args(["-q", "-F", "-d"]).arg(&root).arg(&disk).arg("256M"));
    disk
}

/// `uname -r` of an x86 bzImage, from its boot header (the kernel_version field).
fn bzimage_release(image: &Path) -> String {
    let data = std::fs::read(image).unwrap();
    let at = u16::from_le_bytes([data[0x20e], data[0x20f]]) as usize + 0x200;
    let end = data[at..].iter().position(|&b| b == b' ' || b == 0).unwrap();
    String::from_utf8(data[at..at + end].to_vec()).unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn ssh(config: &Path, script: &str) -> Option<String> {
    let o = Command::new("ssh")
        .args(["-F"])
        .arg(config)
        .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "root@box", script])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    o.status.success().then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

#[test]
fn eval_on_a_machine_reached_with_ssh_and_kexec() {
    host::require(&[
        ("busybox", "busybox-static"),
        ("sshd", "openssh-server"),
        ("ssh", "openssh-client"),
        ("kexec", "kexec-tools"),
        ("mkfs.ext4", "e2fsprogs"),
    ])
    .unwrap();
    let x86 = arch::table().unwrap().get("x86_64").unwrap().clone();
    build::check_qemu(&x86).unwrap();

    // The box's own kernel: the reference tree with the box's options.
    let tree = tree::resolve(None, None).unwrap();
    let commit = tree::resolve_commit(&tree, "HEAD").unwrap();
    let fragment = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/box/box.config");
    let opts = build::BuildOptions { extra_fragments: vec![fragment], ..Default::default() };
    let kernel = build::build(&tree, &commit, &x86, &opts, "box").unwrap().artifacts().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id");
    run(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key));
    let pubkey = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let release = bzimage_release(&kernel.image);
    let disk = make_disk(dir.path(), &kernel.image, &release, &pubkey);
    let port = free_port();
    let config = dir.path().join("ssh_config");
    let mut f = std::fs::File::create(&config).unwrap();
    write!(
        f,
        "Host box\n  HostName 127.0.0.1\n  Port {port}\n  User root\n  IdentityFile {}\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n",
        key.display()
    )
    .unwrap();
    drop(f);

    let serial = dir.path().join("serial.log");
    let _box = Machine(
        Command::new(&x86.qemu)
            .args(["-M", "q35", "-cpu", "max", "-m", "1024", "-smp", "2", "-nodefaults", "-display", "none"])
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .arg("-kernel")
            .arg(&kernel.image)
            .args(["-append", "console=ttyS0 root=/dev/vda rw init=/sbin/init"])
            .arg("-drive")
            .arg(format!("file={},if=virtio,format=raw", disk.display()))
            .arg("-netdev")
            .arg(format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22"))
            .args(["-device", "virtio-net-pci,netdev=n0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    let home_boot = loop {
        if let Some(id) = ssh(&config, "cat /proc/sys/kernel/random/boot_id") {
            break id;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the box did not come up: {}",
            std::fs::read_to_string(&serial).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_secs(2));
    };

    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("MMEVAL_SSH_CONFIG", &config)
        .args(["eval", "../patches/mprotect-folio-hint-gate.mbox", "--host", "root@box", "--suite", "quick"])
        .args(["--reps", "2", "--boot-timeout", "180", "--from", "CI Tester <ci@example.org>", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let console = std::fs::read_to_string(&serial).unwrap_or_default();
    assert!(o.status.success(), "eval --host failed:\n{stdout}\n{stderr}\nbox console:\n{console}");

    let shipped = xtask::reftree::project_root().join("patches/mprotect-folio-hint-gate.mbox");
    let dir_out = out.join(xtask::input::read_series(&shipped, Default::default()).unwrap().slug);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir_out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["plan"]["target"], "ssh:root@box");
    assert_eq!(report["plan"]["arches"], serde_json::json!(["x86_64"]));
    assert_eq!(report["plan"]["clocks"], serde_json::json!(["wall"]));
    // Both kernels were built from the box's own config.
    for b in report["builds"].as_array().unwrap() {
        assert_eq!(b["ok"], true);
        let frags = b["fragments"].as_array().unwrap();
        assert!(frags[0].as_str().unwrap().contains("/proc/config.gz"), "{frags:?}");
        assert!(frags.iter().any(|f| f == "metal.config"), "{frags:?}");
    }
    // Four boots, ABBA, every one ok on the box and each a boot of its own.
    let boots = report["boots"].as_array().unwrap();
    assert_eq!(boots.len(), 4, "{stderr}");
    for b in boots {
        assert_eq!(b["status"], "ok", "{b}");
        assert_eq!(b["accel"], "metal");
    }
    let records = std::fs::read_to_string(dir_out.join("records.jsonl")).unwrap();
    let mut ids: Vec<String> = records
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|r| r["record"]["boot_id"].as_str().unwrap().to_string())
        .collect();
    assert!(!ids.contains(&home_boot), "the box's own kernel was measured");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "one sample per boot: {records}");
    let order: Vec<String> = records
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["variant"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(order, ["baseline", "patched", "patched", "baseline"]);
    // Each boot's kernel was the one sent: the console shows the four kexecs.
    assert_eq!(stderr.matches("eval: kexec root@box into").count(), 4, "{stderr}");

    // Kept for a look (and as the source of tests/data/reports/metal-ssh.json).
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("metal-e2e-report.json");
    std::fs::copy(dir_out.join("report.json"), keep).unwrap();

    let mail = std::fs::read_to_string(dir_out.join("reply.eml")).unwrap();
    assert!(mail.contains("x86_64 -- on the machine itself (metal), 2 CPUs, wall clock; 2 boots"), "{mail}");
    assert!(mail.contains("root@box, a virtual machine"), "the machine line names the box:\n{mail}");
    assert!(mail.contains("virtual machine"), "the box is a VM and the mail must say so:\n{mail}");
    assert!(mail.contains("\nTested-by: CI Tester <ci@example.org>\n"), "{mail}");
    assert!(!mail.contains("QEMU TCG (emulated"), "no QEMU guest tables in a --host evaluation:\n{mail}");
    assert!(mail.contains("--host root@box --suite quick --reps 2"), "how to reproduce:\n{mail}");
    assert!(mail.contains("config of root@box (7.2.13+, /proc/config.gz) + metal.config"), "{mail}");

    // The box is home: its own kernel, no test token.
    let cmdline = ssh(&config, "cat /proc/cmdline").expect("the box answers after the evaluation");
    assert!(!cmdline.contains("mmeval.kernel="), "{cmdline}");
    assert!(stdout.contains("4/4 boots ok"), "{stdout}");
}
