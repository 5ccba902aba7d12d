//! Mail headers made safe: every value from mail is scrubbed of control characters,
//! non-ASCII names are RFC 2047-encoded, long lines folded; RFC 2822 dates. Pure.

use crate::mail::{clean_header, Addr};
use crate::series::civil_from_days;
use serde::Serialize;
use std::fmt::Write as _;

/// Who sends the reply, and when.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub from: Addr,
    pub date: String,
    pub message_id: String,
}

/// RFC 2822 date: `Tue, 10 Nov 2026 09:30:00 +0100`.
pub fn rfc2822(timestamp: i64, offset_minutes: i32) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let local = timestamp + i64::from(offset_minutes) * 60;
    let days = local.div_euclid(86400);
    let secs = local.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let off = offset_minutes.abs();
    format!(
        "{}, {d:02} {} {y} {:02}:{:02}:{:02} {sign}{:02}{:02}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        off / 60,
        off % 60
    )
}

/// An encoded word (RFC 2047 "Q") for text that is not plain ASCII, split so that no
/// word exceeds 75 characters; ASCII text with specials is quoted instead.
pub fn encode_phrase(text: &str) -> String {
    let text = clean_header(text);
    if text.is_ascii() {
        let special = text.chars().any(|c| "()<>[]:;@\\,.\"".contains(c));
        return if special {
            format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
        } else {
            text
        };
    }
    let mut words = Vec::new();
    let mut cur = String::new();
    for ch in text.chars() {
        let mut enc = String::new();
        let mut buf = [0u8; 4];
        for b in ch.encode_utf8(&mut buf).bytes() {
            if b.is_ascii_alphanumeric() || b"!*+-/".contains(&b) {
                enc.push(b as char);
            } else if b == b' ' {
                enc.push('_');
            } else {
                let _ = write!(enc, "={b:02X}");
            }
        }
        // "=?UTF-8?q?" + "?=" is 12 characters; a character's bytes stay together.
        if cur.len() + enc.len() + 12 > 75 {
            words.push(format!("=?UTF-8?q?{cur}?="));
            cur.clear();
        }
        cur.push_str(&enc);
    }
    if !cur.is_empty() {
        words.push(format!("=?UTF-8?q?{cur}?="));
    }
    words.join(" ")
}

pub fn format_addr(a: &Addr) -> String {
    let email = clean_header(&a.email).replace(['<', '>', ','], "");
    if a.name.trim().is_empty() {
        format!("<{email}>")
    } else {
        format!("{} <{email}>", encode_phrase(&a.name))
    }
}

/// Unstructured header text (a subject): encoded when not ASCII.
pub fn encode_text(text: &str) -> String {
    let text = clean_header(text);
    if text.is_ascii() {
        text
    } else {
        encode_phrase(&text).trim_matches('"').to_string()
    }
}

/// Folds a header value at spaces so lines stay near 78 characters.
pub fn fold(name: &str, value: &str) -> String {
    let mut out = String::new();
    let mut line = name.len() + 2;
    for (i, word) in value.split(' ').enumerate() {
        if i > 0 {
            if line + 1 + word.len() > 78 {
                out.push_str("\n ");
                line = 1;
            } else {
                out.push(' ');
                line += 1;
            }
        }
        out.push_str(word);
        line += word.len();
    }
    out
}

pub fn reply_subject(subject: &str) -> String {
    let s = clean_header(subject);
    if s.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("re:")) {
        s
    } else {
        format!("Re: {s}")
    }
}

#[derive(Serialize)]
pub struct Headers {
    pub from: String,
    pub to: String,
    pub cc: String,
    pub subject: String,
    pub date: String,
    pub message_id: String,
    pub in_reply_to: String,
    pub references: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_encodings() {
        assert_eq!(rfc2822(1793199660, 0), "Wed, 28 Oct 2026 15:01:00 +0000");
        assert_eq!(rfc2822(1793199660, -300), "Wed, 28 Oct 2026 10:01:00 -0500");
        assert_eq!(encode_phrase("Jörg Müller"), "=?UTF-8?q?J=C3=B6rg_M=C3=BCller?=");
        assert_eq!(encode_phrase("Doe, John"), "\"Doe, John\"");
        assert_eq!(encode_phrase("Plain Name"), "Plain Name");
        let long = encode_phrase(&"é".repeat(40));
        assert!(long.split(' ').all(|w| w.len() <= 75 && w.starts_with("=?UTF-8?q?")), "{long}");
        assert_eq!(reply_subject("Re: [PATCH] x"), "Re: [PATCH] x");
        assert_eq!(reply_subject("[PATCH v2 0/2] x\r\nBcc: evil@x"), "Re: [PATCH v2 0/2] x Bcc: evil@x");
    }

    #[test]
    fn folding() {
        let f = fold(
            "References",
            &(0..6).map(|i| format!("<message-{i}-abcdefgh@example.org>")).collect::<Vec<_>>().join(" "),
        );
        // Every line within 78 columns, the header name included on the first.
        let mut first = true;
        for l in f.lines() {
            let len = if first { "References: ".len() + l.len() } else { l.len() };
            assert!(len <= 78, "{len}: {l}");
            first = false;
        }
        assert!(f.contains("\n "));
    }
}
