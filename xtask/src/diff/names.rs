//! File names in a diff as git reads them: the `diff --git` line's (quoted, or with
//! spaces when both halves agree), `---`/`+++` names up to a tab, traditional names
//! with their timestamps, `-p1`, C-style quoting; and the check every path from mail
//! passes before it can reach a tree.

use super::lossy;
use anyhow::{bail, Result};
use regex::bytes::Regex;
use std::sync::LazyLock;

/// Drops the first path component (`-p1`).
pub(super) fn strip_component(name: &[u8]) -> Option<&[u8]> {
    let slash = name.iter().position(|&b| b == b'/')?;
    Some(&name[slash + 1..])
}

/// The name on a `diff --git` line, when both halves name the same file (git's
/// `git_header_name()`): quoted halves, or unquoted ones that may contain spaces.
pub(super) fn git_header_name(rest: &[u8]) -> Option<Vec<u8>> {
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
pub(super) fn find_name(v: &[u8]) -> Result<Vec<u8>> {
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
pub(super) fn traditional_name(v: &[u8], def: Option<&[u8]>) -> Result<Vec<u8>> {
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

pub(super) fn squash_slashes(name: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(name.len());
    for &b in name {
        if b == b'/' && out.last() == Some(&b'/') {
            continue;
        }
        out.push(b);
    }
    out
}

pub(super) fn is_dev_null(v: &[u8]) -> bool {
    v.starts_with(b"/dev/null") && v.get(9).is_none_or(|b| b.is_ascii_whitespace())
}

/// `diff -N` marks a created or deleted file with the epoch as its date.
pub(super) fn has_epoch_timestamp(v: &[u8]) -> bool {
    static EPOCH: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?:1970-01-01 00:00:00|1969-12-31 \d\d:00:00)(?:\.0+)?(?: ?[+-]\d{4})?\s*$").unwrap()
    });
    EPOCH.is_match(v)
}

/// git's C-style quoted name at the start of `v`: the bytes and what follows it.
pub(super) fn quoted_prefix(v: &[u8]) -> Option<(Vec<u8>, &[u8])> {
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
pub(super) fn unquote(v: &[u8]) -> Vec<u8> {
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
