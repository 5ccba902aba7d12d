//! The blocks of prose every rendering shares (the reply, the regression report and the
//! page): what was tested, the summary, the failures (the tables: `tables.rs`). Pure, over a Report.

use crate::compare::{Comparison, Verdict};
use crate::model::{Accel, Clock, Target};
use crate::report::Report;
use std::collections::BTreeMap;
use std::fmt::Write as _;

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

pub fn short(c: &str) -> &str {
    &c[..c.len().min(12)]
}

pub fn machine_line(r: &Report, arch: &str) -> String {
    let m = r.machines.iter().find(|m| m.arch == arch);
    match m {
        Some(m) if m.accel == Accel::Metal && !m.machine.is_empty() => format!(
            "{}; {}, {} CPUs, {} KiB pages, THP {}; each kernel booted there with kexec",
            m.machine,
            m.cpu_model,
            join_u32(&m.vcpus),
            m.page_size / 1024,
            m.thp
        ),
        Some(m) if m.accel == Accel::Metal => {
            format!("bare metal, {}, {} CPUs", m.cpu_model, join_u32(&m.vcpus))
        }
        Some(m) => format!(
            "{} {} ({}), -M {}, {} vCPU, {} MiB, {} KiB pages, THP {}",
            m.emulator,
            m.accel.upper(),
            if m.accel == Accel::Tcg { "software emulation" } else { "hardware virtualisation" },
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

/// Whether the builds ran the series' code in the sandbox, as they recorded it
/// (nothing when they did not record it).
pub fn sandbox_line(r: &Report) -> Option<String> {
    let known: Vec<bool> = r.builds.iter().filter_map(|b| b.sandboxed).collect();
    if known.is_empty() {
        return None;
    }
    Some(if known.iter().all(|&s| s) {
        "  Builds:    in a bubblewrap sandbox (system read-only, no network, no home)".to_string()
    } else {
        "  Builds:    NOT sandboxed (--no-sandbox): the series' build code ran as the tester".to_string()
    })
}

/// What the kernels were configured from, as the build recorded it.
pub fn config_line(r: &Report) -> Option<String> {
    let b = r.builds.iter().find(|b| b.ok)?;
    Some(match b.machine_config() {
        Some(_) => format!(
            "  Config:    the machine's own: {} (loaded modules built in; metal.config is in mmeval's linux-ref/config/)",
            b.fragments.join(" + ")
        ),
        None => format!(
            "  Config:    tinyconfig + {} (linux-ref/config/ in mmeval)",
            b.fragments.join(" + ").replace(&format!("{}.config", b.arch), "<arch>.config")
        ),
    })
}

pub fn tested_block(r: &Report) -> String {
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
    if let Some(line) = config_line(r) {
        let _ = writeln!(o, "{line}");
    }
    if let Some(line) = sandbox_line(r) {
        let _ = writeln!(o, "{line}");
    }
    if r.apply.is_some() {
        return o.trim_end().to_string();
    }
    for (i, arch) in r.plan.arches.iter().enumerate() {
        let _ =
            writeln!(o, "  {:<10} {arch}: {}", if i == 0 { "Machines:" } else { "" }, machine_line(r, arch));
    }
    if let Some(lab) = &r.lab {
        let line = format!(
            "LAVA at {}, device type {}: {} jobs on {}{}",
            lab.url,
            lab.device_type,
            lab.jobs,
            if lab.devices.is_empty() { "no device yet".to_string() } else { lab.devices.join(", ") },
            lab.command.as_deref().map(|c| format!("; the lab ran {c}")).unwrap_or_default()
        );
        let _ =
            writeln!(o, "  Lab:       {}", wrap(&line, 72 - 13, "").replace('\n', &format!("\n{:13}", "")));
    }
    let clocks = r
        .plan
        .clocks
        .iter()
        .map(|c| match c {
            Clock::Wall => "wall clock",
            Clock::Instructions => "instruction count (QEMU -icount)",
        })
        .collect::<Vec<_>>()
        .join(" and ");
    let per = match r.plan.target {
        Target::Qemu => "per architecture and vCPU count",
        Target::Lava(..) => "per architecture and vCPU count, each a LAVA job",
        Target::Local | Target::Ssh(_) => "on the machine, each a fresh boot (kexec)",
    };
    let boots = match &r.plan.stopping {
        None => format!("{} boots of each kernel", r.plan.reps),
        Some(rule) => format!(
            "Rounds of boots until every workload is decided, at most {} of each kernel ({rule}),",
            r.plan.reps
        ),
    };
    let method = format!(
        "{boots} {per}, alternating {} ({}); each boot runs the \"{}\" suite ({} workloads) and reports the median of its in-boot repetitions; the tables compare the medians of those per-boot medians. Time measured by {}.",
        r.plan.variants.join("/"), r.plan.order, r.plan.suite, r.plan.suite_runs, clocks
    );
    // Continuation lines aligned under the first word, like the other fields.
    let method = wrap(&method, 72 - 13, "").replace('\n', &format!("\n{:13}", ""));
    let _ = write!(o, "  Method:    {method}");
    o
}

pub const LEGEND: &str = "Lower is better for every metric (all are times). The change column follows mmtests: positive means better, *x.xx%* marks a significant change (Mann-Whitney p below the threshold and a 95% bootstrap interval that excludes zero), (x.xx%) one that is not. ±N% is the boot-to-boot coefficient of variation.";

pub fn metric_unit(m: &str) -> &str {
    match m {
        "" => "-",
        "ns_per_call" => "ns/call",
        "ns_per_page" => "ns/page",
        "ns_per_op" => "ns/op",
        m => m,
    }
}

pub fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        "-".into()
    } else if x.abs() >= 1000.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

pub use super::tables::tables;

pub fn list<T: ToString>(items: &[T]) -> String {
    let items: Vec<String> = items.iter().map(ToString::to_string).collect();
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
    let mut groups: BTreeMap<(crate::model::Cell, usize), Vec<&Comparison>> = BTreeMap::new();
    for c in &r.comparisons {
        groups.entry((c.cell(), order(&c.variant))).or_default().push(c);
    }
    for ((cell, _), rows) in &groups {
        let named = |v: Verdict| -> Vec<String> {
            let mut x: Vec<&&Comparison> = rows.iter().filter(|c| c.verdict == v).collect();
            x.sort_by(|a, b| b.change_pct.abs().total_cmp(&a.change_pct.abs()));
            x.iter()
                .map(|c| format!("{} by {:.1}% (p = {})", c.workload, c.change_pct.abs(), fmt_p(c.p_value)))
                .collect()
        };
        let count = |v: Verdict| rows.iter().filter(|c| c.verdict == v).count();
        let n = rows.iter().map(|c| c.base.n.min(c.new.n)).max().unwrap_or(0);
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
        // Under --reps auto some of those were shown to stay within the band.
        let stop = r.stop_of(cell);
        let within: Vec<f64> = rows
            .iter()
            .filter(|c| c.verdict == Verdict::NoSignificantChange)
            .filter_map(|c| stop.and_then(|s| s.within(&c.workload, &c.variant)))
            .collect();
        let shown = match within.first() {
            Some(w) if within.len() == same && same > 1 => format!(", each shown to be within ±{w}%"),
            Some(w) if within.len() == same => format!(", shown to be within ±{w}%"),
            Some(w) => format!(", {} of them shown to be within ±{w}%", within.len()),
            None => String::new(),
        };
        if same == rows.len() {
            said.push(format!("no workload changes significantly ({same} compared{shown})"));
        } else if same > 0 {
            said.push(format!(
                "{same} {} no significant change{shown}",
                if same == 1 { "shows" } else { "show" }
            ));
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
        parts.push(format!(
            "On {} ({}, {n} boots of each kernel) {who}{}.",
            cell.arch,
            cell.place(),
            said.join("; ")
        ));
    }
    if r.comparisons.iter().any(|c| c.accel == Accel::Tcg) {
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

pub fn fmt_p(p: f64) -> String {
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
    let mut runs: BTreeMap<(crate::model::ArchName, String, String), usize> = BTreeMap::new();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping() {
        let w = wrap(&"word ".repeat(40), 72, "  ");
        assert!(w.lines().all(|l| l.len() <= 72 && l.starts_with("  ")));
    }
}
