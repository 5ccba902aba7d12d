//! A series by message-id or lore link: where a FILE is taken, a `<message-id>`, a bare
//! `id@host`, or `https://lore.kernel.org/<list>/<message-id>/` fetches the whole thread
//! the way b4 does (`<base>/<message-id>/t.mbox.gz` from a public-inbox HTTP server,
//! redirects followed) into the cache, so a run is reproducible offline. The parsing of
//! the argument is pure; [`fetch`] is the one IO step (curl).

use crate::http::curl;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// lore's archive of every list; public-inbox redirects `all/` to the list that has it.
pub const DEFAULT_BASE: &str = "https://lore.kernel.org/all/";

/// What a FILE argument names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    /// A thread in a public-inbox archive: its base URL (ending in `/`) and a
    /// message-id in it (without `<>`).
    Archive {
        base: String,
        msgid: String,
    },
}

/// Classifies `arg`: an existing path stays a file; a URL of a message in an archive
/// gives its base and message-id; `<id@host>` or `id@host` is a message-id in `base`.
pub fn classify(arg: &str, base: &str, exists: bool) -> Result<Source> {
    if exists {
        return Ok(Source::File(arg.into()));
    }
    if let Some(rest) = arg.strip_prefix("https://").or_else(|| arg.strip_prefix("http://")) {
        let scheme = &arg[..arg.len() - rest.len()];
        // host/list/<msgid>/[T/|t/|t.mbox.gz|raw|#...]
        let rest = rest.split(['#', '?']).next().unwrap_or(rest);
        let parts: Vec<&str> = rest.split('/').collect();
        let at = parts.iter().position(|p| p.contains('@') || p.contains("%40"));
        let Some(at) = at.filter(|&i| i >= 1) else {
            bail!("{arg}: not a link to a message (expected https://lore.kernel.org/<list>/<message-id>/)");
        };
        let msgid = percent_decode(parts[at]);
        let base = format!("{scheme}{}/", parts[..at].join("/"));
        return Ok(Source::Archive { base, msgid: check_msgid(arg, &msgid)? });
    }
    let id = arg.trim().trim_start_matches('<').trim_end_matches('>');
    if id.contains('@') && !id.contains('/') && !id.contains(char::is_whitespace) {
        let base = if base.ends_with('/') { base.to_string() } else { format!("{base}/") };
        return Ok(Source::Archive { base, msgid: check_msgid(arg, id)? });
    }
    bail!("cannot read {arg}: give an mbox, a patch, a directory of patches, a message-id or a lore link")
}

fn check_msgid(arg: &str, id: &str) -> Result<String> {
    if id.is_empty() || id.len() > 998 || id.chars().any(|c| c.is_control() || c == '<' || c == '>') {
        bail!("{arg}: not a message-id");
    }
    Ok(id.to_string())
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A message-id as a path segment, escaped as b4 does (`urllib.parse.quote` with `@`
/// kept).
pub fn escape(msgid: &str) -> String {
    quote(msgid, b"@", false)
}

/// The thread's URL (`t.mbox.gz`).
pub fn thread_url(base: &str, msgid: &str) -> String {
    format!("{base}{}/t.mbox.gz", escape(msgid))
}

/// Fetches the thread of `msgid` from the archive at `base` into `dir` (a file named by
/// the message-id's hash) and checks that it is a whole gzip'd mbox holding that
/// message; returns the file and the URL it came from. Nothing is left behind on an
/// error.
pub fn fetch(base: &str, msgid: &str, dir: &Path) -> Result<(PathBuf, String)> {
    let url = thread_url(base, msgid);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = git2::Oid::hash_object(git2::ObjectType::Blob, msgid.as_bytes())
        .map(|o| o.to_string()[..16].to_string())
        .unwrap_or_else(|_| "thread".into());
    let dest = dir.join(format!("{name}.mbox.gz"));
    let part = dir.join(format!("{name}.mbox.gz.part"));
    let got = curl(&["--fail", "--max-filesize", "268435456"], &url, &part, None)?;
    let checked = (|| -> Result<()> {
        let (code, said) = (&got.status, got.said.trim_start_matches("curl: "));
        match got.exit {
            Some(0) => {}
            Some(22) if code == "404" || code == "410" => {
                bail!("{url}: {code}: the archive has no message <{msgid}>; check the message-id, or give the archive with --lore URL")
            }
            Some(22) => bail!("{url}: the archive answered HTTP {code}; try again later, or save the thread and give the file"),
            Some(6) | Some(7) | Some(28) => {
                bail!("cannot reach {url} ({said}); without network, save the thread (t.mbox.gz) and give the file")
            }
            _ => bail!("cannot fetch {url}: {said}"),
        }
        let mails =
            gzip_mails(&std::fs::read(&part)?, &url, "is --lore a public-inbox archive?", "the thread")?;
        if !mails.iter().any(|m| m.message_id.as_deref() == Some(msgid)) {
            bail!("{url}: the thread does not hold <{msgid}> ({} messages came back)", mails.len());
        }
        Ok(())
    })();
    match checked {
        Ok(()) => {
            std::fs::rename(&part, &dest)?;
            Ok((dest, url))
        }
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            Err(e)
        }
    }
}

/// A newer revision of `series` in the archive at `base`: its version and the
/// Message-ID of its cover letter (or first patch). Searched as b4 does: the cleaned
/// subject and the author's address, from the series' date on (public-inbox search,
/// `?x=m&q=...` by POST; the archive needs its search index).
pub fn newer(base: &str, series: &crate::series::Series) -> Result<Option<(u32, String)>> {
    let subject = crate::patch::clean_subject(&series.subject()).replace('"', "");
    let Some(author) = series.author() else { return Ok(None) };
    let date = series.cover.as_ref().and_then(|c| c.date).map(|d| d.timestamp).unwrap_or(0);
    let (y, m, d) = crate::series::civil_from_days(date.div_euclid(86400));
    let day = format!("{y:04}{m:02}{d:02}");
    crate::progress::say(&format!("searching {base} for a revision newer than v{}", series.version));
    let query = format!("(s:\"{subject}\" AND f:\"{}\") AND d:{day}..", author.email);
    let url = format!("{base}?x=m&q={}", escape_query(&query));
    let dir = crate::reftree::cache_root().join("lore");
    std::fs::create_dir_all(&dir)?;
    let part = dir.join("search.mbox.gz.part");
    let got = curl(&["-X", "POST", "--data", "x=m"], &url, &part, None)?;
    let bytes = std::fs::read(&part).unwrap_or_default();
    let _ = std::fs::remove_file(&part);
    match (got.exit, got.status.as_str()) {
        (Some(0), "200") => {}
        // public-inbox answers 404 when nothing matches.
        (Some(0), "404") => return Ok(None),
        (Some(0), c) => {
            bail!("{base}: searching for newer revisions: HTTP {c}; does the archive have a search index?")
        }
        _ => bail!(
            "cannot reach {base} to search for newer revisions ({}); run without --check-newer",
            got.said.trim_start_matches("curl: ")
        ),
    }
    let mails = gzip_mails(&bytes, &url, "does the archive have a search index?", "the search answer")?;
    let want = crate::patch::clean_subject(&series.subject());
    Ok(mails
        .iter()
        .filter_map(|m| {
            let tag = crate::series::parse_subject(&m.subject);
            let same = crate::patch::clean_subject(&m.subject) == want && m.from.email == author.email;
            (tag.is_patch && !tag.is_reply && same && tag.revision > series.version).then(|| {
                (tag.revision, tag.position.map_or(1, |p| p.0), m.message_id.clone().unwrap_or_default())
            })
        })
        // The newest revision, its cover (0/N) or else its first patch.
        .min_by_key(|(v, n, _)| (std::cmp::Reverse(*v), *n))
        .map(|(v, _, id)| (v, id)))
}

/// A search query for a URL (`urllib.parse.quote_plus`, as b4 sends it).
fn escape_query(q: &str) -> String {
    quote(q, b"", true)
}

/// Percent-encoding with `safe` kept besides the unreserved characters; a space as
/// `+` with `plus` (form encoding).
fn quote(s: &str, safe: &[u8], plus: bool) -> String {
    s.bytes()
        .map(|c| match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (c as char).to_string(),
            c if safe.contains(&c) => (c as char).to_string(),
            b' ' if plus => "+".to_string(),
            _ => format!("%{c:02X}"),
        })
        .collect()
}

/// The messages of a gzip'd mbox answer from `url` (`what` it is, for the errors).
fn gzip_mails(bytes: &[u8], url: &str, hint: &str, what: &str) -> Result<Vec<crate::mail::Mail>> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        let start = String::from_utf8_lossy(&bytes[..bytes.len().min(40)]).replace(['\n', '\r'], " ");
        bail!("{url} did not answer with a gzip'd mbox (it starts with {start:?}): {hint}");
    }
    Ok(crate::mail::split_container(bytes)
        .with_context(|| format!("{url}: {what} is damaged (truncated?); fetch it again"))?
        .iter()
        .enumerate()
        .filter_map(|(i, raw)| crate::mail::parse_message(raw, i).ok())
        .collect())
}

/// The archive for a run: the one the thread came from, else `--lore`, `lore.url`,
/// lore's `all/`.
pub fn archive_of(source: Option<&str>, lore: Option<&str>) -> Result<String> {
    if let Some(url) = source {
        if let Ok(Source::Archive { base, .. }) = classify(url, DEFAULT_BASE, false) {
            return Ok(base);
        }
    }
    Ok(match lore {
        Some(b) if b.ends_with('/') => b.to_string(),
        Some(b) => format!("{b}/"),
        None => crate::config::config()?.lore.map(|l| l.url).unwrap_or_else(|| DEFAULT_BASE.into()),
    })
}

/// A FILE argument made a local file: as it is, or the thread fetched from the archive
/// (`lore`: `--lore`, else `lore.url` of mmeval.yaml, else lore.kernel.org/all/).
/// With the URL it came from.
pub fn resolve(arg: &str, lore: Option<&str>) -> Result<(PathBuf, Option<String>)> {
    let exists = Path::new(arg).exists();
    let base = match lore {
        Some(b) => b.to_string(),
        None if exists => String::new(),
        None => crate::config::config()?.lore.map(|l| l.url).unwrap_or_else(|| DEFAULT_BASE.into()),
    };
    match classify(arg, &base, exists)? {
        Source::File(p) => Ok((p, None)),
        Source::Archive { base, msgid } => {
            crate::progress::say(&format!("fetching the thread of <{msgid}> from {base}"));
            let (file, url) = fetch(&base, &msgid, &crate::reftree::cache_root().join("lore"))?;
            Ok((file, Some(url)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_file_argument_names() {
        let b = DEFAULT_BASE;
        let arch = |base: &str, id: &str| Source::Archive { base: base.into(), msgid: id.into() };
        assert_eq!(classify("x.mbox", b, true).unwrap(), Source::File("x.mbox".into()));
        assert_eq!(
            classify("<20261110.5151-0-mira@example.org>", b, false).unwrap(),
            arch(b, "20261110.5151-0-mira@example.org")
        );
        assert_eq!(
            classify("a.b@c", "http://127.0.0.1:9/test", false).unwrap(),
            arch("http://127.0.0.1:9/test/", "a.b@c")
        );
        for url in [
            "https://lore.kernel.org/linux-mm/20261110.5151-0-mira@example.org/",
            "https://lore.kernel.org/linux-mm/20261110.5151-0-mira@example.org/T/#u",
            "https://lore.kernel.org/linux-mm/20261110.5151-0-mira%40example.org/t.mbox.gz",
        ] {
            assert_eq!(
                classify(url, b, false).unwrap(),
                arch("https://lore.kernel.org/linux-mm/", "20261110.5151-0-mira@example.org"),
                "{url}"
            );
        }
        assert!(classify("https://lore.kernel.org/linux-mm/", b, false)
            .unwrap_err()
            .to_string()
            .contains("not a link to a message"));
        assert!(classify("no-such-file.mbox", b, false)
            .unwrap_err()
            .to_string()
            .contains("cannot read no-such-file.mbox"));
        assert!(classify("<a\u{1b}[2J@b>", b, false).unwrap_err().to_string().contains("not a message-id"));
    }

    #[test]
    fn message_ids_are_escaped_in_urls() {
        assert_eq!(
            thread_url("https://lore.kernel.org/all/", "a/b c$(x)@d"),
            "https://lore.kernel.org/all/a%2Fb%20c%24%28x%29@d/t.mbox.gz"
        );
    }
}
