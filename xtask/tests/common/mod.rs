//! Shared by the integration tests: the toy repository the fixtures were made on.
#![allow(dead_code)]

use git2::{Oid, Repository, Signature, Time};
use std::path::{Path, PathBuf};

/// The commits `tests/data/make-fixtures.sh` builds; the fixtures' base-commit lines
/// and index lines name them.
pub const TOY_BASE0: &str = "1ca134691062662a7b7c72cf7eb038d9f042ed0a";
pub const TOY_BASE: &str = "a25fba884a92e8ac95610ea6433bd01b019158ef";

pub fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)
}

fn commit_all(repo: &Repository, when: i64, message: &str) -> Oid {
    let mut index = repo.index().unwrap();
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = Signature::new("Toy Maintainer", "toy@example.org", &Time::new(when, 0)).unwrap();
    let parent = repo.head().ok().map(|h| h.peel_to_commit().unwrap());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, &format!("{message}\n"), &tree, &parents).unwrap()
}

/// A checkout of the toy tree at TOY_BASE (with TOY_BASE0 as its parent) in `dir`.
pub fn toy_repo(dir: &Path) -> Repository {
    let repo =
        git2::Repository::init_opts(dir, git2::RepositoryInitOptions::new().initial_head("main")).unwrap();
    let base = data("base");
    for e in
        walkdir::WalkDir::new(&base).into_iter().filter_map(|e| e.ok()).filter(|e| e.file_type().is_file())
    {
        let dest = dir.join(e.path().strip_prefix(&base).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(e.path(), &dest).unwrap();
    }
    let base0 = commit_all(&repo, 1700000000, "toy: initial");
    let toy = dir.join("mm/toy.c");
    let text = std::fs::read_to_string(&toy).unwrap().replace("old_name", "nr_hint");
    std::fs::write(&toy, text).unwrap();
    let base = commit_all(&repo, 1700000100, "toy: rename old_name to nr_hint");
    assert_eq!((base0.to_string().as_str(), base.to_string().as_str()), (TOY_BASE0, TOY_BASE));
    repo
}

/// Runs git with a fixed identity; panics with its stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.org")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.org")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
