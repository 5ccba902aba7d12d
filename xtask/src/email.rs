//! The reply-ready email: headers made safe here (every value from mail is scrubbed of
//! control characters; non-ASCII names RFC 2047-encoded; long lines folded), the body
//! laid out by `templates/reply.eml.j2`. Pure: the date and Message-ID come in.

use crate::compare::{Comparison, Verdict};
use crate::mail::{clean_header, Addr};
use crate::report::Report;
use crate::series::civil_from_days;
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
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

fn reply_subject(subject: &str) -> String {
    let s = clean_header(subject);
    if s.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("re:")) {
        s
    } else {
        format!("Re: {s}")
    }
}

/// Wraps prose at `width` columns, keeping the indent of the first line.
pub fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::from(indent);
    for word in text.split_whitespace() {
        if line.len() > indent.len() && line.len() + 1 + word.len() > width {
            out.push_str(line.trim_end());
            out.push('\n');
            line = String::from(indent);
        }
        if line.len() > indent.len() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(line.trim_end());
    out
}

/// The part of the cover letter worth quoting: its first paragraphs, up to the
/// shortlog, a changelog, the diffstat or the `---` line; at most 12 lines.
fn quote(body: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let mut cut = false;
    for line in body.lines() {
        let t = line.trim();
        let stop = t == "---"
            || t == "-- "
            || t.starts_with("base-commit:")
            || t.starts_with("Changes in v")
            || t.starts_with("v1:")
            || t.contains(" | ")
            || (t.ends_with("):") && t.contains(" ("))
            || t.starts_with("diff --git");
        if stop || kept.len() >= 12 {
            cut = true;
            break;
        }
        kept.push(line);
    }
    while kept.last().is_some_and(|l| l.trim().is_empty()) {
        kept.pop();
    }
    let mut out: Vec<String> =
        kept.iter().map(|l| if l.is_empty() { ">".to_string() } else { format!("> {l}") }).collect();
    if cut {
        out.push(">".into());
        out.push("> [...]".into());
    }
    out.join("\n")
}

fn short(c: &str) -> &str {
    &c[..c.len().min(12)]
}

fn machine_line(r: &Report, arch: &str) -> String {
    let m = r.machines.iter().find(|m| m.arch == arch);
    match m {
        Some(m) if m.accel == "metal" && !m.machine.is_empty() => format!(
            "{}; {}, {} CPUs, {} KiB pages, THP {}; each kernel booted there with kexec",
            m.machine,
            m.cpu_model,
            join_u32(&m.vcpus),
            m.page_size / 1024,
            m.thp
        ),
        Some(m) if m.accel == "metal" => format!("bare metal, {}, {} CPUs", m.cpu_model, join_u32(&m.vcpus)),
        Some(m) => format!(
            "{} {} ({}), -M {}, {} vCPU, {} MiB, {} KiB pages, THP {}",
            m.emulator,
            m.accel.to_uppercase(),
            if m.accel == "tcg" { "software emulation" } else { "hardware virtualisation" },
            m.machine,
            join_u32(&m.vcpus),
            m.mem_mib,
            m.page_size / 1024,
            m.thp
        ),
        None => "not booted (see Failures)".into(),
    }
}

pub fn join_u32(v: &[u32]) -> String {
    v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("/")
}

/// For kernels built from a machine's own config: which, and what was merged on top.
fn metal_config_line(r: &Report) -> Option<String> {
    let b =
        r.builds.iter().find(|b| b.ok && b.fragments.first().is_some_and(|f| f.starts_with("config of ")))?;
    Some(format!(
        "  Config:    the machine's own: {} (loaded modules built in; metal.config is in mmeval's linux-ref/config/)",
        b.fragments.join(" + ")
    ))
}

fn tested_block(r: &Report) -> String {
    let mut o = String::new();
    let release = r.tree.release.as_deref().map(|x| format!("Linux {x}, ")).unwrap_or_default();
    let _ = writeln!(
        o,
        "  Base:      {}{} at {} ({})",
        release,
        r.tree.label,
        short(&r.tree.base),
        r.tree.base_source
    );
    let revisions: Vec<(u32, &Vec<crate::report::PatchInfo>)> = if r.revisions.is_empty() {
        vec![(r.series.version, &r.series.patches)]
    } else {
        r.revisions.iter().map(|x| (x.version, &x.patches)).collect()
    };
    for (i, (version, patches)) in revisions.iter().enumerate() {
        let n = patches.len();
        let _ = writeln!(
            o,
            "  {:<10} v{version}, {n} patch{}:",
            if i == 0 { "Series:" } else { "" },
            if n == 1 { "" } else { "es" }
        );
        for p in patches.iter() {
            let c = p.commit.as_deref().map(short).unwrap_or("(not applied)");
            let _ = writeln!(o, "               {}/{} {c} {}", p.number, p.total, p.subject);
            if let Some(note) = &p.note {
                let _ = writeln!(o, "                   ({note})");
            }
        }
    }
    let mut compilers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for b in r.builds.iter().filter(|b| b.ok && b.variant == r.plan.variants[0]) {
        compilers.entry(b.compiler.as_str()).or_default().push(b.arch.as_str());
    }
    for (i, (cc, arches)) in compilers.iter().enumerate() {
        let _ = writeln!(o, "  {:<10} {cc} ({})", if i == 0 { "Compilers:" } else { "" }, arches.join(", "));
    }
    if let Some(line) = metal_config_line(r) {
        let _ = writeln!(o, "{line}");
    } else if let Some(b) = r.builds.iter().find(|b| b.ok) {
        let _ = writeln!(
            o,
            "  Config:    tinyconfig + {} (linux-ref/config/ in mmeval)",
            b.fragments.join(" + ").replace(&format!("{}.config", b.arch), "<arch>.config")
        );
    }
    if r.apply.is_some() {
        return o.trim_end().to_string();
    }
    for (i, arch) in r.plan.arches.iter().enumerate() {
        let _ =
            writeln!(o, "  {:<10} {arch}: {}", if i == 0 { "Machines:" } else { "" }, machine_line(r, arch));
    }
    let clocks = r
        .plan
        .clocks
        .iter()
        .map(|c| {
            if c == "wall" {
                "wall clock".to_string()
            } else {
                "instruction count (QEMU -icount)".to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" and ");
    let per = if r.plan.target == "qemu" {
        "per architecture and vCPU count"
    } else {
        "on the machine, each a fresh boot (kexec)"
    };
    let method = format!(
        "{} boots of each kernel {per}, alternating {} ({}); each boot runs the \"{}\" suite ({} workloads) and reports the median of its in-boot repetitions; the tables compare the medians of those per-boot medians. Time measured by {}.",
        r.plan.reps, r.plan.variants.join("/"), r.plan.order, r.plan.suite, r.plan.suite_runs, clocks
    );
    // Continuation lines aligned under the first word, like the other fields.
    let method = wrap(&method, 72 - 13, "").replace('\n', &format!("\n{:13}", ""));
    let _ = write!(o, "  Method:    {method}");
    o
}

const LEGEND: &str = "Lower is better for every metric (all are times). The change column follows mmtests: positive means better, *x.xx%* marks a significant change (Mann-Whitney p below the threshold and a 95% bootstrap interval that excludes zero), (x.xx%) one that is not. ±N% is the boot-to-boot coefficient of variation.";

fn group_title(c: &Comparison, n: usize) -> String {
    let accel = match c.accel.as_str() {
        "tcg" => "QEMU TCG (emulated: not silicon timings)".to_string(),
        "kvm" => "QEMU KVM".to_string(),
        "metal" => {
            let clock = if c.clock == "wall" { "wall clock" } else { "instruction count" };
            return format!(
                "{} -- on the machine itself (metal), {} CPUs, {clock}; {n} boots of each kernel",
                c.arch, c.cpus
            );
        }
        a => a.to_string(),
    };
    let clock = if c.clock == "wall" { "wall clock" } else { "instruction count" };
    format!("{} -- {accel}, {} vCPU, {clock}; {n} boots of each kernel", c.arch, c.cpus)
}

fn metric_unit(m: &str) -> &str {
    match m {
        "" => "-",
        "ns_per_call" => "ns/call",
        "ns_per_page" => "ns/page",
        "ns_per_op" => "ns/op",
        m => m,
    }
}

fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        "-".into()
    } else if x.abs() >= 1000.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// One table per (arch, accelerator, clock, vCPUs), mmtests style.
pub fn tables(r: &Report) -> String {
    let news = r.new_variants();
    // group -> workload -> variant -> comparison
    type Rows<'a> = BTreeMap<String, BTreeMap<String, &'a Comparison>>;
    let mut groups: BTreeMap<(String, String, String, u32), Rows> = BTreeMap::new();
    for c in &r.comparisons {
        groups
            .entry((c.arch.clone(), c.accel.clone(), c.clock.clone(), c.cpus))
            .or_default()
            .entry(c.workload.clone())
            .or_default()
            .insert(c.variant.clone(), c);
    }
    let side = |s: &crate::compare::Side| {
        if s.n == 0 {
            format!("{:>17}", "failed")
        } else {
            format!("{:>10} ±{:>4.1}%", fmt_num(s.median), s.cv_pct)
        }
    };
    let mut o = String::new();
    for rows in groups.values() {
        let any = rows.values().flat_map(|m| m.values()).copied().collect::<Vec<_>>();
        let n = any.iter().map(|c| c.base.n.max(c.new.n)).max().unwrap_or(0);
        let _ = write!(o, "{}\n{:<36} {:<7} {:>17}", group_title(any[0], n), "", "", "baseline");
        for v in &news {
            let _ = write!(o, " {v:>17} {:>11}", "change");
        }
        o.push('\n');
        for (workload, by_variant) in rows {
            let first = by_variant.values().next().unwrap();
            let _ = write!(o, "{workload:<36} {:<7} {}", metric_unit(&first.metric), side(&first.base));
            let mut notes = String::new();
            let mut failed = first.base.failed;
            for v in &news {
                let Some(c) = by_variant.get(v) else {
                    let _ = write!(o, " {:>17} {:>11}", "-", "");
                    continue;
                };
                let gain = -c.change_pct;
                let change = if !gain.is_finite() {
                    "        -".to_string()
                } else if matches!(c.verdict, Verdict::Improvement | Verdict::Regression) {
                    format!("*{gain:>8.2}%*")
                } else {
                    format!("({gain:>8.2}%)")
                };
                let _ = write!(o, " {} {change:>11}", side(&c.new));
                let label = if news.len() > 1 { format!(" ({v})") } else { String::new() };
                match c.verdict {
                    Verdict::TooNoisy => notes.push_str(&format!("  noisy{label}")),
                    Verdict::TooFewRuns => notes.push_str(&format!("  too few runs{label}")),
                    _ => {}
                }
                failed += c.new.failed;
            }
            let failed = if failed > 0 { format!("  ({failed} failed)") } else { String::new() };
            let _ = writeln!(o, "{notes}{failed}");
        }
        o.push('\n');
    }
    o
}

fn list(items: &[String]) -> String {
    match items.len() {
        0 => String::new(),
        1 => items[0].clone(),
        2..=3 => format!("{} and {}", items[..items.len() - 1].join(", "), items[items.len() - 1]),
        n => format!("{}, and {} more", items[..3].join(", "), n - 3),
    }
}

/// The paragraph a maintainer can quote.
pub fn summary(r: &Report) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(f) = &r.apply {
        let at = f.file.as_deref().map(|x| format!(" ({x})")).unwrap_or_default();
        parts.push(format!(
            "Patch {}/{} does not apply to {}{at}, so nothing was built or measured; details below.",
            f.number,
            f.total,
            short(&r.tree.base)
        ));
        return wrap(&parts.join(" "), 72, "");
    }
    if r.all_passed() {
        parts.push("Every requested build and boot succeeded.".into());
    } else {
        let failed_builds = r.builds.iter().filter(|b| !b.ok).count();
        let failed_boots = r.failed_boots().len();
        let failed_runs: usize = r.boots.iter().map(|b| b.failures.len()).sum();
        let missing = r.expected_boots().saturating_sub(r.boots.len());
        let mut bad = Vec::new();
        if failed_builds > 0 {
            let which: Vec<String> =
                r.builds.iter().filter(|b| !b.ok).map(|b| format!("{} {}", b.arch, b.variant)).collect();
            bad.push(format!(
                "{failed_builds} build{} failed ({}), so that architecture was not measured",
                if failed_builds == 1 { "" } else { "s" },
                which.join(", ")
            ));
        }
        if failed_boots > 0 {
            bad.push(format!("{failed_boots} of {} boots did not finish", r.boots.len()));
        }
        if failed_runs > 0 {
            bad.push(format!("{failed_runs} workload run{} failed", if failed_runs == 1 { "" } else { "s" }));
        }
        if missing > 0 && failed_builds == 0 {
            bad.push(format!("{missing} planned boots did not happen"));
        }
        parts.push(format!("Not everything passed: {}; see Failures below.", list(&bad)));
    }
    let multi = r.new_variants().len() > 1;
    let order = |v: &str| r.plan.variants.iter().position(|x| x == v).unwrap_or(usize::MAX);
    let mut groups: BTreeMap<(String, String, String, u32, usize), Vec<&Comparison>> = BTreeMap::new();
    for c in &r.comparisons {
        groups
            .entry((c.arch.clone(), c.accel.clone(), c.clock.clone(), c.cpus, order(&c.variant)))
            .or_default()
            .push(c);
    }
    for ((arch, accel, clock, cpus, _), rows) in &groups {
        let named = |v: Verdict| -> Vec<String> {
            let mut x: Vec<&&Comparison> = rows.iter().filter(|c| c.verdict == v).collect();
            x.sort_by(|a, b| b.change_pct.abs().total_cmp(&a.change_pct.abs()));
            x.iter()
                .map(|c| format!("{} by {:.1}% (p = {})", c.workload, c.change_pct.abs(), fmt_p(c.p_value)))
                .collect()
        };
        let count = |v: Verdict| rows.iter().filter(|c| c.verdict == v).count();
        let n = rows.iter().map(|c| c.base.n.min(c.new.n)).max().unwrap_or(0);
        let clock = if clock == "wall" { "wall clock" } else { "instruction count" };
        let mut said: Vec<String> = Vec::new();
        let better = named(Verdict::Improvement);
        if !better.is_empty() {
            said.push(format!("{} of {} workloads improve: {}", better.len(), rows.len(), list(&better)));
        }
        let worse = named(Verdict::Regression);
        if !worse.is_empty() {
            let verb = if worse.len() == 1 { "regresses" } else { "regress" };
            said.push(format!("{} {verb}: {}", worse.len(), list(&worse)));
        }
        let same = count(Verdict::NoSignificantChange);
        if same == rows.len() {
            said.push(format!("no workload changes significantly ({same} compared)"));
        } else if same > 0 {
            said.push(format!("{same} {} no significant change", if same == 1 { "shows" } else { "show" }));
        }
        let noisy = count(Verdict::TooNoisy);
        if noisy > 0 {
            said.push(format!("{noisy} {} too noisy to tell", if noisy == 1 { "is" } else { "are" }));
        }
        let few = count(Verdict::TooFewRuns);
        if few > 0 {
            said.push(format!("{few} had too few successful runs to tell"));
        }
        let who = if multi { format!("{} against the baseline: ", rows[0].variant) } else { String::new() };
        let place = if accel == "metal" {
            format!("on the machine itself, {clock}, {cpus} CPUs")
        } else {
            format!("{}, {clock}, {cpus} vCPU", accel.to_uppercase())
        };
        parts.push(format!("On {arch} ({place}, {n} boots of each kernel) {who}{}.", said.join("; ")));
    }
    if r.comparisons.iter().any(|c| c.accel == "tcg") {
        parts.push("TCG figures measure emulated instruction streams, not real TLB or cache costs; compare them only within one architecture and clock.".into());
    }
    parts.iter().map(|p| wrap(p, 72, "")).collect::<Vec<_>>().join("\n\n")
}

/// Register and code dumps say nothing to a reader of the list.
fn is_register_dump(l: &str) -> bool {
    let t = l.trim_start();
    let reg = t.len() > 4
        && t.as_bytes()[0] == b'R'
        && t.as_bytes()[3] == b':'
        && t[1..3].chars().all(|c| c.is_ascii_alphanumeric());
    reg || [
        "Code:", "RSP:", "FS:", "CS:", "CR2:", "DR0:", "DR3:", "GPR", "NIP:", "LR:", "pc :", "lr :", "sp :",
        "x2", "x1", "x0",
    ]
    .iter()
    .any(|p| t.starts_with(p))
}

fn fmt_p(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".into()
    } else {
        format!("{p:.3}")
    }
}

/// Apply and build failures, boots that did not finish, failed runs: with their log lines.
pub fn failures(r: &Report) -> String {
    let mut o = String::new();
    if let Some(f) = &r.apply {
        let _ = writeln!(
            o,
            "  Patch {}/{} \"{}\" does not apply to {}:",
            f.number,
            f.total,
            f.subject,
            short(&r.tree.base)
        );
        if let Some(file) = &f.file {
            let _ = writeln!(
                o,
                "    file {file}{}",
                f.hunk.as_ref().map(|h| format!(", hunk {h}")).unwrap_or_default()
            );
        }
        let _ = writeln!(o, "    {}", f.detail);
    }
    for b in r.builds.iter().filter(|b| !b.ok) {
        let _ = writeln!(
            o,
            "  {} build of the {} tree ({}) failed at {}:",
            b.arch,
            b.variant,
            short(&b.commit),
            b.step.as_deref().unwrap_or("make")
        );
        for e in &b.errors {
            let _ = writeln!(o, "    {e}");
        }
    }
    // Boots that died the same way are told once, with the first one's log lines.
    let status_of = |b: &crate::report::BootEntry| {
        serde_json::to_value(b.status)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default()
            .replace('_', " ")
    };
    let mut groups: Vec<(String, Vec<&crate::report::BootEntry>)> = Vec::new();
    for b in r.boots.iter().filter(|b| b.status != crate::serial::BootStatus::Ok) {
        let first = b
            .excerpt
            .iter()
            .find(|l| l.contains("BUG") || l.contains("panic") || l.contains("Oops"))
            .cloned()
            .unwrap_or_default();
        let key = format!("{} {} {} {first}", b.arch, b.variant, status_of(b));
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(b),
            None => groups.push((key, vec![b])),
        }
    }
    for (_, boots) in &groups {
        let b = boots[0];
        let which: Vec<String> =
            boots.iter().map(|b| format!("{} ({} vCPU, {})", b.rep + 1, b.cpus, b.clock)).collect();
        let plural = if boots.len() == 1 { "" } else { "s" };
        let _ = writeln!(o, "  {} {} boot{plural} {}: {}", b.arch, b.variant, which.join(", "), status_of(b));
        if b.excerpt.is_empty() {
            let _ = writeln!(o, "    (nothing on the serial console)");
        }
        for l in b.excerpt.iter().filter(|l| !is_register_dump(l)).take(14) {
            let _ = writeln!(o, "    {l}");
        }
    }
    let mut runs: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for b in &r.boots {
        for f in &b.failures {
            *runs.entry((b.arch.clone(), f.id.clone(), f.reason.clone())).or_default() += 1;
        }
    }
    for ((arch, id, reason), n) in runs {
        let _ = writeln!(o, "  {arch} {id} failed in {n} boot{}: {reason}", if n == 1 { "" } else { "s" });
    }
    let warned: Vec<&str> = r.boots.iter().flat_map(|b| b.warnings.iter().map(String::as_str)).collect();
    if let Some(w) = warned.first() {
        let _ = writeln!(
            o,
            "  The kernel warned {} time{}, first: {w}",
            warned.len(),
            if warned.len() == 1 { "" } else { "s" }
        );
    }
    o.trim_end().to_string()
}

#[derive(Serialize)]
struct Headers {
    from: String,
    to: String,
    cc: String,
    subject: String,
    date: String,
    message_id: String,
    in_reply_to: String,
    references: String,
}

/// Renders the email with `template` (the text of templates/reply.eml.j2).
pub fn render(r: &Report, env: &Envelope, template: &str) -> Result<String> {
    let me = env.from.email.to_ascii_lowercase();
    let to = &r.reply_to.from;
    let mut cc: Vec<String> = Vec::new();
    let mut seen = vec![me.clone(), to.email.to_ascii_lowercase()];
    for a in r.reply_to.to.iter().chain(&r.reply_to.cc) {
        let e = a.email.to_ascii_lowercase();
        if !e.is_empty() && !seen.contains(&e) {
            seen.push(e);
            cc.push(format_addr(a));
        }
    }
    let ids = |v: &[String]| {
        v.iter().map(|id| format!("<{}>", clean_header(id).replace(['<', '>', ' '], ""))).collect::<Vec<_>>()
    };
    let in_reply_to =
        r.reply_to.message_id.as_deref().map(|id| ids(&[id.to_string()]).join("")).unwrap_or_default();
    let mut refs = ids(&r.reply_to.references);
    if !in_reply_to.is_empty() {
        refs.push(in_reply_to.clone());
    }
    let h = Headers {
        from: format_addr(&env.from),
        to: format_addr(to),
        cc: fold("Cc", &cc.join(", ")),
        subject: fold("Subject", &encode_text(&reply_subject(&r.reply_to.subject))),
        date: clean_header(&env.date),
        message_id: format!("<{}>", clean_header(&env.message_id).replace(['<', '>', ' '], "")),
        in_reply_to,
        references: fold("References", &refs.join(" ")),
    };
    let attribution = match &r.reply_to.date {
        Some(d) => format!("On {d}, {} wrote:", clean_header(&to.name).if_empty(&to.email)),
        None => format!("{} wrote:", clean_header(&to.name).if_empty(&to.email)),
    };
    let intro = wrap(
        &format!(
            "I ran the series through mmeval: {} kernels built for {}, booted {} times each in alternation, with the mprotect()/mremap() workloads discussed on linux-mm.",
            list(&r.plan.variants),
            r.plan.arches.join(", "),
            r.plan.reps
        ),
        72,
        "",
    );
    let body = render_text(
        "reply.eml.j2",
        template,
        minijinja::context! {
            h => h,
            version => env!("CARGO_PKG_VERSION"),
            attribution => attribution,
            quote => quote(&r.reply_to.body),
            intro => intro,
            tested => tested_block(r),
            legend => wrap(LEGEND, 72, ""),
            tables => tables(r),
            summary => summary(r),
            failures => failures(r),
            reproduce => reproduce(r),
            tested_by => if r.all_passed() { tested_by_line(&env.from) } else { None },
        },
    )?;
    Ok(body)
}

fn reproduce(r: &Report) -> String {
    let fetch = match &r.reply_to.message_id {
        Some(id) => format!("b4 am {}", clean_header(id)),
        None => "save the thread as an mbox".into(),
    };
    let revs = if r.revisions.is_empty() {
        r.series.version.to_string()
    } else {
        r.revisions.iter().map(|x| x.version.to_string()).collect::<Vec<_>>().join(",")
    };
    // On a real machine the machine decides the arch, the CPUs and the clock.
    let (target, clock) = match r.plan.target.split_once(':') {
        Some(("ssh", dest)) => (format!("--host {}", clean_header(dest)), String::new()),
        _ if r.plan.target == "metal" => ("--metal".to_string(), String::new()),
        _ => (
            format!("--arch {} --cpus {}", r.plan.arches.join(","), join_u32(&r.plan.cpus).replace('/', ",")),
            format!(" --clock {}", if r.plan.clocks.len() > 1 { "both" } else { r.plan.clocks[0].as_str() }),
        ),
    };
    wrap(
        &format!(
            "{fetch}, then cargo xtask eval <the mbox> --rev {revs} {target} --suite {} --reps {}{clock}",
            r.plan.suite, r.plan.reps,
        ),
        72,
        "",
    )
}

/// `Tested-by: Name <email>` takes the name as people write it (UTF-8 in the body).
fn tested_by_line(a: &Addr) -> Option<String> {
    let email = clean_header(&a.email);
    if email.is_empty() {
        return None;
    }
    let name = clean_header(&a.name);
    Some(if name.is_empty() { format!("<{email}>") } else { format!("{name} <{email}>") })
}

trait IfEmpty {
    fn if_empty(self, other: &str) -> String;
}

impl IfEmpty for String {
    fn if_empty(self, other: &str) -> String {
        if self.is_empty() {
            other.to_string()
        } else {
            self
        }
    }
}

/// Renders a plain-text template (a mail): no HTML escaping, the final newline kept.
fn render_text(name: &str, template: &str, ctx: minijinja::Value) -> Result<String> {
    let mut jinja = minijinja::Environment::new();
    jinja.set_keep_trailing_newline(true);
    jinja.add_template(name, template).with_context(|| format!("templates/{name} does not parse"))?;
    Ok(jinja.get_template(name)?.render(ctx)?)
}

/// The label `compare` gives a row: how far the numbers can be trusted.
pub fn reliability(c: &Comparison, reps: usize) -> String {
    let runs = format!(
        "{}/{reps} and {}/{reps} runs, CV {:.1}%/{:.1}%",
        c.base.n, c.new.n, c.base.cv_pct, c.new.cv_pct
    );
    let partial = c.base.failed + c.new.failed > 0;
    let label = match c.verdict {
        Verdict::TooFewRuns => "too few runs",
        Verdict::TooNoisy => "too noisy to tell",
        Verdict::Regression | Verdict::Improvement if partial => "partial, same direction",
        Verdict::Regression | Verdict::Improvement => "reliable",
        Verdict::NoSignificantChange => "no significant change",
    };
    format!("{label} ({runs})")
}

/// A report comparing two trees (`cargo xtask compare A B`) as a new thread: a
/// `[REGRESSION]` subject naming the worst regression, or none when nothing regressed.
pub fn render_regression(
    r: &Report,
    env: &Envelope,
    to: &[Addr],
    cc: &[Addr],
    template: &str,
) -> Result<String> {
    let rel = r.releases.as_ref().context("not a comparison of two trees")?;
    let (a, b) = (rel.a.label.as_str(), rel.b.label.as_str());
    let ratio = |c: &Comparison| c.new.median / c.base.median;
    let mut regressions: Vec<&Comparison> =
        r.comparisons.iter().filter(|c| c.verdict == Verdict::Regression).collect();
    regressions.sort_by(|x, y| ratio(y).total_cmp(&ratio(x)));
    let subject = match regressions.first() {
        Some(w) => format!(
            "[REGRESSION] mm: {} takes ~{:.2}x longer on {b} than {a} ({}, {})",
            w.workload,
            ratio(w),
            w.arch,
            if w.clock == "wall" { "wall clock" } else { "instruction count" }
        ),
        None => format!("mm: no regression in the mprotect/mremap workloads from {a} to {b}"),
    };
    let clock_words = |c: &str| if c == "wall" { "wall clock" } else { "instruction count" };

    let mut regr = String::new();
    let mut by_workload: BTreeMap<(String, String, String, String), Vec<&Comparison>> = BTreeMap::new();
    for c in &regressions {
        by_workload
            .entry((c.workload.clone(), c.arch.clone(), c.accel.clone(), c.clock.clone()))
            .or_default();
    }
    for c in &r.comparisons {
        if let Some(v) =
            by_workload.get_mut(&(c.workload.clone(), c.arch.clone(), c.accel.clone(), c.clock.clone()))
        {
            v.push(c);
        }
    }
    for ((workload, arch, accel, clock), rows) in &by_workload {
        let _ = writeln!(
            regr,
            "  {workload}, {} ({arch}, {}, {})",
            metric_unit(&rows[0].metric),
            accel.to_uppercase(),
            clock_words(clock)
        );
        let _ = writeln!(regr, "  {:>4} {:>12} {:>12} {:>7} {:>8}  reliability", "vCPU", a, b, "ratio", "p");
        for c in rows {
            let _ = writeln!(
                regr,
                "  {:>4} {:>12} {:>12} {:>6.2}x {:>8}  {}",
                c.cpus,
                fmt_num(c.base.median),
                fmt_num(c.new.median),
                ratio(c),
                fmt_p(c.p_value),
                reliability(c, r.plan.reps)
            );
        }
        regr.push('\n');
    }

    let mut overview = String::new();
    let mut groups: BTreeMap<(String, String, String, u32), Vec<&Comparison>> = BTreeMap::new();
    for c in &r.comparisons {
        groups.entry((c.arch.clone(), c.accel.clone(), c.clock.clone(), c.cpus)).or_default().push(c);
    }
    for ((arch, accel, clock, cpus), rows) in &groups {
        let _ = writeln!(overview, "  {arch}, {}, {}, {cpus} vCPU", accel.to_uppercase(), clock_words(clock));
        for c in rows {
            let _ = writeln!(
                overview,
                "    {:<36} {:>7} {:>11} {:>11} {:>6.2}x  {}",
                c.workload,
                metric_unit(&c.metric),
                fmt_num(c.base.median),
                fmt_num(c.new.median),
                ratio(c),
                c.verdict.words()
            );
        }
    }

    let mut envb = String::new();
    let rel_line = |x: &crate::report::ReleaseInfo| {
        format!(
            "{} ({}{}, commit {})",
            x.label,
            x.release.as_deref().map(|v| format!("Linux {v}, ")).unwrap_or_default(),
            x.tree,
            short(&x.commit)
        )
    };
    let _ = writeln!(envb, "  Kernels:   {}", rel_line(&rel.a));
    let _ = writeln!(envb, "             {}", rel_line(&rel.b));
    let mut compilers: Vec<String> =
        r.builds.iter().filter(|b| b.ok).map(|b| format!("{} ({})", b.compiler, b.arch)).collect();
    compilers.sort();
    compilers.dedup();
    for (i, c) in compilers.iter().enumerate() {
        let _ = writeln!(envb, "  {:<10} {c}", if i == 0 { "Compilers:" } else { "" });
    }
    if let Some(line) = metal_config_line(r) {
        let _ = writeln!(envb, "{line}");
    } else if let Some(b) = r.builds.iter().find(|b| b.ok) {
        let _ = writeln!(
            envb,
            "  Config:    the same fragments for both: tinyconfig + {}",
            b.fragments.join(" + ")
        );
    }
    for (i, arch) in r.plan.arches.iter().enumerate() {
        let _ = writeln!(
            envb,
            "  {:<10} {arch}: {}",
            if i == 0 { "Machines:" } else { "" },
            machine_line(r, arch)
        );
    }
    let _ = write!(
        envb,
        "  Method:    {} boots of each kernel per vCPU count, interleaved ({}), suite \"{}\"",
        r.plan.reps, r.plan.order, r.plan.suite
    );

    let mut facts = String::new();
    let kernels: Vec<String> = {
        let mut k: Vec<String> = r.boots.iter().map(|b| format!("{} ({})", b.kernel, b.variant)).collect();
        k.sort();
        k.dedup();
        k
    };
    let _ = writeln!(facts, "  Kernels booted: {}", kernels.join(", "));
    for m in &r.machines {
        let _ = writeln!(
            facts,
            "  {}: {} KiB pages, THP {} (the harness checks the folio sizes it asked for)",
            m.arch,
            m.page_size / 1024,
            m.thp
        );
    }
    let _ = write!(
        facts,
        "  Both kernels are built from the same Kconfig fragments with the preemption model pinned\n  (CONFIG_PREEMPT=y), so the difference is the code, not the configuration."
    );

    let intro = match regressions.first() {
        Some(w) => format!(
            "Measuring the mprotect()/mremap() workloads discussed on linux-mm, {} takes {:.2}x as long on {b} as on {a} ({}, {}, {} vCPU, {} boots each, p = {}). {} of {} comparisons regress in all. Details, the environment and how to reproduce are below.",
            w.workload,
            ratio(w),
            w.arch,
            clock_words(&w.clock),
            w.cpus,
            w.base.n.min(w.new.n),
            fmt_p(w.p_value),
            regressions.len(),
            r.comparisons.len()
        ),
        None => format!(
            "Measuring the mprotect()/mremap() workloads discussed on linux-mm, no workload regresses significantly from {a} to {b} ({} comparisons; {} too noisy or with too few runs to tell).",
            r.comparisons.len(),
            r.count(Verdict::TooNoisy) + r.count(Verdict::TooFewRuns)
        ),
    };
    let addrs = |v: &[Addr]| v.iter().map(format_addr).collect::<Vec<_>>().join(", ");
    let h = Headers {
        from: format_addr(&env.from),
        to: if to.is_empty() { format_addr(&env.from) } else { fold("To", &addrs(to)) },
        cc: fold("Cc", &addrs(cc)),
        subject: fold("Subject", &encode_text(&subject)),
        date: clean_header(&env.date),
        message_id: format!("<{}>", clean_header(&env.message_id).replace(['<', '>', ' '], "")),
        in_reply_to: String::new(),
        references: String::new(),
    };
    let reproduce = wrap(
        &format!(
            "cargo xtask compare {a} {b} --arch {} --cpus {} --suite {} --reps {} --clock {}",
            r.plan.arches.join(","),
            join_u32(&r.plan.cpus).replace('/', ","),
            r.plan.suite,
            r.plan.reps,
            if r.plan.clocks.len() > 1 { "both" } else { r.plan.clocks[0].as_str() }
        ),
        72,
        "",
    );
    render_text(
        "regression.eml.j2",
        template,
        minijinja::context! {
            h => h,
            version => env!("CARGO_PKG_VERSION"),
            a => a,
            b => b,
            intro => wrap(&intro, 72, ""),
            environment => envb,
            regressions => regr,
            overview => overview,
            facts => facts,
            failures => failures(r),
            reproduce => reproduce,
            regzbot => if regressions.is_empty() { String::new() } else { format!("#regzbot introduced: {a}..{b}") },
        },
    )
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
    fn folding_and_wrapping() {
        let f = fold(
            "References",
            &(0..6).map(|i| format!("<message-{i}-abcdefgh@example.org>")).collect::<Vec<_>>().join(" "),
        );
        assert!(f.lines().all(|l| l.len() <= 78 - "References: ".len() + 40), "{f}");
        assert!(f.contains("\n "));
        let w = wrap(&"word ".repeat(40), 72, "  ");
        assert!(w.lines().all(|l| l.len() <= 72 && l.starts_with("  ")));
    }
}
