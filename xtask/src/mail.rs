//! Mail containers and messages: mbox/mboxrd (optionally gzip'd), a directory of
//! `git format-patch` files, or one `.eml`/`.patch`. Pure: bytes in, [`Mail`] out.
//!
//! Header decoding (RFC 2047, folding) and transfer decoding (quoted-printable, base64)
//! are `mailparse`'s job. What is ours: splitting containers, `>From ` unescaping for
//! mboxrd only, CRLF normalisation as `git mailsplit` does it (a CR before a line's LF
//! goes, a CR inside a line stays), keeping the body's bytes as sent next to a decoded
//! text (the diff is applied from the bytes; only the commit message is converted from
//! its charset, and undeclared 8-bit text is UTF-8, as git takes it), and scrubbing
//! control characters out of header values so that nothing taken from mail can ever
//! become a header line of our own.

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
    /// The text for reading (trailers in replies, cover letters): decoded from its
    /// charset, `\n` line ends.
    pub body: String,
    /// The body after transfer decoding and nothing else: what `git mailinfo` hands to
    /// `git apply`.
    #[serde(skip)]
    pub raw_body: Vec<u8>,
    /// The charset the text part declares; None when it declares none (then UTF-8).
    #[serde(skip)]
    pub charset: Option<String>,
    /// To:/Cc: entries that are not addresses (left out of `to`/`cc`, and named).
    #[serde(skip)]
    pub unparsed_addresses: Vec<String>,
}

/// How `>From ` lines in a container are read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MboxFormat {
    /// mboxrd when the first separator is public-inbox's and b4's `From mboxrd@z`,
    /// else mboxo (git format-patch, git am): lines are kept as they are.
    #[default]
    Auto,
    Mboxrd,
    Mboxo,
}

/// The most a compressed container may expand to (lore's largest threads are a few MB).
pub const MAX_EXPANDED: u64 = 256 << 20;

/// Splits a container into raw messages. gzip is recognised by its magic bytes.
pub fn split_container(bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    split_container_as(bytes, MboxFormat::Auto)
}

/// [`split_container`] with the mbox flavour given.
pub fn split_container_as(bytes: &[u8], format: MboxFormat) -> Result<Vec<Vec<u8>>> {
    split_limited(bytes, format, MAX_EXPANDED)
}

fn split_limited(bytes: &[u8], format: MboxFormat, max_expanded: u64) -> Result<Vec<Vec<u8>>> {
    let owned;
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        let mut limited = std::io::Read::take(flate2::read::MultiGzDecoder::new(bytes), max_expanded + 1);
        std::io::Read::read_to_end(&mut limited, &mut out)
            .context("the file looks gzip-compressed but does not decompress")?;
        if out.len() as u64 > max_expanded {
            bail!(
                "the file expands to more than {} MiB; a thread is never that big (mmeval reads at most that much)",
                max_expanded >> 20
            );
        }
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
    let mboxrd = match format {
        MboxFormat::Auto => first_line(bytes).starts_with(b"From mboxrd@z "),
        MboxFormat::Mboxrd => true,
        MboxFormat::Mboxo => false,
    };
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
        current.extend_from_slice(if mboxrd { unescape_from(line) } else { line });
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
    let raw = strip_cr_before_lf(raw);
    let parsed = mailparse::parse_mail(&raw)
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
    let mut dropped = Vec::new();
    let mut list = |name: &str| -> Vec<Addr> {
        let mut out = Vec::new();
        for h in mailparse::MailHeaderMap::get_all_headers(headers, name) {
            let (ok, bad) = addresses_and_dropped(h);
            out.extend(ok);
            dropped.extend(bad.into_iter().map(|b| format!("{name}: {b}")));
        }
        out
    };
    let (to, cc) = (list("To"), list("Cc"));
    let ids = |name: &str| get(name).map(|v| message_ids(&v)).unwrap_or_default();
    let mut text = Text::default();
    text_body(&parsed, &mut text)
        .with_context(|| format!("message {} has a body that cannot be decoded", index + 1))?;
    Ok(Mail {
        index,
        message_id: ids("Message-ID").into_iter().next(),
        in_reply_to: ids("In-Reply-To").into_iter().next(),
        references: ids("References"),
        to,
        cc,
        unparsed_addresses: dropped,
        date: get("Date").and_then(|d| parse_date(&d)),
        subject: get("Subject").unwrap_or_default(),
        from,
        body: text.display.replace("\r\n", "\n"),
        raw_body: text.raw,
        charset: text.charset.flatten(),
    })
}

/// Reads every message of a container; one bad message fails the whole input, naming it.
pub fn parse_container(bytes: &[u8]) -> Result<Vec<Mail>> {
    split_container(bytes)?.iter().enumerate().map(|(i, raw)| parse_message(raw, i)).collect()
}

/// Text from mail or logs for a terminal or a mail body: line ends and tabs kept, every
/// other control character (ESC and OSC sequences among them, C1 too) dropped. The
/// bytes that go into a tree never pass here.
pub fn scrub_text(text: &str) -> String {
    text.chars().filter(|&c| c == '\n' || c == '\t' || !c.is_control()).collect()
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

/// The addresses of a header. One address that does not parse does not lose the
/// others: the list is then read address by address, and what does not parse is
/// returned apart, to be named.
fn addresses_and_dropped(header: &mailparse::MailHeader) -> (Vec<Addr>, Vec<String>) {
    if let Ok(list) = mailparse::addrparse_header(header) {
        return (addr_list(&list), vec![]);
    }
    let (mut ok, mut dropped) = (Vec::new(), Vec::new());
    for piece in header.get_value().split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match mailparse::addrparse(piece) {
            Ok(list) if !addr_list(&list).is_empty() => ok.extend(addr_list(&list)),
            _ => dropped.push(clean_header(piece)),
        }
    }
    (ok, dropped)
}

fn addresses(header: &mailparse::MailHeader) -> Vec<Addr> {
    addresses_and_dropped(header).0
}

fn addr_list(list: &mailparse::MailAddrList) -> Vec<Addr> {
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

/// The text parts of a message, in order.
#[derive(Default)]
struct Text {
    raw: Vec<u8>,
    display: String,
    /// The first text part's declared charset (outer None: no text part seen yet).
    charset: Option<Option<String>>,
}

/// Collects a single part, or every text/plain (and text/x-patch, text/x-diff) part of a
/// multipart message in order.
fn text_body(mail: &mailparse::ParsedMail, out: &mut Text) -> Result<()> {
    if mail.subparts.is_empty() {
        return add_part(mail, out);
    }
    for part in &mail.subparts {
        let mime = part.ctype.mimetype.to_ascii_lowercase();
        if mime.starts_with("multipart/") {
            text_body(part, out)?;
        } else if matches!(mime.as_str(), "text/plain" | "text/x-patch" | "text/x-diff") {
            add_part(part, out)?;
        }
    }
    Ok(())
}

fn add_part(part: &mailparse::ParsedMail, out: &mut Text) -> Result<()> {
    let mut raw = part.get_body_raw()?;
    if matches!(part.get_body_encoded(), mailparse::body::Body::QuotedPrintable(_)) {
        // The quoted-printable decoder ends every hard line break with CRLF; the wire
        // had LF (CRs before LF are gone already, as in mailsplit).
        raw = strip_cr_before_lf(&raw);
    }
    let declared = part.ctype.params.get("charset").map(|c| c.trim().to_ascii_lowercase());
    if !out.raw.is_empty() && !out.raw.ends_with(b"\n") {
        out.raw.push(b'\n');
        out.display.push('\n');
    }
    out.display.push_str(&decode(&raw, declared.as_deref()));
    out.raw.extend_from_slice(&raw);
    out.charset.get_or_insert(declared);
    Ok(())
}

/// Text in its declared charset to UTF-8; undeclared (or US-ASCII) 8-bit text is taken
/// as UTF-8, as git takes it, and what is not valid UTF-8 is shown with U+FFFD.
pub fn decode(bytes: &[u8], charset: Option<&str>) -> String {
    match charset.filter(|c| !is_utf8_compatible(c)).and_then(|c| charset::Charset::for_label(c.as_bytes())) {
        Some(cs) => cs.decode_without_bom_handling(bytes).0.into_owned(),
        None => String::from_utf8_lossy(bytes).into_owned(),
    }
}

fn is_utf8_compatible(charset: &str) -> bool {
    matches!(charset.to_ascii_lowercase().as_str(), "utf-8" | "utf8" | "us-ascii" | "ascii")
}

/// `git mailsplit` without `--keep-cr`: a CR that ends a line goes; any other stays.
fn strip_cr_before_lf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    for (k, &b) in raw.iter().enumerate() {
        if b == b'\r' && raw.get(k + 1) == Some(&b'\n') {
            continue;
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mboxrd_is_split_and_unescaped_mboxo_is_kept() {
        let body = "From: A <a@x>\nSubject: one\n\n>From the start\n>>From two\nFrom here\n\nFrom mboxrd@z Thu Jan  1 00:00:00 1970\nFrom: B <b@x>\nSubject: two\n\nbody\n";
        let rd = format!("From mboxrd@z Thu Jan  1 00:00:00 1970\n{body}");
        let m = split_container(rd.as_bytes()).unwrap();
        assert_eq!(m.len(), 2);
        let first = String::from_utf8(m[0].clone()).unwrap();
        assert!(first.contains("\nFrom the start\n>From two\nFrom here\n"), "{first}");
        // git format-patch writes mboxo: git am keeps `>From` as it is.
        let o = format!("From 1234567890abcdef1234567890abcdef12345678 Mon Sep 17 00:00:00 2001\n{body}");
        let first = String::from_utf8(split_container(o.as_bytes()).unwrap()[0].clone()).unwrap();
        assert!(first.contains("\n>From the start\n>>From two\n"), "{first}");
        let forced = split_container_as(o.as_bytes(), MboxFormat::Mboxrd).unwrap();
        assert!(String::from_utf8_lossy(&forced[0]).contains("\nFrom the start\n"));
    }

    #[test]
    fn undeclared_8bit_is_utf8_and_bytes_stay_as_sent() {
        let raw = "From: A <a@x>\nSubject: [PATCH] x\n\nplain message\n---\n+caf\u{e9}\n".as_bytes();
        let m = parse_message(raw, 0).unwrap();
        assert_eq!(m.charset, None);
        assert!(m.body.contains("+caf\u{e9}"), "{}", m.body);
        assert!(m.raw_body.ends_with("+caf\u{e9}\n".as_bytes()));
        // Declared Latin-1: the text is converted, the bytes are not.
        let raw = b"From: A <a@x>\nSubject: x\nContent-Type: text/plain; charset=ISO-8859-1\nContent-Transfer-Encoding: 8bit\n\nJ\xf6rg\n";
        let m = parse_message(raw, 0).unwrap();
        assert_eq!(
            (m.body.as_str(), m.raw_body.as_slice(), m.charset.as_deref()),
            ("J\u{f6}rg\n", &b"J\xf6rg\n"[..], Some("iso-8859-1"))
        );
    }

    #[test]
    fn a_lone_cr_is_data_a_cr_before_lf_is_not() {
        use std::io::Write;
        let mut enc = Vec::new();
        // "a\rb\n" in base64.
        write!(enc, "From: A <a@x>\r\nSubject: s\r\nContent-Transfer-Encoding: base64\r\n\r\nYQ1iCg==\r\n")
            .unwrap();
        let m = parse_message(&enc, 0).unwrap();
        assert_eq!(m.raw_body, b"a\rb\n");
        let m = parse_message(b"From: A <a@x>\r\nSubject: s\r\n\r\nline\r\nx\ry\r\n", 0).unwrap();
        assert_eq!(m.raw_body, b"line\nx\ry\n");
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&vec![b'x'; 3 << 20]).unwrap();
        let gz = enc.finish().unwrap();
        let e = split_limited(&gz, MboxFormat::Auto, 2 << 20).unwrap_err().to_string();
        assert_eq!(e, "the file expands to more than 2 MiB; a thread is never that big (mmeval reads at most that much)");
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
        assert_eq!(m.raw_body, b"line=1\nsoftbreak\n");
        let d = m.date.unwrap();
        assert_eq!(d.offset_minutes, -270);
        // python3: email.utils.mktime_tz(email.utils.parsedate_tz(...)) == 1774368840
        assert_eq!(d.timestamp, 1774368840);
    }

    #[test]
    fn one_bad_address_loses_only_itself_and_control_characters_are_scrubbed() {
        let raw =
            b"From: A <a@x.org>\nSubject: s\nCc: Good One <good@x.org>, <<broken@@, other@x.org\n\nbody\n";
        let m = parse_message(raw, 0).unwrap();
        let cc: Vec<&str> = m.cc.iter().map(|a| a.email.as_str()).collect();
        assert_eq!(cc, ["good@x.org", "other@x.org"]);
        assert_eq!(m.unparsed_addresses, ["Cc: <<broken@@"]);
        assert_eq!(scrub_text("ok\x1b]0;title\x07 \x1b[31mred\u{9b}\n\tx"), "ok]0;title [31mred\n\tx");
    }

    #[test]
    fn empty_and_garbage_inputs_are_errors() {
        assert!(split_container(b"  \n\n").unwrap_err().to_string().contains("empty"));
        let e = parse_container(b"just some words\nno headers at all\n").unwrap_err();
        assert!(format!("{e:#}").contains("no From: or Subject:"), "{e:#}");
    }
}
