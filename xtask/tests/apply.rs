//! Applying with git2 against the real `git am -3 --scissors`: same trees, same
//! messages, same authors, for every fixture that applies and every shipped series;
//! and the user's checkout is left exactly as it was.

mod common;

use common::{data, git, toy_repo, TOY_BASE, TOY_BASE0};
use expect_test::expect;
use git2::{Oid, Repository};
use std::io::Write;
use std::path::Path;
use xtask::{apply, input, series};

/// What we compare between the two ways of applying.
#[derive(Debug, PartialEq)]
struct CommitFacts {
    tree: String,
    message: String,
    author: String,
}

fn facts(repo: &Repository, id: Oid) -> CommitFacts {
    let c = repo.find_commit(id).unwrap();
    let a = c.author();
    CommitFacts {
        tree: c.tree_id().to_string(),
        message: c.message().unwrap().to_string(),
        author: format!(
            "{} <{}> {} {}",
            a.name().unwrap(),
            a.email().unwrap(),
            a.when().seconds(),
            a.when().offset_minutes()
        ),
    }
}

/// The chosen patches' raw messages, as an mboxrd file for `git am`.
fn mbox_for_git_am(path: &Path, s: &series::Series, out: &Path) {
    let raw = input::read_raw_messages(path).unwrap();
    let mut f = std::fs::File::create(out).unwrap();
    for p in &s.patches {
        writeln!(f, "From mboxrd@z Thu Jan  1 00:00:00 1970").unwrap();
        for line in raw[p.mail_index].split_inclusive(|&b| b == b'\n') {
            let quotes = line.iter().take_while(|&&b| b == b'>').count();
            if line[quotes..].starts_with(b"From ") {
                f.write_all(b">").unwrap();
            }
            f.write_all(line).unwrap();
        }
        writeln!(f).unwrap();
    }
}

/// Applies `mbox` on `base` in `repo_dir` with our code and, in a clone, with git am;
/// asserts both give the same commits. Returns what we applied.
fn assert_same_as_git_am(
    repo_dir: &Path,
    mbox: &Path,
    choice: series::Choice,
    base: &str,
) -> Vec<apply::AppliedPatch> {
    let repo = Repository::open(repo_dir).unwrap();
    let s = input::read_series(mbox, choice).unwrap();
    let ours =
        apply::apply_series(&repo, &s, Oid::from_str(base).unwrap(), &format!("refs/heads/eval/{}", s.slug))
            .and_then(apply::ApplyOutcome::applied)
            .unwrap_or_else(|e| panic!("{}: {e:#}", mbox.display()));

    let scratch = tempfile::tempdir().unwrap();
    let clone = scratch.path().join("am");
    let src = repo_dir.to_str().unwrap();
    git(scratch.path(), &["clone", "-q", "--shared", "--no-checkout", src, "am"]);
    // Only the files the series touches need to be in the work tree.
    let mut paths: Vec<String> = s
        .patches
        .iter()
        .flat_map(|p| p.mail.diff.as_ref().unwrap().files.iter())
        .flat_map(|f| [f.old_path.clone(), f.new_path.clone()])
        .flatten()
        .filter_map(|p| Path::new(&p).parent().map(|d| format!("/{}/", d.display())))
        .collect();
    paths.sort();
    paths.dedup();
    let mut sparse = vec!["sparse-checkout", "set", "--no-cone"];
    sparse.extend(paths.iter().map(|p| if p == "//" { "/*" } else { p.as_str() }));
    git(&clone, &sparse);
    git(&clone, &["checkout", "-q", "--detach", base]);
    let am_input = scratch.path().join("series.mbox");
    mbox_for_git_am(mbox, &s, &am_input);
    git(&clone, &["am", "-q", "-3", "--scissors", "--patch-format=mboxrd", am_input.to_str().unwrap()]);

    let theirs = Repository::open(&clone).unwrap();
    let mut walk = theirs.revwalk().unwrap();
    walk.push_head().unwrap();
    walk.hide(Oid::from_str(base).unwrap()).unwrap();
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE).unwrap();
    let am_commits: Vec<Oid> = walk.map(|c| c.unwrap()).collect();
    assert_eq!(am_commits.len(), ours.len(), "{}: git am made a different number of commits", mbox.display());
    for (o, t) in ours.iter().zip(&am_commits) {
        assert_eq!(
            facts(&repo, Oid::from_str(&o.commit).unwrap()),
            facts(&theirs, *t),
            "{} patch {} differs from git am",
            mbox.display(),
            o.number
        );
    }
    ours
}

#[test]
fn fixtures_apply_exactly_like_git_am() {
    let tmp = tempfile::tempdir().unwrap();
    toy_repo(tmp.path());
    let default = series::Choice::default();
    let cases: &[(&str, series::Choice, &str)] = &[
        ("good-v2.mbox", default, TOY_BASE),
        ("mixed-v1-v2.mbox", default, TOY_BASE),
        ("mixed-v1-v2.mbox", series::Choice { revision: Some(1), partial: false }, TOY_BASE),
        ("mboxrd.mbox.gz", default, TOY_BASE),
        ("resend.mbox", default, TOY_BASE),
        ("dir", default, TOY_BASE),
        ("encodings.mbox", default, TOY_BASE),
        ("base64.eml", default, TOY_BASE),
        ("in-body-from.mbox", default, TOY_BASE),
        ("hotfix.patch", default, TOY_BASE),
        ("scissors.mbox", default, TOY_BASE),
        ("missing-patch.mbox", series::Choice { revision: None, partial: true }, TOY_BASE),
        ("threeway-latin1.mbox", default, TOY_BASE),
        ("threeway-latin1.mbox", default, TOY_BASE0),
    ];
    for (name, choice, base) in cases {
        let applied = assert_same_as_git_am(tmp.path(), &data(&format!("series/{name}")), *choice, base);
        let three_way = applied.iter().any(|p| p.three_way);
        // Only the patch made on the older base needs the three-way fallback.
        assert_eq!(three_way, *name == "threeway-latin1.mbox" && *base == TOY_BASE, "{name} on {base}");
    }
}

#[test]
fn shipped_series_apply_exactly_like_git_am() {
    let tree = xtask::reftree::provision(None).expect("the reference tree (cargo xtask ref)");
    let mut names: Vec<_> = std::fs::read_dir(xtask::reftree::project_root().join("patches"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "mbox"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    for mbox in names {
        let mb = input::read_mailbox(&mbox).unwrap();
        for &rev in mb.revisions.keys() {
            let choice = series::Choice { revision: Some(rev), partial: false };
            let s = input::read_series(&mbox, choice).unwrap();
            assert_eq!(
                s.base_commit.as_deref(),
                Some(tree.commit.as_str()),
                "{} names another base",
                mbox.display()
            );
            let applied = assert_same_as_git_am(&tree.path, &mbox, choice, &tree.commit);
            assert!(applied.iter().all(|p| !p.three_way), "{} v{rev} needed three-way", mbox.display());
        }
    }
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .filter(|e| {
            let p = e.path().strip_prefix(dir).unwrap();
            // Objects, refs and logs are what we write; everything else must not move.
            !(p.starts_with(".git/objects") || p.starts_with(".git/refs") || p.starts_with(".git/logs"))
        })
        .map(|e| {
            (e.path().strip_prefix(dir).unwrap().display().to_string(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_users_checkout_is_never_touched() {
    let tmp = tempfile::tempdir().unwrap();
    toy_repo(tmp.path());
    // A user mid-work: a staged change, an unstaged change, an untracked file.
    std::fs::write(tmp.path().join("Documentation/toy.rst"), "staged\n").unwrap();
    git(tmp.path(), &["add", "Documentation/toy.rst"]);
    std::fs::write(tmp.path().join("mm/toy.c"), "unstaged\n").unwrap();
    std::fs::write(tmp.path().join("notes.txt"), "untracked\n").unwrap();
    let before = snapshot(tmp.path());
    let head_before = git(tmp.path(), &["rev-parse", "HEAD"]);

    let s = input::read_series(&data("series/good-v2.mbox"), series::Choice::default()).unwrap();
    let applied = apply::apply_to_repo(tmp.path(), &s, None).unwrap().applied().unwrap();

    assert_eq!(snapshot(tmp.path()), before, "HEAD, index, config or work tree changed");
    assert_eq!(git(tmp.path(), &["rev-parse", "HEAD"]), head_before);
    assert_eq!(git(tmp.path(), &["symbolic-ref", "HEAD"]).trim(), "refs/heads/main");
    assert_eq!(applied.base, TOY_BASE);
    assert_eq!(applied.base_source, "the series' base-commit");
    assert_eq!(git(tmp.path(), &["rev-parse", &applied.refname]).trim(), applied.tip);
    // Deterministic: the same series on the same base gives the same commits.
    let again = apply::apply_to_repo(tmp.path(), &s, None).unwrap().applied().unwrap();
    assert_eq!(again.tip, applied.tip);
}

#[test]
fn a_patch_that_does_not_apply_names_patch_file_and_hunk() {
    let tmp = tempfile::tempdir().unwrap();
    toy_repo(tmp.path());
    let s = input::read_series(&data("series/does-not-apply.mbox"), series::Choice::default()).unwrap();
    let failure = match apply::apply_to_repo(tmp.path(), &s, None).unwrap() {
        apply::ApplyOutcome::Failed(f) => f,
        apply::ApplyOutcome::Applied(a) => panic!("it applied: {}", a.tip),
    };
    assert_eq!((failure.number, failure.file.as_deref()), (1, Some("mm/toy.c")));
    expect![[r#"patch 1/1 "toy: count present entries as booleans" does not apply: mm/toy.c, hunk #1 `@@ -32,7 +32,7 @@ long toy_count_present(const struct toy_pte *pte, long nr)` (patch failed: mm/toy.c:32; three-way: the preimage blob 1234567 of mm/toy.c is not in this repository)"#]]
        .assert_eq(&failure.to_string());
    assert!(git(tmp.path(), &["for-each-ref", "refs/heads/eval"]).is_empty(), "a ref was written");
}

#[test]
fn escaping_paths_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    toy_repo(tmp.path());
    let objects = || git(tmp.path(), &["count-objects", "-v"]);
    let before = objects();
    for name in ["escape-dotdot.mbox", "escape-absolute.mbox", "escape-dotgit.mbox"] {
        let err =
            input::read_series(&data(&format!("series/{name}")), series::Choice::default()).unwrap_err();
        assert!(format!("{err:#}").contains("refusing the series, nothing was written"), "{err:#}");
    }
    assert_eq!(objects(), before);
}

#[test]
fn base_is_flag_then_base_commit_then_head() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = toy_repo(tmp.path());
    let s = input::read_series(&data("series/threeway-latin1.mbox"), series::Choice::default()).unwrap();
    let (b, how) = apply::resolve_base(&repo, None, &s).unwrap();
    assert_eq!((b.to_string().as_str(), how.as_str()), (TOY_BASE0, "the series' base-commit"));
    let (b, how) = apply::resolve_base(&repo, Some("main"), &s).unwrap();
    assert_eq!((b.to_string().as_str(), how.as_str()), (TOY_BASE, "--base main"));
    let mut s2 = s.clone();
    s2.base_commit = Some("deadbeefdeadbeef".into());
    let (b, how) = apply::resolve_base(&repo, None, &s2).unwrap();
    assert_eq!(b.to_string(), TOY_BASE);
    assert_eq!(how, "HEAD (the series' base-commit deadbeefdeadbeef is not in this tree)");
    let err = apply::resolve_base(&repo, Some("no-such-branch"), &s).unwrap_err();
    assert!(err.to_string().starts_with("--base no-such-branch: not a commit in"), "{err}");
}

#[test]
fn refs_that_are_not_ours_are_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    toy_repo(tmp.path());
    let s = input::read_series(&data("series/good-v2.mbox"), series::Choice::default()).unwrap();
    let name = format!("eval/{}", s.slug);
    // The user's own branch of that name.
    git(tmp.path(), &["branch", &name, "main"]);
    let err = apply::apply_to_repo(tmp.path(), &s, None).unwrap_err();
    assert!(err.to_string().contains("was not made by this tool"), "{err}");
    assert_eq!(git(tmp.path(), &["rev-parse", &name]).trim(), TOY_BASE);
    // Checked out in a linked worktree: git refuses to move it, and so do we.
    git(tmp.path(), &["branch", "-D", &name]);
    let wt = tempfile::tempdir().unwrap();
    let wt_path = wt.path().join("wt");
    git(tmp.path(), &["branch", "eval-wt-probe", "main"]);
    let ours = apply::apply_to_repo(tmp.path(), &s, None).unwrap().applied().unwrap();
    git(
        tmp.path(),
        &["worktree", "add", "-q", wt_path.to_str().unwrap(), &ours.refname["refs/heads/".len()..]],
    );
    let err = apply::apply_to_repo(tmp.path(), &s, Some("main")).unwrap_err();
    assert!(err.to_string().contains("is checked out in the worktree"), "{err}");
    assert_eq!(git(&wt_path, &["rev-parse", "HEAD"]).trim(), ours.tip, "the worktree moved");
    git(tmp.path(), &["worktree", "remove", "--force", wt_path.to_str().unwrap()]);
    git(tmp.path(), &["branch", "-D", "eval-wt-probe"]);
    git(tmp.path(), &["branch", "-D", &ours.refname["refs/heads/".len()..]]);
    git(tmp.path(), &["branch", &name, "main"]);
    // Checked out: moving it would move the user's HEAD.
    git(tmp.path(), &["branch", "-D", &name]);
    git(tmp.path(), &["symbolic-ref", "HEAD", &format!("refs/heads/{name}")]);
    let err = apply::apply_to_repo(tmp.path(), &s, Some("main")).unwrap_err();
    assert!(err.to_string().contains("is checked out"), "{err}");
}

#[test]
fn a_ref_another_run_is_writing_is_waited_for() {
    // Two evaluations of one series (another --out, another --arch) write the same
    // ref; git's lock file of the other one is there for a moment.
    let tmp = tempfile::tempdir().unwrap();
    toy_repo(tmp.path());
    let s = input::read_series(&data("series/good-v2.mbox"), series::Choice::default()).unwrap();
    let lock = tmp.path().join(format!(".git/refs/heads/eval/{}.lock", s.slug));
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(&lock, "").unwrap();
    let held = lock.clone();
    let other = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(500));
        std::fs::remove_file(held).unwrap();
    });
    let applied = apply::apply_to_repo(tmp.path(), &s, None).unwrap().applied().unwrap();
    other.join().unwrap();
    assert_eq!(git(tmp.path(), &["rev-parse", &applied.refname]).trim(), applied.tip);
}
