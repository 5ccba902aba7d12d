//! The text `cargo xtask series` prints for a chosen revision.

use super::Series;
use crate::mail::MailDate;
use std::fmt::Write as _;

fn fmt_date(d: Option<MailDate>) -> String {
    match d {
        None => "(no date)".into(),
        Some(d) => {
            let local = d.timestamp + i64::from(d.offset_minutes) * 60;
            let (days, secs) = (local.div_euclid(86400), local.rem_euclid(86400));
            let (y, m, dd) = civil_from_days(days);
            let sign = if d.offset_minutes < 0 { '-' } else { '+' };
            let off = d.offset_minutes.abs();
            format!(
                "{y:04}-{m:02}-{dd:02} {:02}:{:02}:{:02} {sign}{:02}{:02}",
                secs / 3600,
                secs / 60 % 60,
                secs % 60,
                off / 60,
                off % 60
            )
        }
    }
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The human summary of `cargo xtask series`.
pub fn summary(s: &Series) -> String {
    let mut o = String::new();
    let versions = s.all_versions.iter().map(|v| format!("v{v}")).collect::<Vec<_>>().join(", ");
    let _ = writeln!(o, "Series:   {}", s.subject());
    let _ = writeln!(o, "Revision: v{} (in the input: {versions})", s.version);
    if let Some(a) = s.author() {
        let _ = writeln!(o, "Author:   {}", a.display());
    }
    let date = s.cover.as_ref().map(|c| c.date).unwrap_or(s.patches[0].mail.date);
    let _ = writeln!(o, "Date:     {}", fmt_date(date));
    if !s.tags.is_empty() {
        let _ = writeln!(o, "Tags:     {}", s.tags.join(" "));
    }
    let _ = writeln!(
        o,
        "Base:     {}",
        s.base_commit.as_deref().map_or("(no base-commit: line)".to_string(), |b| format!("base-commit {b}"))
    );
    for p in &s.prerequisite_patch_ids {
        let _ = writeln!(o, "          prerequisite-patch-id {p}");
    }
    match &s.cover {
        Some(c) => {
            let _ = writeln!(o, "Cover:    {}", c.raw_subject);
        }
        None => {
            let _ = writeln!(o, "Cover:    (none)");
        }
    }
    let total = s.patches.len() + s.missing.len();
    let _ = writeln!(o, "Patches:  {} of {total}", s.patches.len());
    if let Some(from) = s.rerolled_from {
        let resent: Vec<String> = s
            .patches
            .iter()
            .filter(|p| p.from_revision.is_none())
            .map(|p| format!("{}/{total}", p.number))
            .collect();
        let _ = writeln!(
            o,
            "Reroll:   partial: v{} resends {} as replies to the patches they replace; the rest is v{from}'s (as b4 does; --rev {from} for v{from} itself)",
            s.version,
            resent.join(", ")
        );
    }
    for p in &s.patches {
        let from = p.from_revision.map(|v| format!("   (from v{v})")).unwrap_or_default();
        let _ = writeln!(o, "  {}/{total} {}{from}", p.number, p.mail.subject);
        let _ = writeln!(o, "      From: {}", p.mail.author.display());
        for t in &p.mail.trailers {
            let _ = writeln!(o, "      {}: {}", t.key, t.value);
        }
        for t in &p.follow_up_trailers {
            let _ = writeln!(o, "      {}: {}   (from a reply)", t.key, t.value);
        }
        if let Some(d) = &p.mail.diff {
            let width = d.files.iter().map(|f| f.path().len()).max().unwrap_or(0);
            let (mut ins, mut del) = (0, 0);
            for f in &d.files {
                let _ = writeln!(
                    o,
                    "      {:width$} | {:>4} {}{}",
                    f.path(),
                    f.insertions + f.deletions,
                    "+".repeat(f.insertions.min(30)),
                    "-".repeat(f.deletions.min(30))
                );
                ins += f.insertions;
                del += f.deletions;
            }
            let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
            let _ = writeln!(
                o,
                "      {} changed, {}(+), {}(-)",
                plural(d.files.len(), "file"),
                plural(ins, "insertion"),
                plural(del, "deletion")
            );
        }
    }
    for n in &s.missing {
        let _ = writeln!(o, "  {n}/{total} (missing)");
    }
    for w in &s.warnings {
        let _ = writeln!(o, "warning: {w}");
    }
    o
}
