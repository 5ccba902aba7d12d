//! The diff of a patch mail as `git apply -p1` reads it. Pure: bytes in, files out.
//!
//! It follows git's `apply.c`: headers are found the way `find_header()` finds them
//! (git diffs and traditional `diff -u`/quilt diffs; lines between files are skipped),
//! names are read as `git_header_name()` and `find_name()` read them, hunks end where
//! their counts say. The bytes of the diff are never re-encoded: file names and
//! contents reach the tree exactly as sent. Placing the hunks is [`crate::hunks`].

mod names;

pub use names::check_path;
use names::{find_name, git_header_name, has_epoch_timestamp, is_dev_null, traditional_name, unquote};

use anyhow::{bail, Result};
use regex::bytes::Regex;
use serde::Serialize;
use std::sync::LazyLock;

/// What a file diff does to the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Modify,
    Create,
    Delete,
    Rename,
    Copy,
}

/// One `@@ -a,b +c,d @@` hunk: the lines it expects and the lines it leaves, each with
/// its newline (unless `\ No newline at end of file` followed it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hunk {
    pub header: String,
    pub old_start: usize,
    pub new_start: usize,
    pub old: Vec<Vec<u8>>,
    pub new: Vec<Vec<u8>>,
    /// Context lines before the first and after the last change.
    pub leading: usize,
    pub trailing: usize,
}

/// One file of a diff.
#[derive(Debug, Clone, Serialize)]
pub struct FileDiff {
    /// The names, for reading (lossy UTF-8); None for a new (old) or deleted (new) file.
    pub old_path: Option<String>,
    pub new_path: Option<String>,
    /// The names exactly as sent, which is what goes into the tree.
    #[serde(skip)]
    pub old_name: Option<Vec<u8>>,
    #[serde(skip)]
    pub new_name: Option<Vec<u8>>,
    /// Abbreviated blob ids from the `index` line, when present.
    pub old_blob: Option<String>,
    pub new_blob: Option<String>,
    #[serde(skip)]
    pub change: Change,
    /// Modes from `new file mode`, `old mode`/`new mode`, `deleted file mode`.
    #[serde(skip)]
    pub old_mode: Option<u32>,
    #[serde(skip)]
    pub new_mode: Option<u32>,
    pub insertions: usize,
    pub deletions: usize,
    /// Hunk headers in order (`@@ -a,b +c,d @@ ...`), for messages.
    pub hunks: Vec<String>,
    #[serde(skip)]
    pub fragments: Vec<Hunk>,
}

impl FileDiff {
    pub fn path(&self) -> &str {
        self.new_path.as_deref().or(self.old_path.as_deref()).unwrap_or("")
    }
}

/// The diff part of a patch mail.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub files: Vec<FileDiff>,
    /// No `diff --git` header: a `diff -u` or quilt patch, applied with `-p1`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub traditional: bool,
}

static HUNK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@").unwrap());

/// Parses the part of a mail after the commit message. Lines carry no `\n`. Returns None
/// when there is no diff at all (a cover letter, a reply).
pub fn parse(lines: &[&[u8]]) -> Result<Option<Diff>> {
    let mut files = Vec::new();
    let mut traditional = false;
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        let file = if l.starts_with(b"diff --git ") {
            parse_git_file(lines, &mut i)?
        } else if l.starts_with(b"--- ")
            && lines.get(i + 1).is_some_and(|n| n.starts_with(b"+++ "))
            && lines.get(i + 2).is_some_and(|n| n.starts_with(b"@@ -"))
        {
            traditional = true;
            parse_traditional_file(lines, &mut i)?
        } else if l.starts_with(b"@@ -") && HUNK.is_match(l) {
            bail!("the diff has a hunk without a file header (`{}`)", lossy(l));
        } else {
            // Between files: diffstat, `Index:` lines, a signature ... (git skips them).
            i += 1;
            continue;
        };
        files.push(file);
    }
    if files.is_empty() {
        return Ok(None);
    }
    Ok(Some(Diff { files, traditional }))
}

fn empty_file(change: Change) -> FileDiff {
    FileDiff {
        old_path: None,
        new_path: None,
        old_name: None,
        new_name: None,
        old_blob: None,
        new_blob: None,
        change,
        old_mode: None,
        new_mode: None,
        insertions: 0,
        deletions: 0,
        hunks: Vec::new(),
        fragments: Vec::new(),
    }
}

/// A `diff --git` header, its extended lines and hunks.
fn parse_git_file(lines: &[&[u8]], i: &mut usize) -> Result<FileDiff> {
    let header = lines[*i];
    let def_name = git_header_name(&header[b"diff --git ".len()..]);
    let mut f = empty_file(Change::Modify);
    let (mut old, mut new): (Option<Vec<u8>>, Option<Vec<u8>>) = (None, None);
    let (mut is_new, mut is_delete) = (false, false);
    let mut j = *i + 1;
    while j < lines.len() {
        let l = lines[j];
        if l.starts_with(b"@@ -") {
            break;
        }
        if let Some(v) = l.strip_prefix(b"--- ") {
            if v != b"/dev/null" && old.is_none() {
                old = Some(find_name(v)?);
            }
        } else if let Some(v) = l.strip_prefix(b"+++ ") {
            if v != b"/dev/null" && new.is_none() {
                new = Some(find_name(v)?);
            }
        } else if let Some(v) = l.strip_prefix(b"new file mode ") {
            is_new = true;
            f.new_mode = parse_mode(v);
        } else if let Some(v) = l.strip_prefix(b"deleted file mode ") {
            is_delete = true;
            f.old_mode = parse_mode(v);
        } else if let Some(v) = l.strip_prefix(b"old mode ") {
            f.old_mode = parse_mode(v);
        } else if let Some(v) = l.strip_prefix(b"new mode ") {
            f.new_mode = parse_mode(v);
        } else if let Some(v) = l.strip_prefix(b"rename from ").or_else(|| l.strip_prefix(b"rename old ")) {
            f.change = Change::Rename;
            old = Some(unquote(v));
        } else if let Some(v) = l.strip_prefix(b"rename to ").or_else(|| l.strip_prefix(b"rename new ")) {
            f.change = Change::Rename;
            new = Some(unquote(v));
        } else if let Some(v) = l.strip_prefix(b"copy from ") {
            f.change = Change::Copy;
            old = Some(unquote(v));
        } else if let Some(v) = l.strip_prefix(b"copy to ") {
            f.change = Change::Copy;
            new = Some(unquote(v));
        } else if let Some(v) = l.strip_prefix(b"index ") {
            let ids = v.split(|&b| b == b' ').next().unwrap_or(b"");
            if let Some(dots) = ids.windows(2).position(|w| w == b"..") {
                let (o, n) = (lossy(&ids[..dots]), lossy(&ids[dots + 2..]));
                f.old_blob = Some(o).filter(|s| !is_zero(s));
                f.new_blob = Some(n).filter(|s| !is_zero(s));
            }
        } else if l.starts_with(b"similarity index ") || l.starts_with(b"dissimilarity index ") {
        } else {
            break;
        }
        j += 1;
    }
    if is_new {
        f.change = Change::Create;
    } else if is_delete {
        f.change = Change::Delete;
    }
    if old.is_none() && new.is_none() {
        let Some(name) = def_name else {
            // git: "git diff header lacks filename information"
            bail!("`{}` names no file git can read; send the patch with git format-patch", lossy(header));
        };
        old = Some(name.clone());
        new = Some(name);
    }
    // A created file has no old name, a deleted one no new name.
    if f.change == Change::Create {
        old = None;
        new = new.or(def_name_of(header));
    } else if f.change == Change::Delete {
        new = None;
        old = old.or(def_name_of(header));
    } else {
        old = old.or_else(|| new.clone());
        new = new.or_else(|| old.clone());
    }
    if f.change == Change::Create && f.new_mode.is_none() {
        f.new_mode = Some(0o100644);
    }
    if lines.get(j).is_some_and(|l| l.starts_with(b"GIT binary patch") || l.starts_with(b"Binary files ")) {
        let name = new.as_deref().or(old.as_deref()).map(lossy).unwrap_or_default();
        bail!("binary patches are not supported ({name})");
    }
    f.old_name = old;
    f.new_name = new;
    *i = j;
    parse_hunks(lines, i, &mut f)?;
    finish(f)
}

fn def_name_of(header: &[u8]) -> Option<Vec<u8>> {
    git_header_name(&header[b"diff --git ".len()..])
}

/// `--- a/x` / `+++ b/x` with no `diff --git` line: `git apply -p1`'s rules for names
/// (timestamps after a tab, `/dev/null`, the epoch date of `diff -N`).
fn parse_traditional_file(lines: &[&[u8]], i: &mut usize) -> Result<FileDiff> {
    let first = &lines[*i][4..];
    let second = &lines[*i + 1][4..];
    let mut f = empty_file(Change::Modify);
    if is_dev_null(first) {
        f.change = Change::Create;
        f.new_name = Some(traditional_name(second, None)?);
    } else if is_dev_null(second) {
        f.change = Change::Delete;
        f.old_name = Some(traditional_name(first, None)?);
    } else {
        let first_name = traditional_name(first, None)?;
        let name = traditional_name(second, Some(&first_name))?;
        if has_epoch_timestamp(first) {
            f.change = Change::Create;
            f.new_name = Some(name);
        } else if has_epoch_timestamp(second) {
            f.change = Change::Delete;
            f.old_name = Some(name);
        } else {
            f.old_name = Some(name.clone());
            f.new_name = Some(name);
        }
    }
    if f.change == Change::Create {
        f.new_mode = Some(0o100644);
    }
    *i += 2;
    parse_hunks(lines, i, &mut f)?;
    finish(f)
}

fn finish(mut f: FileDiff) -> Result<FileDiff> {
    f.old_path = f.old_name.as_deref().map(lossy);
    f.new_path = f.new_name.as_deref().map(lossy);
    for p in [&f.old_path, &f.new_path].into_iter().flatten() {
        check_path(p)?;
    }
    Ok(f)
}

/// Hunks while the next line starts one; counts decide where each ends.
fn parse_hunks(lines: &[&[u8]], i: &mut usize, f: &mut FileDiff) -> Result<()> {
    let label = |f: &FileDiff| {
        f.new_name.as_deref().or(f.old_name.as_deref()).map(lossy).unwrap_or_else(|| "a file".into())
    };
    while let Some(c) = lines.get(*i).and_then(|l| HUNK.captures(l)) {
        let num = |k: usize, default: usize| -> Result<usize> {
            match c.get(k) {
                None => Ok(default),
                Some(m) => {
                    std::str::from_utf8(m.as_bytes()).ok().and_then(|s| s.parse().ok()).ok_or_else(|| {
                        anyhow::anyhow!("a hunk header of {} has a number out of range", label(f))
                    })
                }
            }
        };
        let (old_start, mut old_left, new_start, mut new_left) =
            (num(1, 0)?, num(2, 1)?, num(3, 0)?, num(4, 1)?);
        let header = lossy(lines[*i]);
        *i += 1;
        let mut h = Hunk {
            header: header.clone(),
            old_start,
            new_start,
            old: Vec::new(),
            new: Vec::new(),
            leading: 0,
            trailing: 0,
        };
        let (mut added, mut deleted) = (0usize, 0usize);
        // Which sides the last content line went to, for `\ No newline at end of file`.
        let mut last = (false, false);
        while old_left > 0 || new_left > 0 {
            let Some(&l) = lines.get(*i) else {
                bail!("the diff of {} ends in the middle of a hunk (truncated mail?)", label(f));
            };
            let body = l.get(1..).unwrap_or(b"");
            let with_nl = |b: &[u8]| [b, b"\n"].concat();
            match l.first() {
                // An empty line is an empty context line (GNU diff, or a mailer's trimming).
                None | Some(b' ') => {
                    if old_left == 0 || new_left == 0 {
                        bail!("the diff of {} has a hunk longer than its header says", label(f));
                    }
                    old_left -= 1;
                    new_left -= 1;
                    if added == 0 && deleted == 0 {
                        h.leading += 1;
                    }
                    h.trailing += 1;
                    h.old.push(with_nl(body));
                    h.new.push(with_nl(body));
                    last = (true, true);
                }
                Some(b'-') if old_left > 0 => {
                    old_left -= 1;
                    deleted += 1;
                    h.trailing = 0;
                    h.old.push(with_nl(body));
                    last = (true, false);
                }
                Some(b'+') if new_left > 0 => {
                    new_left -= 1;
                    added += 1;
                    h.trailing = 0;
                    h.new.push(with_nl(body));
                    last = (false, true);
                }
                Some(b'\\') if l.len() >= 12 && l.starts_with(b"\\ ") => no_newline(&mut h, last),
                _ => bail!("the diff of {} is truncated or corrupt at line `{}`", label(f), lossy(l)),
            }
            *i += 1;
        }
        if lines.get(*i).is_some_and(|l| l.len() >= 12 && l.starts_with(b"\\ ")) {
            no_newline(&mut h, last);
            *i += 1;
        }
        if added == 0 && deleted == 0 {
            bail!("the diff of {} has a hunk that changes nothing (`{header}`)", label(f));
        }
        f.insertions += added;
        f.deletions += deleted;
        f.hunks.push(header);
        f.fragments.push(h);
    }
    Ok(())
}

fn no_newline(h: &mut Hunk, (old, new): (bool, bool)) {
    if old {
        if let Some(l) = h.old.last_mut() {
            l.pop();
        }
    }
    if new {
        if let Some(l) = h.new.last_mut() {
            l.pop();
        }
    }
}

fn parse_mode(v: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let m = u32::from_str_radix(s, 8).ok()?;
    // git's canon_mode
    Some(match m & 0o170000 {
        0o120000 => 0o120000,
        0o160000 => 0o160000,
        _ if m & 0o100 != 0 => 0o100755,
        _ => 0o100644,
    })
}

fn is_zero(id: &str) -> bool {
    id.bytes().all(|b| b == b'0')
}

pub fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<&[u8]> {
        text.lines().map(str::as_bytes).collect()
    }

    #[test]
    fn diff_ends_where_its_hunks_end() {
        let text = "diff --git a/f b/f\nindex 1111111..2222222 100644\n--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n\nbase-commit: abc\n-- \n2.47.0\n";
        let d = parse(&lines(text)).unwrap().unwrap();
        assert_eq!(d.files.len(), 1);
        assert_eq!((d.files[0].insertions, d.files[0].deletions), (1, 1));
        assert_eq!(d.files[0].old_blob.as_deref(), Some("1111111"));
        assert_eq!(d.files[0].fragments[0].new, vec![b"a\n".to_vec(), b"c\n".to_vec()]);
    }

    #[test]
    fn quoted_names_spaces_and_renames() {
        let text = "diff --git \"a/sp ace\" \"b/sp ace\"\nsimilarity index 100%\nrename from \"sp ace\"\nrename to \"caf\\303\\251\"\n";
        let d = parse(&lines(text)).unwrap().unwrap();
        assert_eq!(d.files[0].old_path.as_deref(), Some("sp ace"));
        assert_eq!(d.files[0].new_name.as_deref(), Some("café".as_bytes()));
        // An unquoted name with a space, new and empty: only the header names it.
        let d = parse(&lines("diff --git a/x y/z b/x y/z\nnew file mode 100755\nindex 0000000..e69de29\n"))
            .unwrap()
            .unwrap();
        let f = &d.files[0];
        assert_eq!(
            (f.change, f.new_path.as_deref(), f.new_mode),
            (Change::Create, Some("x y/z"), Some(0o100755))
        );
        assert!(f.fragments.is_empty());
        // git adds a tab after a name with a space on ---/+++.
        let d = parse(&lines("diff --git a/s p b/s p\nnew file mode 100644\nindex 0000000..1\n--- /dev/null\n+++ b/s p\t\n@@ -0,0 +1 @@\n+x\n"))
            .unwrap()
            .unwrap();
        assert_eq!(d.files[0].new_path.as_deref(), Some("s p"));
    }

    #[test]
    fn traditional_and_quilt_diffs() {
        let text = "Index: linux/mm/x.c\n===================================================================\n--- linux.orig/mm/x.c\t2026-01-01 10:00:00.000000000 +0100\n+++ linux/mm/x.c\t2026-01-02 10:00:00.000000000 +0100\n@@ -1 +1 @@\n-a\n+b\n--- /dev/null\n+++ b/mm/new.c\n@@ -0,0 +1 @@\n+n\n";
        let d = parse(&lines(text)).unwrap().unwrap();
        assert!(d.traditional);
        assert_eq!(d.files.len(), 2);
        assert_eq!((d.files[0].change, d.files[0].path()), (Change::Modify, "mm/x.c"));
        assert_eq!((d.files[1].change, d.files[1].path()), (Change::Create, "mm/new.c"));
        let epoch = "--- a/gone.c\t2026-01-01 10:00:00\n+++ b/gone.c\t1970-01-01 00:00:00.000000000 +0000\n@@ -1 +0,0 @@\n-x\n";
        assert_eq!(parse(&lines(epoch)).unwrap().unwrap().files[0].change, Change::Delete);
        let orig = "--- a/mm/y.c.orig\n+++ a/mm/y.c\n@@ -1 +1 @@\n-a\n+b\n";
        assert_eq!(parse(&lines(orig)).unwrap().unwrap().files[0].path(), "mm/y.c");
    }

    #[test]
    fn stray_lines_between_files_are_skipped_as_git_does() {
        let text = "diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\nstray text\ndiff --git a/g b/g\n--- a/g\n+++ b/g\n@@ -1 +1 @@\n-c\n+d\n";
        assert_eq!(parse(&lines(text)).unwrap().unwrap().files.len(), 2);
        let orphan = "some text\n@@ -1 +1 @@\n-a\n+b\n";
        assert!(parse(&lines(orphan)).unwrap_err().to_string().contains("without a file header"));
    }

    #[test]
    fn no_newline_markers() {
        let text = "diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n";
        let d = parse(&lines(text)).unwrap().unwrap();
        let h = &d.files[0].fragments[0];
        assert_eq!(h.old, vec![b"a\n".to_vec(), b"b".to_vec()]);
        assert_eq!(h.new, vec![b"a\n".to_vec(), b"c".to_vec()]);
        assert_eq!(crate::hunks::apply_hunks(b"a\nb", &d.files[0].fragments).unwrap().0, b"a\nc");
    }

    #[test]
    fn paths_that_escape_are_refused() {
        for p in ["../etc/passwd", "/etc/passwd", "a/../../b", ".git/config", "x/.GIT/hooks", "x/.git./y"] {
            assert!(check_path(p).is_err(), "{p}");
        }
        check_path("mm/mprotect.c").unwrap();
        check_path("tools/.gitignore").unwrap();
    }
}
