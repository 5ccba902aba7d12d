//! The diff of a patch mail as `git apply -p1` reads it, and its hunks applied to a
//! file's bytes as `git apply` applies them. Pure: bytes in, bytes out.
//!
//! Both halves follow git's `apply.c`: headers are found the way `find_header()` finds
//! them (git diffs and traditional `diff -u`/quilt diffs; lines between files are
//! skipped), a hunk must match its context exactly, and a hunk whose context moved is
//! searched for at other lines in `find_pos()`'s order (forward one, back one, ...),
//! with no fuzz. The bytes of the diff are never re-encoded: file names and contents
//! reach the tree exactly as sent.

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

/// Drops the first path component (`-p1`).
fn strip_component(name: &[u8]) -> Option<&[u8]> {
    let slash = name.iter().position(|&b| b == b'/')?;
    Some(&name[slash + 1..])
}

/// The name on a `diff --git` line, when both halves name the same file (git's
/// `git_header_name()`): quoted halves, or unquoted ones that may contain spaces.
fn git_header_name(rest: &[u8]) -> Option<Vec<u8>> {
    if rest.first() == Some(&b'"') {
        let (first, after) = quoted_prefix(rest)?;
        let first = strip_component(&first)?.to_vec();
        let after = after.strip_prefix(b" ")?;
        let second = if after.first() == Some(&b'"') { quoted_prefix(after)?.0 } else { after.to_vec() };
        return (strip_component(&second)? == first.as_slice()).then_some(first);
    }
    let name = strip_component(rest)?;
    for (len, &b) in name.iter().enumerate() {
        if b != b' ' && b != b'\t' {
            continue;
        }
        let tail = &name[len + 1..];
        let second = if tail.first() == Some(&b'"') {
            quoted_prefix(tail).map(|(q, _)| q)
        } else {
            Some(tail.to_vec())
        };
        if let Some(second) = second {
            if strip_component(&second) == Some(&name[..len]) {
                return Some(name[..len].to_vec());
            }
        }
    }
    None
}

/// `--- a/x` in a git diff: a quoted name, or up to a tab; then `-p1`.
fn find_name(v: &[u8]) -> Result<Vec<u8>> {
    let name = if v.first() == Some(&b'"') {
        quoted_prefix(v).map(|(q, _)| q).unwrap_or_else(|| v.to_vec())
    } else {
        v.split(|&b| b == b'\t').next().unwrap_or(v).to_vec()
    };
    match strip_component(&name) {
        Some(n) if !n.is_empty() => Ok(squash_slashes(n)),
        _ => {
            bail!("path `{}` has no leading directory to strip (git apply -p1)", lossy(&name).escape_debug())
        }
    }
}

/// A name on a traditional `---`/`+++` line: up to a tab or a trailing date, then
/// `-p1`; the shorter of the two names when one extends the other (`x.orig`).
fn traditional_name(v: &[u8], def: Option<&[u8]>) -> Result<Vec<u8>> {
    if v.first() == Some(&b'"') {
        if let Some((q, _)) = quoted_prefix(v) {
            if let Some(n) = strip_component(&q) {
                return Ok(squash_slashes(n));
            }
        }
    }
    static DATE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?(?: ?[+-]\d{4})?\s*$").unwrap()
    });
    let mut name = v.split(|&b| b == b'\t').next().unwrap_or(v);
    if let Some(m) = DATE.find(name) {
        name = &name[..m.start()];
    }
    let Some(stripped) = strip_component(name).filter(|n| !n.is_empty()) else {
        bail!("path `{}` has no leading directory to strip (git apply -p1)", lossy(name).escape_debug());
    };
    let stripped = squash_slashes(stripped);
    if let Some(d) = def {
        if d.len() < stripped.len() && stripped.starts_with(d) {
            return Ok(d.to_vec());
        }
    }
    Ok(stripped)
}

fn squash_slashes(name: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(name.len());
    for &b in name {
        if b == b'/' && out.last() == Some(&b'/') {
            continue;
        }
        out.push(b);
    }
    out
}

fn is_dev_null(v: &[u8]) -> bool {
    v.starts_with(b"/dev/null") && v.get(9).is_none_or(|b| b.is_ascii_whitespace())
}

/// `diff -N` marks a created or deleted file with the epoch as its date.
fn has_epoch_timestamp(v: &[u8]) -> bool {
    static EPOCH: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?:1970-01-01 00:00:00|1969-12-31 \d\d:00:00)(?:\.0+)?(?: ?[+-]\d{4})?\s*$").unwrap()
    });
    EPOCH.is_match(v)
}

/// git's C-style quoted name at the start of `v`: the bytes and what follows it.
fn quoted_prefix(v: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let mut out = Vec::new();
    let mut k = 1;
    while k < v.len() {
        match v[k] {
            b'"' => return Some((out, &v[k + 1..])),
            b'\\' => {
                k += 1;
                let c = *v.get(k)?;
                match c {
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    b'a' => out.push(0x07),
                    b'b' => out.push(0x08),
                    b'f' => out.push(0x0c),
                    b'r' => out.push(b'\r'),
                    b'v' => out.push(0x0b),
                    b'0'..=b'3' => {
                        let d = v.get(k..k + 3)?;
                        if !d.iter().all(|b| (b'0'..=b'7').contains(b)) {
                            return None;
                        }
                        out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                        k += 2;
                    }
                    other => out.push(other),
                }
            }
            b => out.push(b),
        }
        k += 1;
    }
    None
}

/// A `rename from`/`copy to` value: quoted, or the rest of the line.
fn unquote(v: &[u8]) -> Vec<u8> {
    if v.first() == Some(&b'"') {
        if let Some((q, _)) = quoted_prefix(v) {
            return q;
        }
    }
    v.to_vec()
}

/// A path from mail must stay inside the tree and out of `.git`.
pub fn check_path(path: &str) -> Result<()> {
    let bad = |why: &str| -> Result<()> {
        bail!("path `{}` {why}; refusing the series, nothing was written", path.escape_debug())
    };
    if path.is_empty() {
        return bad("is empty");
    }
    if path.starts_with('/') {
        return bad("is absolute and escapes the tree");
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return bad("contains control characters or backslashes");
    }
    for part in path.split('/') {
        match part {
            "" | "." => return bad("is not a normalised relative path"),
            ".." => return bad("escapes the tree through `..`"),
            p if p.trim_end_matches(['.', ' ']).eq_ignore_ascii_case(".git") => {
                return bad("points into `.git`")
            }
            _ => {}
        }
    }
    Ok(())
}

/// Where a hunk went: 1-based, and how far from where its header said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub hunk: usize,
    pub line: usize,
    pub offset: isize,
}

/// The hunk that matched nowhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoMatch {
    pub hunk: usize,
    pub header: String,
    /// The line its header names.
    pub line: usize,
}

/// Applies `hunks` to `content` in order, as `git apply` does without `-C` or
/// whitespace options: exact context, searched outwards from the line the header gives
/// (adjusted by earlier hunks), a hunk at line 1 only at the start and one without
/// trailing context only at the end, no hunk over lines an earlier one wrote.
/// Returns the new content and the hunks that landed at an offset.
pub fn apply_hunks(content: &[u8], hunks: &[Hunk]) -> std::result::Result<(Vec<u8>, Vec<Placed>), NoMatch> {
    let mut img: Vec<Vec<u8>> = content.split_inclusive(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    let mut patched = vec![false; img.len()];
    let mut moved = Vec::new();
    for (k, h) in hunks.iter().enumerate() {
        let match_beginning = h.old_start <= 1;
        let match_end = h.trailing == 0;
        let pos = h.new_start.saturating_sub(1);
        let Some(at) = find_pos(&img, &patched, &h.old, pos, match_beginning, match_end) else {
            return Err(NoMatch { hunk: k + 1, header: h.header.clone(), line: h.old_start });
        };
        if at != pos {
            moved.push(Placed { hunk: k + 1, line: at + 1, offset: at as isize - pos as isize });
        }
        img.splice(at..at + h.old.len(), h.new.iter().cloned());
        patched.splice(at..at + h.old.len(), std::iter::repeat_n(true, h.new.len()));
    }
    Ok((img.concat(), moved))
}

/// git's `find_pos()`: the expected line first, then one forward, one back, two
/// forward, ... until both ends are reached.
fn find_pos(
    img: &[Vec<u8>],
    patched: &[bool],
    pre: &[Vec<u8>],
    line: usize,
    match_beginning: bool,
    match_end: bool,
) -> Option<usize> {
    let nr = img.len();
    let mut line = if match_beginning {
        0
    } else if match_end {
        // A preimage longer than the file starts "before" it: git clamps to the end.
        nr.checked_sub(pre.len()).unwrap_or(nr)
    } else {
        line
    };
    line = line.min(nr);
    let fits = |at: usize| {
        at + pre.len() <= nr
            && (!match_end || at + pre.len() == nr)
            && (!match_beginning || at == 0)
            && (0..pre.len()).all(|k| !patched[at + k] && img[at + k] == pre[k])
    };
    let (mut backwards, mut forwards, mut current) = (line, line, line);
    let mut i = 0usize;
    loop {
        if fits(current) {
            return Some(current);
        }
        loop {
            if backwards == 0 && forwards == nr {
                return None;
            }
            if i & 1 == 1 {
                if backwards == 0 {
                    i += 1;
                    continue;
                }
                backwards -= 1;
                current = backwards;
            } else {
                if forwards == nr {
                    i += 1;
                    continue;
                }
                forwards += 1;
                current = forwards;
            }
            break;
        }
        i += 1;
    }
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
        assert_eq!(apply_hunks(b"a\nb", &d.files[0].fragments).unwrap().0, b"a\nc");
    }

    fn hunk(old_start: usize, new_start: usize, body: &str) -> Hunk {
        let (o, n) = body.lines().fold((0, 0), |(o, n), l| match l.as_bytes().first() {
            Some(b'-') => (o + 1, n),
            Some(b'+') => (o, n + 1),
            _ => (o + 1, n + 1),
        });
        let text =
            format!("diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -{old_start},{o} +{new_start},{n} @@\n{body}");
        parse(&lines(&text)).unwrap().unwrap().files.remove(0).fragments.remove(0)
    }

    #[test]
    fn offsets_are_searched_forward_then_back() {
        let file = b"p\nq\na\nb\nc\nd\ne\n";
        // Made against a file without p and q: applies 2 lines further down.
        let h = hunk(1, 1, "-a\n+A\n b\n c\n");
        assert!(apply_hunks(file, std::slice::from_ref(&h)).is_err(), "a hunk at line 1 is anchored");
        let h = hunk(2, 2, " b\n-c\n+C\n d\n");
        let (out, moved) = apply_hunks(file, std::slice::from_ref(&h)).unwrap();
        assert_eq!(out, b"p\nq\na\nb\nC\nd\ne\n");
        assert_eq!(moved, vec![Placed { hunk: 1, line: 4, offset: 2 }]);
        // Context that occurs twice: the nearer one wins, forward before backward.
        let twice = b"x\nm\ny\nx\nm\ny\nx\nm\ny\n";
        let h = hunk(5, 5, " x\n-m\n+M\n y\n");
        assert_eq!(apply_hunks(twice, &[h]).unwrap().0, b"x\nm\ny\nx\nM\ny\nx\nm\ny\n");
        let h = hunk(3, 3, " x\n-m\n+M\n y\n");
        // From line 3 (0-based 2): forward 3 is x m y at 3 -> taken before backward 0.
        assert_eq!(
            apply_hunks(twice, &[h]).unwrap(),
            (b"x\nm\ny\nx\nM\ny\nx\nm\ny\n".to_vec(), vec![Placed { hunk: 1, line: 4, offset: 1 }])
        );
    }

    #[test]
    fn ends_and_beginnings_are_anchored_and_there_is_no_fuzz() {
        // A hunk at line 1 only applies at the start.
        let h = hunk(1, 1, " a\n-b\n+B\n");
        assert!(apply_hunks(b"z\na\nb\n", std::slice::from_ref(&h)).is_err());
        assert!(apply_hunks(b"a\nb\n", &[h]).is_ok());
        // No trailing context: only at the end.
        let h = hunk(3, 3, " c\n+d\n");
        assert_eq!(apply_hunks(b"a\nb\nc\n", std::slice::from_ref(&h)).unwrap().0, b"a\nb\nc\nd\n");
        assert!(apply_hunks(b"a\nb\nc\nz\n", &[h]).is_err());
        // One context line differs: refused (git applies without fuzz).
        let h = hunk(2, 2, " a\n-b\n+B\n c\n");
        let e = apply_hunks(b"0\na\nb\nC\n", &[h]).unwrap_err();
        assert_eq!((e.hunk, e.line), (1, 2));
    }

    #[test]
    fn a_hunk_never_lands_on_lines_an_earlier_one_wrote() {
        let h1 = hunk(2, 2, " a\n-b\n+a\n+b\n c\n");
        let h2 = hunk(5, 6, " a\n-b\n+X\n c\n");
        // The second hunk's context exists only inside the first one's result.
        assert!(apply_hunks(b"0\na\nb\nc\n", &[h1, h2]).is_err());
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
