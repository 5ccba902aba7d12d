//! One mail as `git am` sees it: in-body header overrides, the scissors line, the
//! commit message up to the `---` break, and the git diff after it, parsed and checked.
//! Pure: a [`Mail`] in, a [`PatchMail`] out.

use crate::mail::{clean_header, parse_date, Addr, Mail, MailDate};
use anyhow::{bail, Result};
use regex::Regex;
use serde::Serialize;
use std::sync::LazyLock;

/// A `Key: value` line from the end of a commit message or from a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trailer {
    pub key: String,
    pub value: String,
}

/// One file of a git diff.
#[derive(Debug, Clone, Serialize)]
pub struct FileDiff {
    /// None for a new file.
    pub old_path: Option<String>,
    /// None for a deleted file.
    pub new_path: Option<String>,
    /// Abbreviated blob ids from the `index` line, when present.
    pub old_blob: Option<String>,
    pub new_blob: Option<String>,
    pub insertions: usize,
    pub deletions: usize,
    /// Hunk headers in order (`@@ -a,b +c,d @@ ...`), for error messages.
    pub hunks: Vec<String>,
}

impl FileDiff {
    pub fn path(&self) -> &str {
        self.new_path.as_deref().or(self.old_path.as_deref()).unwrap_or("")
    }
}

/// The diff part of a patch: its exact text (what `git apply` would read) and files.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    #[serde(skip)]
    pub text: String,
    pub files: Vec<FileDiff>,
}

/// What `git am` would make of one mail.
#[derive(Debug, Clone, Serialize)]
pub struct PatchMail {
    pub author: Addr,
    pub date: Option<MailDate>,
    /// The subject without `Re:` and `[...]` prefixes.
    pub subject: String,
    /// The commit message exactly as `git am` writes it.
    pub message: String,
    pub trailers: Vec<Trailer>,
    pub diff: Option<Diff>,
    pub base_commit: Option<String>,
    pub prerequisite_patch_ids: Vec<String>,
}

/// git mailinfo's subject cleanup: drop leading `Re:`/`Aw:` and `[...]` groups.
pub fn clean_subject(subject: &str) -> String {
    let mut s = subject.trim_start();
    loop {
        let lower = s.get(..3).map(str::to_ascii_lowercase);
        if matches!(lower.as_deref(), Some("re:") | Some("aw:")) {
            s = s[3..].trim_start();
        } else if s.starts_with('[') {
            match s.find(']') {
                Some(end) => s = s[end + 1..].trim_start(),
                None => break,
            }
        } else if s.starts_with(':') {
            s = s[1..].trim_start();
        } else {
            break;
        }
    }
    s.trim_end().to_string()
}

/// git's stripspace: no trailing white space on lines, no leading or trailing blank
/// lines, runs of blank lines folded to one, a final newline.
pub fn stripspace(text: &str) -> String {
    let mut out = String::new();
    let mut pending_blank = false;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            pending_blank = !out.is_empty();
            continue;
        }
        if pending_blank {
            out.push('\n');
            pending_blank = false;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn is_scissors(line: &str) -> bool {
    static RE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[\s-]*-[\s-]*(?:>8|8<|>%|%<)[\s-]*-").unwrap());
    RE.is_match(line)
}

/// git mailinfo's `patchbreak()`: where the commit message ends.
fn is_patch_break(line: &str) -> bool {
    if line.starts_with("diff -") || line.starts_with("Index: ") {
        return true;
    }
    if let Some(rest) = line.strip_prefix("---") {
        let b = rest.as_bytes();
        if b.first() == Some(&b' ') && b.get(1).is_some_and(|c| !c.is_ascii_whitespace()) {
            return true;
        }
        return rest.chars().all(char::is_whitespace);
    }
    false
}

/// Parses one mail the way `git am --scissors` would.
pub fn parse_patch_mail(mail: &Mail) -> Result<PatchMail> {
    let mut author = mail.from.clone();
    let mut date = mail.date;
    let mut subject = mail.subject.clone();

    let mut lines: Vec<&str> = mail.body.lines().collect();
    if let Some(cut) = lines.iter().position(|l| is_scissors(l)) {
        lines.drain(..=cut);
    }
    // In-body headers: the first non-blank lines, up to a blank line.
    let start = lines.iter().position(|l| !l.trim().is_empty()).unwrap_or(lines.len());
    let mut i = start;
    let mut saw_header = false;
    while i < lines.len() {
        let l = lines[i];
        if let Some(v) = l.strip_prefix("From:") {
            if let Some(a) = parse_addr(v) {
                author = a;
            }
        } else if let Some(v) = l.strip_prefix("Date:") {
            date = parse_date(v.trim()).or(date);
        } else if let Some(v) = l.strip_prefix("Subject:") {
            subject = clean_header(v);
        } else {
            break;
        }
        saw_header = true;
        i += 1;
    }
    let body_start = if saw_header { i } else { start };

    let break_at = lines[body_start..]
        .iter()
        .position(|l| is_patch_break(l))
        .map(|p| body_start + p)
        .unwrap_or(lines.len());
    let log = lines[body_start..break_at].join("\n");
    let subject = clean_subject(&subject);
    let message = stripspace(&format!("{subject}\n\n{log}"));
    let trailers = parse_trailers(&message);

    let rest = &lines[break_at..];
    let diff = parse_diff(rest)?;
    let mut base_commit = None;
    let mut prerequisite_patch_ids = Vec::new();
    // format-patch --base writes these after the diff, or at the end of a cover letter
    // (which has no `---` break).
    for l in &lines {
        if let Some(v) = l.strip_prefix("base-commit: ") {
            base_commit = Some(v.trim().to_string());
        } else if let Some(v) = l.strip_prefix("prerequisite-patch-id: ") {
            prerequisite_patch_ids.push(v.trim().to_string());
        }
    }
    Ok(PatchMail { author, date, subject, message, trailers, diff, base_commit, prerequisite_patch_ids })
}

fn parse_addr(value: &str) -> Option<Addr> {
    let list = mailparse::addrparse(value.trim()).ok()?;
    match list.first()? {
        mailparse::MailAddr::Single(s) => Some(Addr {
            name: clean_header(s.display_name.as_deref().unwrap_or("")),
            email: clean_header(&s.addr),
        }),
        mailparse::MailAddr::Group(_) => None,
    }
}

static TRAILER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([A-Za-z][A-Za-z0-9-]*):\s+(\S.*)$").unwrap());

/// Trailers of a commit message: its last paragraph, when most of it is `Key: value`.
pub fn parse_trailers(message: &str) -> Vec<Trailer> {
    let Some(last) = message.trim_end().rsplit("\n\n").next() else {
        return Vec::new();
    };
    if !message.trim_end().contains("\n\n") {
        return Vec::new(); // the subject alone is never a trailer block
    }
    let lines: Vec<&str> = last.lines().collect();
    let trailers: Vec<Trailer> = lines
        .iter()
        .filter_map(|l| TRAILER.captures(l))
        .map(|c| Trailer { key: c[1].to_string(), value: c[2].trim().to_string() })
        .collect();
    if trailers.len() * 2 >= lines.len() {
        trailers
    } else {
        Vec::new()
    }
}

/// `*-by:` trailers that a reply gives, only those naming the reply's own sender and
/// outside quoted text: what b4 and patchwork pick up.
pub fn reply_trailers(mail: &Mail) -> Vec<Trailer> {
    let from = mail.from.email.to_ascii_lowercase();
    mail.body
        .lines()
        .take_while(|l| *l != "-- ")
        .filter(|l| !l.starts_with('>'))
        .filter_map(|l| TRAILER.captures(l.trim()))
        .filter(|c| {
            let key = c[1].to_ascii_lowercase();
            key.ends_with("-by") && key != "signed-off-by"
        })
        .filter(|c| address_in(&c[2]).is_some_and(|a| a.eq_ignore_ascii_case(&from) && !from.is_empty()))
        .map(|c| Trailer { key: c[1].to_string(), value: clean_header(&c[2]) })
        .collect()
}

fn address_in(value: &str) -> Option<&str> {
    let start = value.rfind('<')? + 1;
    let end = start + value[start..].find('>')?;
    Some(value[start..end].trim())
}

static HUNK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@").unwrap());

/// Parses the git diff after the patch break, keeping exactly its text: hunk line counts
/// decide where it ends, so a signature or a `base-commit:` line after it is not part of
/// it. Paths are checked here, so a diff that escapes the tree never reaches git.
pub fn parse_diff(lines: &[&str]) -> Result<Option<Diff>> {
    let Some(first) = lines.iter().position(|l| l.starts_with("diff --git ")) else {
        if lines.iter().any(|l| l.starts_with("+++ ") || l.starts_with("@@ -")) {
            bail!("the diff is not in git's format (no `diff --git` line); send it with git format-patch");
        }
        return Ok(None);
    };
    let mut files = Vec::new();
    let mut text = String::new();
    let mut i = first;
    while i < lines.len() && lines[i].starts_with("diff --git ") {
        let header = lines[i];
        let mut file = FileDiff {
            old_path: None,
            new_path: None,
            old_blob: None,
            new_blob: None,
            insertions: 0,
            deletions: 0,
            hunks: Vec::new(),
        };
        let (mut a, mut b) = split_git_header(&header["diff --git ".len()..]);
        let mut created = false;
        let mut deleted = false;
        push_line(&mut text, header);
        i += 1;
        // Extended header lines.
        while i < lines.len() {
            let l = lines[i];
            if let Some(v) = l.strip_prefix("index ") {
                let ids = v.split_whitespace().next().unwrap_or("");
                if let Some((o, n)) = ids.split_once("..") {
                    file.old_blob = Some(o.to_string()).filter(|s| !is_zero(s));
                    file.new_blob = Some(n.to_string()).filter(|s| !is_zero(s));
                }
            } else if l.starts_with("new file mode ") {
                created = true;
            } else if l.starts_with("deleted file mode ") {
                deleted = true;
            } else if let Some(p) = l.strip_prefix("rename from ").or_else(|| l.strip_prefix("copy from ")) {
                a = Some(unquote(p));
            } else if let Some(p) = l.strip_prefix("rename to ").or_else(|| l.strip_prefix("copy to ")) {
                b = Some(unquote(p));
            } else if let Some(p) = l.strip_prefix("--- ") {
                if p != "/dev/null" {
                    a = Some(strip_side(&unquote(p), "a/")?);
                }
            } else if let Some(p) = l.strip_prefix("+++ ") {
                if p != "/dev/null" {
                    b = Some(strip_side(&unquote(p), "b/")?);
                }
                push_line(&mut text, l);
                i += 1;
                break;
            } else if l.starts_with("GIT binary patch") || l.starts_with("Binary files ") {
                bail!("binary patches are not supported ({})", file_label(&a, &b));
            } else if !(l.starts_with("old mode ")
                || l.starts_with("new mode ")
                || l.starts_with("similarity index ")
                || l.starts_with("dissimilarity index "))
            {
                break;
            }
            push_line(&mut text, l);
            i += 1;
        }
        // Hunks.
        while i < lines.len() {
            let Some(c) = HUNK.captures(lines[i]) else { break };
            let mut old: usize = c.get(1).map_or(1, |m| m.as_str().parse().unwrap_or(0));
            let mut new: usize = c.get(2).map_or(1, |m| m.as_str().parse().unwrap_or(0));
            file.hunks.push(lines[i].to_string());
            push_line(&mut text, lines[i]);
            i += 1;
            while (old > 0 || new > 0) && i < lines.len() {
                let l = lines[i];
                match l.as_bytes().first() {
                    Some(b' ') | None => {
                        old = old.saturating_sub(1);
                        new = new.saturating_sub(1);
                    }
                    Some(b'-') => {
                        old = old.saturating_sub(1);
                        file.deletions += 1;
                    }
                    Some(b'+') => {
                        new = new.saturating_sub(1);
                        file.insertions += 1;
                    }
                    Some(b'\\') => {}
                    _ => bail!("the diff of {} is truncated or corrupt at line `{}`", file_label(&a, &b), l),
                }
                push_line(&mut text, l);
                i += 1;
            }
            if old > 0 || new > 0 {
                bail!("the diff of {} ends in the middle of a hunk (truncated mail?)", file_label(&a, &b));
            }
            if i < lines.len() && lines[i].starts_with('\\') {
                push_line(&mut text, lines[i]);
                i += 1;
            }
        }
        file.old_path = if created { None } else { a.clone() };
        file.new_path = if deleted { None } else { b.clone() };
        for p in [&file.old_path, &file.new_path].into_iter().flatten() {
            check_path(p)?;
        }
        if file.old_path.is_none() && file.new_path.is_none() {
            bail!("a file in the diff has no path: `{header}`");
        }
        files.push(file);
    }
    Ok(Some(Diff { text, files }))
}

fn push_line(text: &mut String, line: &str) {
    text.push_str(line);
    text.push('\n');
}

fn is_zero(id: &str) -> bool {
    id.bytes().all(|b| b == b'0')
}

fn file_label(a: &Option<String>, b: &Option<String>) -> String {
    b.as_ref().or(a.as_ref()).cloned().unwrap_or_else(|| "a file".to_string())
}

fn strip_side(path: &str, side: &str) -> Result<String> {
    match path.strip_prefix(side) {
        Some(p) => Ok(p.to_string()),
        None => bail!("path `{path}` lacks git's `{side}` prefix; only git diffs are accepted"),
    }
}

/// `a/x b/x` on the `diff --git` line; with spaces in names the two halves must match.
fn split_git_header(rest: &str) -> (Option<String>, Option<String>) {
    if rest.starts_with('"') {
        let mut parts = rest.splitn(2, "\" ");
        let a = parts.next().map(|s| unquote(&format!("{s}\"")));
        let b = parts.next().map(unquote);
        let strip = |p: Option<String>, s: &str| p.and_then(|p| p.strip_prefix(s).map(String::from));
        return (strip(a, "a/"), strip(b, "b/"));
    }
    let half = rest.len() / 2;
    if rest.len() % 2 == 1 && rest.as_bytes().get(half) == Some(&b' ') {
        let (a, b) = (&rest[..half], &rest[half + 1..]);
        if let (Some(x), Some(y)) = (a.strip_prefix("a/"), b.strip_prefix("b/")) {
            if x == y {
                return (Some(x.to_string()), Some(y.to_string()));
            }
        }
    }
    (None, None)
}

/// git's C-style quoting of unusual file names.
fn unquote(p: &str) -> String {
    let p = p.trim_end_matches('\t');
    let Some(inner) = p.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
        return p.to_string();
    };
    let mut out = Vec::new();
    let mut bytes = inner.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(d @ b'0'..=b'7') => {
                let mut v = (d - b'0') as u32;
                for _ in 0..2 {
                    if let Some(d) = bytes.next() {
                        v = v * 8 + (d.wrapping_sub(b'0')) as u32;
                    }
                }
                out.push(v as u8);
            }
            Some(o) => out.push(o),
            None => {}
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_cleaned_like_mailinfo() {
        assert_eq!(clean_subject("Re: [PATCH v2 1/2] mm: x"), "mm: x");
        assert_eq!(clean_subject("[RFC PATCH v3 00/12] [foo] a: b "), "a: b");
        assert_eq!(clean_subject("[PATCH HOTFIX 6.17] mm/mremap: y"), "mm/mremap: y");
    }

    #[test]
    fn stripspace_matches_git() {
        assert_eq!(stripspace("\n\na  \n\n\n\nb\n\n"), "a\n\nb\n");
    }

    #[test]
    fn patch_break_rules() {
        assert!(is_patch_break("---"));
        assert!(is_patch_break("--- "));
        assert!(is_patch_break("--- a/foo"));
        assert!(!is_patch_break("---- not"));
        assert!(!is_patch_break("---x"));
        assert!(is_patch_break("diff --git a/x b/x"));
    }

    #[test]
    fn paths_that_escape_are_refused() {
        for p in ["../etc/passwd", "/etc/passwd", "a/../../b", ".git/config", "x/.GIT/hooks", "x/.git./y"] {
            assert!(check_path(p).is_err(), "{p}");
        }
        check_path("mm/mprotect.c").unwrap();
        check_path("tools/.gitignore").unwrap();
    }

    #[test]
    fn diff_ends_where_its_hunks_end() {
        let text = "diff --git a/f b/f\nindex 1111111..2222222 100644\n--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n\nbase-commit: abc\n-- \n2.47.0\n";
        let lines: Vec<&str> = text.lines().collect();
        let d = parse_diff(&lines).unwrap().unwrap();
        assert_eq!(d.files.len(), 1);
        assert_eq!((d.files[0].insertions, d.files[0].deletions), (1, 1));
        assert_eq!(d.files[0].old_blob.as_deref(), Some("1111111"));
        assert!(d.text.ends_with("+c\n"), "{}", d.text);
    }

    #[test]
    fn quoted_names_and_renames() {
        let text = "diff --git \"a/sp ace\" \"b/sp ace\"\nsimilarity index 100%\nrename from \"sp ace\"\nrename to \"caf\\303\\251\"\n";
        let lines: Vec<&str> = text.lines().collect();
        let d = parse_diff(&lines).unwrap().unwrap();
        assert_eq!(d.files[0].old_path.as_deref(), Some("sp ace"));
        assert_eq!(d.files[0].new_path.as_deref(), Some("café"));
    }
}
