//! One mail as `git am` sees it: in-body header overrides, the scissors line, the
//! commit message up to the `---` break, and the git diff after it, parsed and checked.
//! Pure: a [`Mail`] in, a [`PatchMail`] out.

use crate::diff::{self, Diff};
use crate::mail::{clean_header, decode, parse_date, Addr, Mail, MailDate};
use anyhow::Result;
use regex::Regex;
use serde::Serialize;
use std::sync::LazyLock;

pub use crate::diff::check_path;

/// A `Key: value` line from the end of a commit message or from a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trailer {
    pub key: String,
    pub value: String,
}

/// What `git am` would make of one mail.
#[derive(Debug, Clone, Serialize)]
pub struct PatchMail {
    pub author: Addr,
    pub date: Option<MailDate>,
    /// The subject without `Re:` and `[...]` prefixes.
    pub subject: String,
    /// The commit message exactly as `git am` writes it, for reading.
    pub message: String,
    /// Its bytes: converted to UTF-8 from a declared charset, else as sent (which may
    /// not be UTF-8: git keeps such bytes too).
    #[serde(skip)]
    pub message_bytes: Vec<u8>,
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

/// git's stripspace over bytes: no trailing white space on lines (ASCII's, as C's
/// `isspace`), no leading or trailing blank lines, runs of blank lines folded to one,
/// a final newline.
pub fn stripspace_bytes(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pending_blank = false;
    for line in text.split(|&b| b == b'\n') {
        let end = line.iter().rposition(|b| !b" \t\r\x0b\x0c".contains(b)).map_or(0, |p| p + 1);
        let line = &line[..end];
        if line.is_empty() {
            pending_blank = !out.is_empty();
            continue;
        }
        if pending_blank {
            out.push(b'\n');
            pending_blank = false;
        }
        out.extend_from_slice(line);
        out.push(b'\n');
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
    let (mut pm, lines, break_at) = message_part(mail);
    pm.diff = diff::parse(&lines[break_at..])?;
    Ok(pm)
}

/// Only the message of a mail (a cover letter, or to see whether a mail is a reply):
/// never fails, its diff is not read.
pub fn parse_message_only(mail: &Mail) -> PatchMail {
    message_part(mail).0
}

/// Whether the mail carries something `git apply` would take as a diff.
pub fn has_diff(mail: &Mail) -> bool {
    let (_, lines, break_at) = message_part(mail);
    !matches!(diff::parse(&lines[break_at..]), Ok(None))
}

/// The message, and the body's lines with where the patch part starts.
fn message_part(mail: &Mail) -> (PatchMail, Vec<&[u8]>, usize) {
    let mut author = mail.from.clone();
    let mut date = mail.date;
    let mut subject = mail.subject.clone();
    let charset = mail.charset.as_deref();
    let text = |b: &[u8]| decode(b, charset);

    let raw = &mail.raw_body[..];
    let mut lines: Vec<&[u8]> = raw.split(|&b| b == b'\n').collect();
    if raw.ends_with(b"\n") {
        lines.pop();
    }
    if let Some(cut) = lines.iter().position(|l| is_scissors(&text(l))) {
        lines.drain(..=cut);
    }
    // In-body headers: the first non-blank lines, up to a blank line.
    let start = lines.iter().position(|l| !l.trim_ascii().is_empty()).unwrap_or(lines.len());
    let mut i = start;
    let mut saw_header = false;
    while i < lines.len() {
        let l = text(lines[i]);
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
        .position(|l| is_patch_break(&String::from_utf8_lossy(l)))
        .map(|p| body_start + p)
        .unwrap_or(lines.len());
    let log = lines[body_start..break_at].join(&b'\n');
    // Only the message is converted from its charset (git mailinfo's convert_to_utf8).
    let log = match charset {
        Some(_) => text(&log).into_bytes(),
        None => log,
    };
    let subject = clean_subject(&subject);
    let message_bytes = stripspace_bytes(&[subject.as_bytes(), b"\n\n", &log].concat());
    let message = String::from_utf8_lossy(&message_bytes).into_owned();
    let trailers = parse_trailers(&message);

    let mut base_commit = None;
    let mut prerequisite_patch_ids = Vec::new();
    // format-patch --base writes these after the diff, or at the end of a cover letter
    // (which has no `---` break).
    for l in &lines {
        let l = String::from_utf8_lossy(l);
        if let Some(v) = l.strip_prefix("base-commit: ") {
            base_commit = Some(v.trim().to_string());
        } else if let Some(v) = l.strip_prefix("prerequisite-patch-id: ") {
            prerequisite_patch_ids.push(v.trim().to_string());
        }
    }
    let pm = PatchMail {
        author,
        date,
        subject,
        message,
        message_bytes,
        trailers,
        diff: None,
        base_commit,
        prerequisite_patch_ids,
    };
    (pm, lines, break_at)
}

/// One address, RFC 2047 words decoded (an in-body `From:` is a header, as mailinfo
/// decodes it).
fn parse_addr(value: &str) -> Option<Addr> {
    let line = format!("From: {}", value.trim());
    let (header, _) = mailparse::parse_header(line.as_bytes()).ok()?;
    let list = mailparse::addrparse_header(&header).ok()?;
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

/// Trailers that a reply gives, as b4 0.16 collects them (`find_trailers(followup=True)`
/// and `get_trailers()`): outside quoted text and above the signature; a person's
/// trailer (`Reviewed-by:`, `Tested-by:`, ...) only when its address (or name) is the
/// reply's own sender; `Link:`, `Closes:`, `Fixes:` from anyone; Outlook's
/// `a@b.c<mailto:a@b.c>` cleaned to `a@b.c`.
pub fn reply_trailers(mail: &Mail) -> Vec<Trailer> {
    found_trailers(&mail.body)
        .into_iter()
        .filter(|t| !BAD_TRAILERS.contains(&t.key.to_ascii_lowercase().as_str()))
        .filter_map(|t| {
            let lname = t.key.to_ascii_lowercase();
            if UTILITY.contains(&lname.as_str()) || t.value.contains("://") || !PERSON.is_match(&t.value) {
                return Some(t); // not a person: nobody to match
            }
            let value = MAILTO.replace_all(&t.value, "").into_owned();
            let (name, email) = match ADDR.captures(&value) {
                Some(c) => (c[1].trim().to_string(), c[2].trim().to_string()),
                None => {
                    let a = parse_addr(&value)?;
                    (a.name, a.email)
                }
            };
            let value =
                if name.is_empty() || name == email { email.clone() } else { format!("{name} <{email}>") };
            let from = &mail.from;
            let matches = email_eq(&email, &from.email)
                || (!name.is_empty() && name.to_lowercase() == from_name(from).to_lowercase());
            matches.then(|| Trailer { key: t.key, value: clean_header(&value) })
        })
        .collect()
}

/// b4 takes an empty display name as the address itself.
fn from_name(a: &Addr) -> &str {
    if a.name.trim().is_empty() {
        &a.email
    } else {
        &a.name
    }
}

static PERSON: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\S+@\S+\.\S+").unwrap());
static MAILTO: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"<mailto:[^>]+>").unwrap());
static ADDR: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^(.*?)\s*<([^>]+)>\s*$").unwrap());
const UTILITY: &[&str] = &[
    "fixes",
    "link",
    "buglink",
    "closes",
    "obsoleted-by",
    "message-id",
    "change-id",
    "base-commit",
    "based-on",
];
const BAD_TRAILERS: &[&str] = &[
    "from",
    "author",
    "cc",
    "to",
    "date",
    "subject",
    "subscribe",
    "unsubscribe",
    "base-commit",
    "change-id",
    "message-id",
];

/// b4's `email_eq`: the same address, also with a `+tag` dropped or one domain a
/// subdomain of the other.
fn email_eq(ours: &str, theirs: &str) -> bool {
    let (ours, theirs) = (ours.to_lowercase(), theirs.to_lowercase());
    if ours == theirs {
        return !ours.is_empty();
    }
    static TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\+[^@]+@").unwrap());
    let (ours, theirs) = (TAG.replace(&ours, "@").into_owned(), TAG.replace(&theirs, "@").into_owned());
    if ours == theirs {
        return true;
    }
    let (Some((ol, od)), Some((tl, td))) = (ours.split_once('@'), theirs.split_once('@')) else {
        return false;
    };
    ol == tl
        && od.matches('.').count().abs_diff(td.matches('.').count()) == 1
        && (od.ends_with(&format!(".{td}")) || td.ends_with(&format!(".{od}")))
}

/// b4's `find_trailers(body, followup=True)`: every line that looks like a trailer a
/// follow-up may give, before any filtering by sender.
fn found_trailers(body: &str) -> Vec<Trailer> {
    static LINE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\s*(\w\S+):\s+(\S.*)").unwrap());
    static WRAPPED_FIXES: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?m)^(\S+:\s+[\da-f]+\s+\([^)]+)\n([^\n]+\))").unwrap());
    static WRAPPED_ADDR: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?m)^(\S+:\s+[^<\n]+)\n(<[^>\n]+>)$").unwrap());
    static HASH: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[0-9a-f]{6,}").unwrap());
    static LINK: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"https?://").unwrap());
    static EXTINFO: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^(.*\S+)(\s+#[^#]+)$").unwrap());
    const IGNORES: &[&str] = &["phone", "mail", "email", "e-mail", "prerequisite-message-id"];
    const HEADERS: &[&str] = &["subject", "date", "from"];
    const LINKS: &[&str] = &["link", "buglink", "closes"];
    const NONPERSON: &[&str] = &[
        "link",
        "buglink",
        "closes",
        "fixes",
        "subject",
        "date",
        "obsoleted-by",
        "change-id",
        "base-commit",
    ];

    let body = body.split("\n-- \n").next().unwrap_or("").trim().to_string() + "\n";
    let body = WRAPPED_FIXES.replace_all(&body, "$1 $2");
    let body = WRAPPED_ADDR.replace_all(&body, "$1 $2");
    let mut out = Vec::new();
    let mut others = 0;
    for line in body.split('\n') {
        let line = line.trim_matches('\r');
        let Some(c) = LINE.captures(line) else {
            others += 1;
            continue;
        };
        let (name, value) = (c[1].to_string(), c[2].to_string());
        let lname = name.to_ascii_lowercase();
        if IGNORES.contains(&lname.as_str()) || (others > 0 && HEADERS.contains(&lname.as_str())) {
            continue;
        }
        if !name.is_ascii() {
            continue;
        }
        if !PERSON.is_match(&value) && !NONPERSON.contains(&lname.as_str()) {
            continue;
        }
        if LINK.is_match(&value) && !LINKS.contains(&lname.as_str()) {
            continue;
        }
        if lname == "fixes" && !HASH.is_match(&value) {
            continue;
        }
        let value = match EXTINFO.captures(&value) {
            Some(e) => e[1].to_string(),
            None => value,
        };
        out.push(Trailer { key: name, value });
    }
    out
}

/// Whether a mail without `Re:` is still a reply as b4 sees it: it is in a thread,
/// carries no diff, and gives trailers.
pub fn looks_like_reply(mail: &Mail) -> bool {
    (mail.in_reply_to.is_some() || !mail.references.is_empty())
        && !found_trailers(&mail.body).is_empty()
        && !has_diff(mail)
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
        assert_eq!(stripspace_bytes(b"\n\na  \n\n\n\nb\n\n"), b"a\n\nb\n");
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
}
