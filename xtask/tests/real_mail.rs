//! Mail as it really arrives, against the real tools. Each case builds its own scratch
//! repository, makes the mail with `git format-patch` (or writes it by hand where git
//! cannot make the shape), and asserts that our apply gives the tree, message and author
//! that `git am` (git 2.47) gives on the same file; where b4 decides what a thread means
//! (replies without `Re:`, partial rerolls, follow-up trailers), that what b4 0.16 makes
//! of the same file is what we make of it.

mod common;

use git2::{Oid, Repository};
use std::path::{Path, PathBuf};
use std::process::Command;
use xtask::{apply, input, mail, series};

/// A scratch repository with a fixed identity and clock.
struct Scratch {
    _tmp: tempfile::TempDir,
    path: PathBuf,
    tick: std::cell::Cell<i64>,
}

impl Scratch {
    fn new() -> Scratch {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("repo");
        std::fs::create_dir(&path).unwrap();
        let s = Scratch { _tmp: tmp, path, tick: std::cell::Cell::new(1_760_000_000) };
        s.git(&["init", "-q", "-b", "main"]);
        s
    }

    fn git(&self, args: &[&str]) -> String {
        let out = self.git_raw(args);
        String::from_utf8_lossy(&out).into_owned()
    }

    fn git_raw(&self, args: &[&str]) -> Vec<u8> {
        let t = self.tick.get();
        self.tick.set(t + 60);
        let date = format!("{t} +0100");
        let out = Command::new("git")
            .current_dir(&self.path)
            .args(args)
            .env("GIT_AUTHOR_NAME", "Mira Castellanos")
            .env("GIT_AUTHOR_EMAIL", "mira@example.org")
            .env("GIT_COMMITTER_NAME", "Mira Castellanos")
            .env("GIT_COMMITTER_EMAIL", "mira@example.org")
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    fn write(&self, rel: &str, content: &[u8]) {
        let p = self.path.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"]).trim().to_string()
    }

    /// `git format-patch --stdout` of `range` (plus `args`), as a file next to the repo.
    fn format_patch(&self, name: &str, range: &str, args: &[&str]) -> PathBuf {
        let mut all = vec!["format-patch", "--stdout"];
        all.extend_from_slice(args);
        all.push(range);
        let bytes = self.git_raw(&all);
        self.save(name, &bytes)
    }

    fn save(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path.parent().unwrap().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

fn lines(text: &str) -> String {
    text.lines().map(|l| format!("{l}\n")).collect()
}

/// The raw mails of the chosen patches, for git am (which knows nothing of threads).
fn patches_only(mbox: &Path, s: &series::Series) -> PathBuf {
    let raw = input::read_raw_messages(mbox).unwrap();
    let mut out = Vec::new();
    for p in &s.patches {
        out.extend_from_slice(b"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n");
        out.extend_from_slice(&raw[p.mail_index]);
    }
    let path = mbox.with_extension(format!("patches-v{}", s.version));
    std::fs::write(&path, out).unwrap();
    path
}

/// What we compare between two ways of applying.
#[derive(Debug, PartialEq)]
struct Facts {
    tree: String,
    message: Vec<u8>,
    author: Vec<u8>,
}

fn facts(repo: &Repository, id: Oid) -> Facts {
    let c = repo.find_commit(id).unwrap();
    let a = c.author();
    let mut author = a.name_bytes().to_vec();
    author.extend_from_slice(
        format!(" <{}> {} {}", a.email().unwrap(), a.when().seconds(), a.when().offset_minutes()).as_bytes(),
    );
    Facts { tree: c.tree_id().to_string(), message: c.message_bytes().to_vec(), author }
}

fn ours(
    repo: &Path,
    mbox: &Path,
    format: mail::MboxFormat,
    choice: series::Choice,
    base: &str,
) -> (series::Series, Vec<apply::AppliedPatch>) {
    let s =
        input::read_series_as(mbox, choice, format).unwrap_or_else(|e| panic!("{}: {e:#}", mbox.display()));
    let r = Repository::open(repo).unwrap();
    let applied =
        apply::apply_series(&r, &s, Oid::from_str(base).unwrap(), &format!("refs/heads/eval/{}", s.slug))
            .and_then(apply::ApplyOutcome::applied)
            .unwrap_or_else(|e| panic!("{}: {e:#}", mbox.display()));
    (s, applied)
}

/// `git am ARGS mbox` on `base` in a clone of `repo`; the commits it made.
fn git_am(repo: &Path, mbox: &Path, base: &str, args: &[&str]) -> (tempfile::TempDir, Vec<Oid>) {
    let tmp = tempfile::tempdir().unwrap();
    common::git(tmp.path(), &["clone", "-q", "--shared", repo.to_str().unwrap(), "am"]);
    let clone = tmp.path().join("am");
    common::git(&clone, &["checkout", "-q", "--detach", base]);
    let mut all = vec!["am", "-q"];
    all.extend_from_slice(args);
    all.push(mbox.to_str().unwrap());
    common::git(&clone, &all);
    let r = Repository::open(&clone).unwrap();
    let mut walk = r.revwalk().unwrap();
    walk.push_head().unwrap();
    walk.hide(Oid::from_str(base).unwrap()).unwrap();
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE).unwrap();
    let ids = walk.map(|c| c.unwrap()).collect();
    (tmp, ids)
}

/// Our commits and git am's are the same commits (trees, messages, authors).
fn assert_same(repo: &Path, applied: &[apply::AppliedPatch], am: &(tempfile::TempDir, Vec<Oid>), what: &str) {
    let (r, theirs) = (Repository::open(repo).unwrap(), Repository::open(am.0.path().join("am")).unwrap());
    assert_eq!(
        applied.len(),
        am.1.len(),
        "{what}: git am made {} commits, we made {}",
        am.1.len(),
        applied.len()
    );
    for (o, t) in applied.iter().zip(&am.1) {
        assert_eq!(
            facts(&r, Oid::from_str(&o.commit).unwrap()),
            facts(&theirs, *t),
            "{what}: patch {} differs from git am",
            o.number
        );
    }
}

fn tree_file(repo: &Path, commit: &str, path: &[u8]) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let r = Repository::open(repo).unwrap();
    let tree = r.find_commit(Oid::from_str(commit).unwrap()).unwrap().tree().unwrap();
    let e = tree.get_path(Path::new(std::ffi::OsStr::from_bytes(path))).unwrap();
    let content = r.find_blob(e.id()).unwrap().content().to_vec();
    content
}

const AUTO: mail::MboxFormat = mail::MboxFormat::Auto;

fn default() -> series::Choice {
    series::Choice::default()
}

#[test]
fn undeclared_utf8_reaches_files_and_names_as_sent() {
    let s = Scratch::new();
    s.write("f", b"one\ntwo\n");
    let base = s.commit("base");
    s.write("f", "one\ntwo\ncaf\u{e9} \u{2014} \u{1f600}\n".as_bytes());
    s.write("na\u{ef}ve.txt", "r\u{e9}sum\u{e9}\n".as_bytes());
    s.commit("mm: add a line with non-ASCII text\n\nThe message itself is plain ASCII.");
    for quote in ["true", "false"] {
        s.git(&["config", "core.quotePath", quote]);
        let mbox = s.format_patch(&format!("utf8-{quote}.mbox"), "-1", &[]);
        let text = std::fs::read_to_string(&mbox).unwrap();
        assert!(!text.to_ascii_lowercase().contains("charset"), "git declares no charset here:\n{text}");
        let (_, applied) = ours(&s.path, &mbox, AUTO, default(), &base);
        assert_same(&s.path, &applied, &git_am(&s.path, &mbox, &base, &[]), &format!("quotePath={quote}"));
        let tip = &applied[0].commit;
        assert_eq!(tree_file(&s.path, tip, "na\u{ef}ve.txt".as_bytes()), "r\u{e9}sum\u{e9}\n".as_bytes());
    }
}

#[test]
fn a_latin1_message_is_converted_and_its_utf8_diff_is_not() {
    let s = Scratch::new();
    s.write("f", b"one\n");
    let base = s.commit("base");
    s.write("f", "one\nJ\u{f6}rg \u{2192} M\u{fc}ller\n".as_bytes());
    s.git(&["add", "-A"]);
    let msg = s.path.parent().unwrap().join("msg");
    std::fs::write(&msg, b"f: credit J\xf6rg\n\nSuggested-by: J\xf6rg M\xfcller <joerg@example.org>\n")
        .unwrap();
    s.git(&["-c", "i18n.commitEncoding=ISO-8859-1", "commit", "-q", "-F", msg.to_str().unwrap()]);
    let mbox = s.format_patch("latin1.mbox", "-1", &["--encoding=ISO-8859-1"]);
    let raw = std::fs::read(&mbox).unwrap();
    assert!(String::from_utf8_lossy(&raw).contains("charset=ISO-8859-1"), "git declares Latin-1");
    let (series, applied) = ours(&s.path, &mbox, AUTO, default(), &base);
    assert_eq!(
        series.patches[0].mail.message,
        "f: credit J\u{f6}rg\n\nSuggested-by: J\u{f6}rg M\u{fc}ller <joerg@example.org>\n"
    );
    assert_same(&s.path, &applied, &git_am(&s.path, &mbox, &base, &[]), "latin1");
}

#[test]
fn hunks_whose_context_moved_apply_at_an_offset_like_git_am() {
    let s = Scratch::new();
    let body: String = (1..=40).map(|i| format!("line {i}\n")).collect();
    s.write("mm/x.c", body.as_bytes());
    let short: String = (1..=20).map(|i| format!("y{i}\n")).collect();
    s.write("mm/y.c", short.as_bytes());
    let base = s.commit("base");
    s.git(&["checkout", "-q", "-b", "series"]);
    let changed = body.replace("line 10\n", "line ten\n").replace("line 30\n", "line thirty\n");
    s.write("mm/x.c", changed.as_bytes());
    s.write("mm/y.c", short.replace("y10\n", "y ten\n").as_bytes());
    s.commit("mm: change three lines");
    let mbox = s.format_patch("offset.mbox", "main..series", &[]);
    // On its own base nothing moves.
    assert!(ours(&s.path, &mbox, AUTO, default(), &base).1[0].offsets.is_empty());
    // The tree it meets has moved on: five lines more at the top of x.c, one less in y.c;
    // git am without -3 applies it at an offset, and so must we.
    s.git(&["checkout", "-q", "main"]);
    s.write(
        "mm/x.c",
        format!("{}{body}", (1..=5).map(|i| format!("new {i}\n")).collect::<String>()).as_bytes(),
    );
    s.write("mm/y.c", short.replacen("y1\n", "", 1).as_bytes());
    let moved = s.commit("unrelated: lines added above");
    let (_, applied) = ours(&s.path, &mbox, AUTO, default(), &moved);
    assert!(!applied[0].three_way);
    let shown: Vec<String> = applied[0].offsets.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "mm/x.c: hunk #1 at line 12 (offset 5 lines)",
            "mm/x.c: hunk #2 at line 32 (offset 5 lines)",
            "mm/y.c: hunk #1 at line 6 (offset -1 line)"
        ]
    );
    assert_same(&s.path, &applied, &git_am(&s.path, &mbox, &moved, &[]), "offsets");
}

#[test]
fn new_empty_files_and_names_with_spaces() {
    let s = Scratch::new();
    s.write("docs/old name.txt", b"keep\nme\n");
    s.write("docs/gone name.txt", b"bye\n");
    let base = s.commit("base");
    s.write("include/empty.h", b"");
    s.write("docs/new name.txt", b"hello\n");
    s.write("docs/old name.txt", b"keep\nyou\n");
    std::fs::remove_file(s.path.join("docs/gone name.txt")).unwrap();
    s.write("tools/run me.sh", b"#!/bin/sh\n");
    std::fs::set_permissions(
        s.path.join("tools/run me.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    s.write("a dir/empty too", b"");
    s.commit("docs: create, edit and delete names with spaces, add empty files");
    let mbox = s.format_patch("spaces.mbox", "-1", &[]);
    let (series, applied) = ours(&s.path, &mbox, AUTO, default(), &base);
    let files: Vec<&str> =
        series.patches[0].mail.diff.as_ref().unwrap().files.iter().map(|f| f.path()).collect();
    assert_eq!(files.len(), 6, "{files:?}");
    assert_same(&s.path, &applied, &git_am(&s.path, &mbox, &base, &[]), "spaces");
}

#[test]
fn from_lines_are_kept_in_mboxo_and_unescaped_in_mboxrd() {
    let s = Scratch::new();
    s.write("f", b"1\n");
    let base = s.commit("base");
    s.write("f", b"2\n");
    s.commit("f: quote the archive\n\nAs the old mail said:\n>From the archive, with love\n>>From deeper\nFrom here on it is plain.");
    // git format-patch writes mboxo: git am keeps the `>`.
    let mbox = s.format_patch("mboxo.mbox", "-1", &[]);
    let (series, applied) = ours(&s.path, &mbox, AUTO, default(), &base);
    assert!(series.patches[0].mail.message.contains("\n>From the archive, with love\n>>From deeper\n"));
    assert_same(&s.path, &applied, &git_am(&s.path, &mbox, &base, &[]), "mboxo");
    // The same commit as mboxrd with public-inbox's separator: one `>` less on reading.
    let rd = s.format_patch("raw-rd.mbox", "-1", &["--pretty=mboxrd"]);
    let text = std::fs::read_to_string(&rd).unwrap();
    assert!(text.contains("\n>>From the archive"), "{text}");
    let first_line = text.lines().next().unwrap().to_string();
    let public_inbox = s.save(
        "public-inbox.mbox",
        text.replacen(&first_line, "From mboxrd@z Thu Jan  1 00:00:00 1970", 1).as_bytes(),
    );
    let (_, applied_rd) = ours(&s.path, &public_inbox, AUTO, default(), &base);
    assert_same(
        &s.path,
        &applied_rd,
        &git_am(&s.path, &public_inbox, &base, &["--patch-format=mboxrd"]),
        "mboxrd",
    );
    // git format-patch's own mboxrd separator is git's: the user says what it is.
    let (_, applied_forced) = ours(&s.path, &rd, mail::MboxFormat::Mboxrd, default(), &base);
    assert_same(
        &s.path,
        &applied_forced,
        &git_am(&s.path, &rd, &base, &["--patch-format=mboxrd"]),
        "--mboxrd",
    );
    assert_eq!(applied_forced[0].commit, applied[0].commit);
}

#[test]
fn traditional_and_quilt_diffs_apply_with_p1() {
    let s = Scratch::new();
    s.write("mm/x.c", b"int a;\nint b;\nint c;\n");
    s.write("mm/old.c", b"dead\n");
    let base = s.commit("base");
    let quilt = lines(
        "From: Quilt User <quilt@example.org>
Subject: [PATCH] mm: a quilt patch
Date: Mon, 2 Nov 2026 10:00:00 +0100
Message-ID: <quilt@example.org>

Made with quilt, sent as it is.

Signed-off-by: Quilt User <quilt@example.org>

---
 mm/x.c |    2 +-
 1 file changed, 1 insertion(+), 1 deletion(-)

Index: linux/mm/x.c
===================================================================
--- linux.orig/mm/x.c\t2026-11-02 09:59:00.000000000 +0100
+++ linux/mm/x.c\t2026-11-02 10:00:00.000000000 +0100
@@ -1,3 +1,3 @@
 int a;
-int b;
+long b;
 int c;
Index: linux/mm/new.c
===================================================================
--- /dev/null\t1970-01-01 00:00:00.000000000 +0000
+++ linux/mm/new.c\t2026-11-02 10:00:00.000000000 +0100
@@ -0,0 +1 @@
+int n;
--- linux.orig/mm/old.c\t2026-11-02 09:59:00.000000000 +0100
+++ linux/mm/old.c\t1970-01-01 00:00:00.000000000 +0000
@@ -1 +0,0 @@
-dead
",
    );
    let mbox = s.save("quilt.eml", quilt.as_bytes());
    let (series, applied) = ours(&s.path, &mbox, AUTO, default(), &base);
    assert!(series.patches[0].mail.diff.as_ref().unwrap().traditional);
    assert_same(&s.path, &applied, &git_am(&s.path, &mbox, &base, &[]), "quilt");
    let plain = lines(
        "From: Diff User <diff@example.org>
Subject: [PATCH] mm: diff -u
Date: Mon, 2 Nov 2026 10:00:00 +0100

---
diff -u a/mm/x.c b/mm/x.c
--- a/mm/x.c
+++ b/mm/x.c
@@ -2,2 +2,2 @@
-int b;
+short b;
 int c;
",
    );
    let mbox = s.save("diff-u.eml", plain.as_bytes());
    let (_, applied) = ours(&s.path, &mbox, AUTO, default(), &base);
    assert_same(&s.path, &applied, &git_am(&s.path, &mbox, &base, &[]), "diff -u");
}

#[test]
fn a_lone_cr_in_a_base64_body_is_data() {
    use std::io::Write;
    let s = Scratch::new();
    s.write("f", b"a\nb\n");
    let base = s.commit("base");
    let body = "f: keep a carriage return\n\n---\ndiff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n+b\rX\n";
    let mut mail = Vec::new();
    write!(mail, "From: CR Sender <cr@example.org>\nSubject: [PATCH] f: keep a carriage return\nDate: Mon, 2 Nov 2026 10:00:00 +0100\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: base64\n\n").unwrap();
    let b64 = Command::new("base64")
        .arg("-w76")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    b64.stdin.as_ref().unwrap().write_all(body.as_bytes()).unwrap();
    mail.extend(b64.wait_with_output().unwrap().stdout);
    let mbox = s.save("cr.eml", &mail);
    let (_, applied) = ours(&s.path, &mbox, AUTO, default(), &base);
    assert_eq!(tree_file(&s.path, &applied[0].commit, b"f"), b"a\nb\rX\n");
    assert_same(&s.path, &applied, &git_am(&s.path, &mbox, &base, &[]), "lone CR");
}

/// A v2 series of two patches with a cover letter, threaded, as `git send-email` sends
/// it; returns (repo, base, mbox text, message ids of cover, 1/2, 2/2).
fn threaded_series(s: &Scratch, version: u32, prefix: &str, base: &str) -> (String, [String; 3]) {
    s.git(&["checkout", "-q", "-B", &format!("v{version}"), base]);
    s.write("mm/a.c", format!("int a = {version};\n").as_bytes());
    s.commit("mm/a: set a\n\nSigned-off-by: Mira Castellanos <mira@example.org>");
    s.write("mm/b.c", format!("int b = {version};\n").as_bytes());
    s.commit("mm/b: set b\n\nSigned-off-by: Mira Castellanos <mira@example.org>");
    let ids = [0, 1, 2].map(|n| format!("v{version}-{n}@example.org"));
    let out = s.git(&[
        "format-patch",
        "--stdout",
        "--cover-letter",
        "--thread=shallow",
        &format!("--subject-prefix={prefix}"),
        "-v",
        &version.to_string(),
        &format!("{base}..HEAD"),
    ]);
    // Stable message ids instead of git's time-based ones.
    let mut text = String::new();
    let mut n = 0;
    for line in out.lines() {
        if line.starts_with("Message-ID: ") {
            text.push_str(&format!("Message-ID: <{}>\n", ids[n]));
            n += 1;
        } else if line.starts_with("In-Reply-To: ") || line.starts_with("References: ") {
            let key = line.split(':').next().unwrap();
            text.push_str(&format!("{key}: <{}>\n", ids[0]));
        } else {
            text.push_str(line);
            text.push('\n');
        }
    }
    let text = text
        .replace("*** SUBJECT HERE ***", "mm: set a and b")
        .replace("*** BLURB HERE ***", "Sets a and b.");
    (text, ids)
}

fn reply(from: &str, id: &str, parent: &str, subject: &str, body: &str) -> String {
    lines(&format!(
        "From mboxrd@z Thu Jan  1 00:00:00 1970
From: {from}
Subject: {subject}
Date: Tue, 3 Nov 2026 10:00:00 +0100
Message-ID: <{id}>
In-Reply-To: <{parent}>
References: <{parent}>

{body}
"
    ))
}

/// b4 0.16 from PyPI (in the cache, installed on first use).
fn b4() -> PathBuf {
    static B4: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    B4.get_or_init(|| {
        if let Some(p) = std::env::var_os("MMEVAL_B4") {
            return PathBuf::from(p);
        }
        let venv = xtask::reftree::cache_root().join("b4-0.16.0");
        let bin = venv.join("bin/b4");
        if !bin.exists() {
            let ok = |c: &mut Command| c.status().is_ok_and(|s| s.success());
            let venv_made = |v: &Path| ok(Command::new("python3").args(["-m", "venv"]).arg(v));
            if !venv_made(&venv) {
                // Debian's python3 makes venvs only with python3-venv (installed when root).
                xtask::host::install(&["python3-venv"]).unwrap();
                assert!(venv_made(&venv), "python3 -m venv {}", venv.display());
            }
            assert!(
                ok(Command::new(venv.join("bin/pip")).args(["install", "-q", "b4==0.16.0"])),
                "pip install b4==0.16.0"
            );
        }
        bin
    })
    .clone()
}

/// What `b4 am` makes of the thread of `msgid` in `mbox`: the mbox it writes.
fn b4_am(mbox: &Path, msgid: &str, args: &[&str]) -> (PathBuf, String) {
    let out = mbox.with_extension("b4");
    let _ = std::fs::remove_dir_all(&out);
    let r = Command::new(b4())
        .args(["--offline-mode", "am", "-m"])
        .arg(mbox)
        .arg("-o")
        .arg(&out)
        .args(args)
        .arg(msgid)
        .env("HOME", mbox.parent().unwrap())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&r.stderr).into_owned();
    assert!(r.status.success(), "b4 am: {log}");
    let mbx = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "mbx"))
        .expect(".mbx");
    (mbx, log)
}

/// The trailers b4 added to each patch: those of its commit message that the original
/// mail did not have.
fn b4_added_trailers(b4_mbox: &Path, s: &series::Series) -> Vec<Vec<String>> {
    let theirs = input::read_series(b4_mbox, default()).unwrap();
    assert_eq!(theirs.patches.len(), s.patches.len());
    theirs
        .patches
        .iter()
        .zip(&s.patches)
        .map(|(t, o)| {
            let mut added: Vec<String> = t
                .mail
                .trailers
                .iter()
                .filter(|x| !o.mail.trailers.contains(x))
                .map(|x| format!("{}: {}", x.key, x.value))
                .collect();
            added.sort();
            added
        })
        .collect()
}

fn our_follow_ups(s: &series::Series) -> Vec<Vec<String>> {
    s.patches
        .iter()
        .map(|p| {
            let mut v: Vec<String> =
                p.follow_up_trailers.iter().map(|t| format!("{}: {}", t.key, t.value)).collect();
            v.sort();
            v
        })
        .collect()
}

#[test]
fn replies_without_re_and_follow_up_trailers_as_b4_collects_them() {
    let s = Scratch::new();
    s.write("README", b"toy\n");
    let base = s.commit("base");
    let (mut text, ids) = threaded_series(&s, 2, "PATCH", &base);
    // A review whose subject lost its `Re:`: no diff, so a reply.
    text += &reply(
        "Ana Maintainer <ana@example.org>",
        "r1@example.org",
        &ids[1],
        "[PATCH v2 1/2] mm/a: set a",
        "> +int a = 2;\n\nLooks right.\n\nReviewed-by: Ana Maintainer <ana@example.org>",
    );
    // Outlook's address, utility trailers from someone who is not the sender, a
    // trailer for somebody else, one in quoted text, one under the signature.
    text += &reply(
        "Tomasz Nowak <tnowak@example.net>",
        "r2@example.org",
        &ids[2],
        "RE: [PATCH v2 2/2] mm/b: set b",
        "Tested-by: Tomasz Nowak <tnowak@example.net<mailto:tnowak@example.net>>\nLink: https://bugzilla.example.org/show_bug.cgi?id=1\nCloses: https://bugzilla.example.org/show_bug.cgi?id=2\nFixes: 0123456789ab (\"mm/b: the old way\")\nAcked-by: Someone Else <else@example.org>\n> Reviewed-by: Quoted Person <quoted@example.org>\n\n-- \nReviewed-by: Signature <tnowak@example.net>",
    );
    // The cover's reply gives its tag to both patches.
    text += &reply(
        "J\u{f6}rg M\u{fc}ller <joerg@example.org>",
        "r3@example.org",
        &ids[0],
        "Re: [PATCH v2 0/2] mm: set a and b",
        "For the series:\nAcked-by: J\u{f6}rg M\u{fc}ller <joerg@example.org>",
    );
    let mbox = s.save("replies.mbox", text.as_bytes());
    let (series, applied) = ours(&s.path, &mbox, AUTO, default(), &base);
    assert_eq!(series.patches.len(), 2);
    assert_eq!(
        our_follow_ups(&series),
        [
            vec![
                "Acked-by: J\u{f6}rg M\u{fc}ller <joerg@example.org>",
                "Reviewed-by: Ana Maintainer <ana@example.org>"
            ],
            vec![
                "Acked-by: J\u{f6}rg M\u{fc}ller <joerg@example.org>",
                "Closes: https://bugzilla.example.org/show_bug.cgi?id=2",
                "Fixes: 0123456789ab (\"mm/b: the old way\")",
                "Link: https://bugzilla.example.org/show_bug.cgi?id=1",
                "Tested-by: Tomasz Nowak <tnowak@example.net>",
            ],
        ]
    );
    let (b4_mbox, _) = b4_am(&mbox, &ids[0], &[]);
    assert_eq!(b4_added_trailers(&b4_mbox, &series), our_follow_ups(&series), "b4 collects other trailers");
    // The commits themselves are the mails' own, as git am writes them.
    assert_same(&s.path, &applied, &git_am(&s.path, &patches_only(&mbox, &series), &base, &[]), "replies");
}

#[test]
fn patches_without_a_version_belong_to_their_covers_revision() {
    let s = Scratch::new();
    s.write("README", b"toy\n");
    let base = s.commit("base");
    let (text, ids) = threaded_series(&s, 3, "PATCH net-next", &base);
    assert!(text.contains("[PATCH net-next v3 0/2]"));
    let text = text
        .replace("[PATCH net-next v3 1/2]", "[PATCH 1/2]")
        .replace("[PATCH net-next v3 2/2]", "[PATCH 2/2]");
    let mbox = s.save("net-next.mbox", text.as_bytes());
    let (series, applied) = ours(&s.path, &mbox, AUTO, default(), &base);
    assert_eq!((series.version, series.all_versions.clone(), series.patches.len()), (3, vec![3], 2));
    assert_eq!(series.tags, ["net-next"]);
    assert!(series.cover.is_some());
    let (b4_mbox, log) = b4_am(&mbox, &ids[0], &[]);
    assert!(log.contains("v3"), "b4 sees v3: {log}");
    assert_same(&s.path, &applied, &git_am(&s.path, &b4_mbox, &base, &[]), "b4's v3");
}

#[test]
fn a_partial_reroll_is_completed_from_the_previous_revision_as_b4_does() {
    let s = Scratch::new();
    s.write("README", b"toy\n");
    let base = s.commit("base");
    let (v2, ids2) = threaded_series(&s, 2, "PATCH", &base);
    // v3 resends 2/2 only, as a reply to v2 2/2.
    s.git(&["checkout", "-q", "-B", "v3", "v2"]);
    s.write("mm/b.c", b"int b = 3;\n");
    s.git(&[
        "commit",
        "-q",
        "-a",
        "--amend",
        "-m",
        "mm/b: set b to 3\n\nSigned-off-by: Mira Castellanos <mira@example.org>",
    ]);
    let one = s.git(&[
        "format-patch",
        "--stdout",
        "-1",
        "-v3",
        "--subject-prefix=PATCH",
        &format!("--in-reply-to={}", ids2[2]),
    ]);
    let one = one.replace("[PATCH v3]", "[PATCH v3 2/2]").replacen(
        "\nIn-Reply-To: ",
        "\nMessage-ID: <v3-2@example.org>\nIn-Reply-To: ",
        1,
    );
    let text = format!("{v2}{one}");
    let mbox = s.save("reroll.mbox", text.as_bytes());
    let (series, applied) = ours(&s.path, &mbox, AUTO, default(), &base);
    assert_eq!((series.version, series.rerolled_from), (3, Some(2)));
    assert_eq!(series.patches.iter().map(|p| p.from_revision).collect::<Vec<_>>(), [Some(2), None]);
    assert!(
        series::summary(&series).contains("Reroll:   partial: v3 resends 2/2"),
        "{}",
        series::summary(&series)
    );
    assert_same(
        &s.path,
        &applied,
        &git_am(&s.path, &patches_only(&mbox, &series), &base, &[]),
        "v2 1/2 + v3 2/2",
    );
    let (b4_mbox, log) = b4_am(&mbox, &ids2[0], &[]);
    assert!(log.contains("Partial reroll detected"), "{log}");
    assert_same(&s.path, &applied, &git_am(&s.path, &b4_mbox, &base, &[]), "b4's reconstituted v3");
    // The old revision is still there when asked for.
    let (v2s, _) = ours(&s.path, &mbox, AUTO, series::Choice { revision: Some(2), partial: false }, &base);
    assert_eq!((v2s.version, v2s.rerolled_from), (2, None));
}

#[test]
fn refusals_stay_one_line_and_write_nothing() {
    let s = Scratch::new();
    s.write("f", b"1\n");
    let base = s.commit("base");
    s.write("blob.bin", &[0u8, 1, 2, 255, 0, 7]);
    s.commit("add a binary file");
    s.git(&["checkout", "-q", "-B", "tab", &base]);
    s.write("a\tb", b"tab in a name\n");
    s.commit("a name with a tab");
    let objects = || s.git(&["count-objects", "-v"]);
    let before = objects();
    let binary = s.format_patch("binary.mbox", "main", &["-1", "--binary"]);
    let e = format!("{:#}", input::read_series(&binary, default()).unwrap_err());
    assert!(e.contains("binary patches are not supported (blob.bin)"), "{e}");
    let tab = s.format_patch("tab.mbox", "tab", &["-1"]);
    let e = format!("{:#}", input::read_series(&tab, default()).unwrap_err());
    assert!(e.contains("contains control characters") && e.contains("nothing was written"), "{e}");
    assert!(!e.contains('\n'), "one line: {e}");
    assert_eq!(objects(), before);
}

#[test]
fn a_path_beyond_a_symlink_is_refused_as_git_am_refuses_it() {
    let s = Scratch::new();
    s.write("f", b"1\n");
    let base = s.commit("base");
    let evil = lines(
        "From: Evil <evil@example.org>
Subject: [PATCH] add a link and write through it
Date: Mon, 2 Nov 2026 10:00:00 +0100

---
diff --git a/link b/link
new file mode 120000
index 0000000..1111111
--- /dev/null
+++ b/link
@@ -0,0 +1 @@
+/tmp
\\ No newline at end of file
diff --git a/link/file b/link/file
new file mode 100644
index 0000000..2222222
--- /dev/null
+++ b/link/file
@@ -0,0 +1 @@
+owned
",
    );
    let mbox = s.save("symlink.eml", evil.as_bytes());
    let series = input::read_series(&mbox, default()).unwrap();
    let r = Repository::open(&s.path).unwrap();
    let f =
        match apply::apply_series(&r, &series, Oid::from_str(&base).unwrap(), "refs/heads/eval/x").unwrap() {
            apply::ApplyOutcome::Failed(f) => f,
            apply::ApplyOutcome::Applied(_) => panic!("a write through a symlink applied"),
        };
    assert!(f.detail.contains("beyond a symbolic link"), "{f}");
    assert!(r.find_reference("refs/heads/eval/x").is_err());
    // git am refuses it too.
    let tmp = tempfile::tempdir().unwrap();
    common::git(tmp.path(), &["clone", "-q", s.path.to_str().unwrap(), "am"]);
    let out = Command::new("git")
        .current_dir(tmp.path().join("am"))
        .args(["am", mbox.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success(), "git am took it");
}
