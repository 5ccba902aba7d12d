//! Reference trees from a release tarball: checksum verified, imported as one
//! reproducible commit (the same bytes give the same commit id anywhere).

use xtask::reftree::{self, TarballSource};

fn tarball(dir: &std::path::Path) -> std::path::PathBuf {
    let tree = dir.join("linux-9.9.9");
    std::fs::create_dir_all(tree.join("mm")).unwrap();
    std::fs::write(tree.join("Makefile"), "VERSION = 9\nPATCHLEVEL = 9\nSUBLEVEL = 9\n").unwrap();
    std::fs::write(tree.join("mm/mprotect.c"), "// toy\n").unwrap();
    std::fs::write(tree.join(".gitignore"), "*.c\n").unwrap();
    let out = dir.join("linux-9.9.9.tar.xz");
    let ok = std::process::Command::new("tar")
        .args(["--sort=name", "--mtime=@0", "--owner=0", "--group=0", "-cJf"])
        .arg(&out)
        .arg("-C")
        .arg(dir)
        .arg("linux-9.9.9")
        .status()
        .unwrap();
    assert!(ok.success());
    out
}

fn sha256(p: &std::path::Path) -> String {
    let out = std::process::Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split(' ').next().unwrap().to_string()
}

#[test]
fn a_tarball_is_verified_and_imported_reproducibly() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    // The cache is per process: point it at a scratch directory for this test binary.
    std::env::set_var("MMEVAL_CACHE", cache.path());
    let t = tarball(dir.path());
    let good = TarballSource { url: format!("file://{}", t.display()), sha256: sha256(&t) };

    let bad = TarballSource { url: good.url.clone(), sha256: "0".repeat(64) };
    let err = reftree::fetch_tarball(&bad, &dir.path().join("bad.tar")).unwrap_err();
    assert!(err.to_string().contains("has the wrong SHA-256"), "{err}");

    let mut ids = Vec::new();
    for i in 0..2 {
        let file = reftree::fetch_tarball(&good, &dir.path().join(format!("dl{i}.tar"))).unwrap();
        let dest = cache.path().join(format!("trees/t{i}"));
        let r = reftree::import_tarball(
            "t",
            &file,
            "Linux 9.9.9 (linux-9.9.9.tar.xz)",
            "2026-10-28T15:01:00+0000",
            &dest,
        )
        .unwrap();
        let repo = git2::Repository::open(&r.path).unwrap();
        let head = repo.head().unwrap().peel_to_commit().unwrap();
        // Everything the tarball ships, .gitignore'd files included.
        assert!(head.tree().unwrap().get_path(std::path::Path::new("mm/mprotect.c")).is_ok());
        assert_eq!(head.author().name(), Ok("mmeval"));
        ids.push(r.commit);
    }
    assert_eq!(ids[0], ids[1], "the same tarball gave two commit ids");
}
