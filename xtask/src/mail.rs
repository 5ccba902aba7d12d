//! Mail containers and messages: mbox/mboxrd (optionally gzip'd), a directory of
//! `git format-patch` files, or one `.eml`/`.patch`. Pure: bytes in, [`Mail`] out.
//!
//! Header decoding (RFC 2047, folding) and body decoding (quoted-printable, base64,
//! charsets) are `mailparse`'s job. What is ours: splitting containers, `>From `
//! unescaping, CRLF normalisation, and scrubbing control characters out of header
//! values so that nothing taken from mail can ever become a header line of our own.

use anyhow::{bail, Context, Result};
use regex::Regex;
use serde::Serialize;
use std::sync::LazyLock;

/// A name and an address, as in `From:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Addr {
    pub name: String,
    pub email: String,
}

impl Addr {
    /// `Name <email>`, or the bare address when there is no name.
    pub fn display(&self) -> String {
        if self.name.is_empty() {
            self.email.clone()
        } else {
            format!("{} <{}>", self.name, self.email)
        }
    }
}

/// A `Date:` value: seconds since the epoch and the sender's UTC offset in minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MailDate {
    pub timestamp: i64,
    pub offset_minutes: i32,
}

/// One message, decoded. Header values are single-line and free of control characters.
#[derive(Debug, Clone, Serialize)]
pub struct Mail {
    /// Position in the input (0-based), for messages and tie-breaks.
    pub index: usize,
    /// Without the angle brackets.
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub from: Addr,
    pub to: Vec<Addr>,
    pub cc: Vec<Addr>,
    pub date: Option<MailDate>,
    pub subject: String,
    /// Decoded text with `\n` line ends.
    pub body: String,
}

/// Splits a container into raw messages. gzip is recognised by its magic bytes.
pub fn split_container(bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    let owned;
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(bytes), &mut out)
            .context("the file looks gzip-compressed but does not decompress")?;
        owned = out;
        &owned[..]
    } else {
        bytes
    };
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        bail!("the input is empty: expected an mbox, a patch or a mail");
    }
    if !is_mbox_from_line(first_line(bytes)) {
        // A lone message (.eml, or a .patch without the mbox "From " line).
        return Ok(vec![bytes.to_vec()]);
    }
    let mut messages = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut started = false;
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        if is_mbox_from_line(line) {
            if started {
                messages.push(std::mem::take(&mut current));
            }
            started = true;
            continue;
        }
        current.extend_from_slice(unescape_from(line));
    }
    if started {
        messages.push(current);
    }
    Ok(messages)
}

fn first_line(bytes: &[u8]) -> &[u8] {
    bytes.split(|&b| b == b'\n').next().unwrap_or(&[])
}

/// The mbox separator, `From <sender> <asctime date>`, as git mailsplit recognises it:
/// a plain `From ` at the start of a body line is not one.
fn is_mbox_from_line(line: &[u8]) -> bool {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^From \S+ +(?:\w{3} +)?\w{3} +\d{1,2} +\d{1,2}:\d\d(?::\d\d)? +\d{4}\s*$").unwrap()
    });
    line.starts_with(b"From ") && std::str::from_utf8(line).is_ok_and(|l| RE.is_match(l))
}

/// mboxrd quoting: `>From `, `>>From ` ... lose one `>`.
fn unescape_from(line: &[u8]) -> &[u8] {
    let quotes = line.iter().take_while(|&&b| b == b'>').count();
    if quotes > 0 && line[quotes..].starts_with(b"From ") {
        &line[1..]
    } else {
        line
    }
}

/// Decodes one raw message.
pub fn parse_message(raw: &[u8], index: usize) -> Result<Mail> {
    let parsed = mailparse::parse_mail(raw)
        .with_context(|| format!("message {} is not a readable mail", index + 1))?;
    let headers = &parsed.headers[..];
    let get = |name: &str| mailparse::MailHeaderMap::get_first_value(headers, name).map(|v| clean_header(&v));
    if get("From").is_none() && get("Subject").is_none() {
        bail!(
            "message {} has no From: or Subject: header (a truncated mbox, or not a mail at all)",
            index + 1
        );
    }
    let from = mailparse::MailHeaderMap::get_first_header(headers, "From")
        .map(addresses)
        .and_then(|v| v.into_iter().next())
        .unwrap_or(Addr { name: String::new(), email: String::new() });
    let list = |name: &str| -> Vec<Addr> {
        mailparse::MailHeaderMap::get_all_headers(headers, name).into_iter().flat_map(addresses).collect()
    };
    let ids = |name: &str| get(name).map(|v| message_ids(&v)).unwrap_or_default();
    let body = text_body(&parsed)
        .with_context(|| format!("message {} has a body that cannot be decoded", index + 1))?;
    Ok(Mail {
        index,
        message_id: ids("Message-ID").into_iter().next(),
        in_reply_to: ids("In-Reply-To").into_iter().next(),
        references: ids("References"),
        to: list("To"),
        cc: list("Cc"),
        date: get("Date").and_then(|d| parse_date(&d)),
        subject: get("Subject").unwrap_or_default(),
        from,
        body: normalize_newlines(&body),
    })
}

/// Reads every message of a container; one bad message fails the whole input, naming it.
pub fn parse_container(bytes: &[u8]) -> Result<Vec<Mail>> {
    split_container(bytes)?.iter().enumerate().map(|(i, raw)| parse_message(raw, i)).collect()
}

/// Header values end up in our own headers and terminal output: no control characters,
/// runs of white space folded to one space.
pub fn clean_header(value: &str) -> String {
    value
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn addresses(header: &mailparse::MailHeader) -> Vec<Addr> {
    let Ok(list) = mailparse::addrparse_header(header) else {
        return Vec::new();
    };
    let single = |s: &mailparse::SingleInfo| Addr {
        name: clean_header(s.display_name.as_deref().unwrap_or("")),
        email: clean_header(&s.addr),
    };
    list.iter()
        .flat_map(|a| match a {
            mailparse::MailAddr::Single(s) => vec![single(s)],
            mailparse::MailAddr::Group(g) => g.addrs.iter().map(single).collect(),
        })
        .filter(|a| !a.email.is_empty())
        .collect()
}

fn message_ids(value: &str) -> Vec<String> {
    static RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"<([^<>\s]+)>").unwrap());
    RE.captures_iter(value).map(|c| c[1].to_string()).collect()
}

/// RFC 2822 date with its numeric zone; `mailparse` gives the instant, we keep the zone
/// because git records the author's own offset.
pub fn parse_date(value: &str) -> Option<MailDate> {
    static ZONE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\s([+-])(\d\d)(\d\d)(?:\s|\(|$)").unwrap());
    let timestamp = mailparse::dateparse(value).ok()?;
    let offset_minutes = ZONE
        .captures(value)
        .map(|c| {
            let m = c[2].parse::<i32>().unwrap() * 60 + c[3].parse::<i32>().unwrap();
            if &c[1] == "-" {
                -m
            } else {
                m
            }
        })
        .unwrap_or(0);
    Some(MailDate { timestamp, offset_minutes })
}

/// The text of a message: a single part, or every text/plain (and text/x-patch,
/// text/x-diff) part of a multipart message in order.
fn text_body(mail: &mailparse::ParsedMail) -> Result<String> {
    if mail.subparts.is_empty() {
        return Ok(mail.get_body()?);
    }
    let mut out = String::new();
    for part in &mail.subparts {
        let mime = part.ctype.mimetype.to_ascii_lowercase();
        let text = if mime.starts_with("multipart/") {
            text_body(part)?
        } else if matches!(mime.as_str(), "text/plain" | "text/x-patch" | "text/x-diff") {
            part.get_body()?
        } else {
            continue;
        };
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&text);
    }
    Ok(out)
}

/// CRLF and lone CR to LF, as `git mailsplit` does without `--keep-cr`.
fn normalize_newlines(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mboxrd_is_split_and_unescaped() {
        let mbox = b"From git@z Thu Jan  1 00:00:00 1970\nFrom: A <a@x>\nSubject: one\n\n>From the start\n>>From two\nFrom here\n\nFrom mboxrd@z Thu Jan  1 00:00:00 1970\nFrom: B <b@x>\nSubject: two\n\nbody\n";
        let m = split_container(mbox).unwrap();
        assert_eq!(m.len(), 2);
        let first = String::from_utf8(m[0].clone()).unwrap();
        assert!(first.contains("\nFrom the start\n>From two\nFrom here\n"), "{first}");
    }

    #[test]
    fn gzip_is_transparent() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"From: A <a@x>\nSubject: s\n\nhi\n").unwrap();
        let mails = parse_container(&enc.finish().unwrap()).unwrap();
        assert_eq!(mails[0].subject, "s");
    }

    #[test]
    fn encoded_words_crlf_and_injection() {
        let raw = b"From: =?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <j@x>\r\nSubject: =?UTF-8?B?aGVsbG8NCkJjYzogZXZpbEB4?=\r\n folded\r\nDate: Tue, 24 Mar 2026 11:44:00 -0430\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nline=3D1\r\nsoft=\r\nbreak\r\n";
        let m = parse_message(raw, 0).unwrap();
        assert_eq!(m.from.name, "Jörg Müller");
        // "hello\r\nBcc: evil@x" must not survive as two lines.
        assert_eq!(m.subject, "hello Bcc: evil@x folded");
        assert_eq!(m.body, "line=1\nsoftbreak\n");
        let d = m.date.unwrap();
        assert_eq!(d.offset_minutes, -270);
        // python3: email.utils.mktime_tz(email.utils.parsedate_tz(...)) == 1774368840
        assert_eq!(d.timestamp, 1774368840);
    }

    #[test]
    fn empty_and_garbage_inputs_are_errors() {
        assert!(split_container(b"  \n\n").unwrap_err().to_string().contains("empty"));
        let e = parse_container(b"just some words\nno headers at all\n").unwrap_err();
        assert!(format!("{e:#}").contains("no From: or Subject:"), "{e:#}");
    }
}
