//! The report's parts assembled from stored records: boots, machines, the lab, and the
//! comparisons (fixed, `--reps auto`'s stopped cells, `--per-patch`'s steps). Pure.

use super::*;

/// The lab of a run's boots, from their records.
pub fn lab_info(target: &Target, done: &[Stored]) -> Option<LabInfo> {
    let Target::Lava(url, device_type) = target else { return None };
    let jobs: Vec<&crate::lava::LabJob> = done.iter().filter_map(|s| s.record.lava.as_ref()).collect();
    let mut devices: Vec<String> = jobs.iter().filter_map(|j| j.device.clone()).collect();
    devices.sort();
    devices.dedup();
    Some(LabInfo {
        url: url.clone(),
        device_type: device_type.clone(),
        devices,
        jobs: jobs.len(),
        qemu: jobs.iter().find_map(|j| j.qemu.clone()),
        command: jobs.iter().find_map(|j| j.command.as_deref()).map(|c| {
            // The lab's own file paths say nothing; their names are enough.
            c.split(' ')
                .map(|w| if w.starts_with('/') { w.rsplit('/').next().unwrap_or(w) } else { w })
                .collect::<Vec<_>>()
                .join(" ")
        }),
    })
}

pub fn boot_entry(s: &Stored) -> BootEntry {
    let r = &s.record;
    BootEntry {
        arch: r.provenance.arch.clone(),
        variant: s.variant.clone(),
        cpus: r.provenance.vcpus,
        clock: r.provenance.clock,
        accel: r.provenance.accel,
        rep: s.rep,
        status: r.boot.status,
        kernel: r.provenance.kernel.clone(),
        results: r.boot.results.len(),
        failures: r.boot.failures.clone(),
        warnings: r.boot.warnings.clone(),
        excerpt: r.boot.excerpt.clone(),
        corrupt_lines: r.boot.corrupt_lines,
        seconds: r.seconds,
        log: r.log.display().to_string(),
        job: r.lava.clone(),
    }
}

/// One entry per (arch, accelerator) the boots ran on. Pure.
pub fn machines(done: &[Stored], mem_mib: u32, env: &EnvFacts) -> Vec<Machine> {
    let mut out: Vec<Machine> = Vec::new();
    for s in done {
        let p = &s.record.provenance;
        let boot_env = s.record.boot.env.clone().unwrap_or_default();
        if let Some(m) = out.iter_mut().find(|m| m.arch == p.arch && m.accel == p.accel) {
            if !m.vcpus.contains(&p.vcpus) {
                m.vcpus.push(p.vcpus);
                m.vcpus.sort();
            }
            continue;
        }
        let (emulator, machine, mem) = match (p.accel, &env.machine) {
            (Accel::Metal, Some(desc)) => (String::new(), desc.clone(), 0),
            _ => {
                let (v, m) = env.qemu.get(&p.arch).cloned().unwrap_or_default();
                (v, m, mem_mib)
            }
        };
        out.push(Machine {
            arch: p.arch.clone(),
            accel: p.accel,
            cpu_model: p.cpu_model.clone(),
            emulator,
            machine,
            vcpus: vec![p.vcpus],
            mem_mib: mem,
            page_size: boot_env.page_size,
            thp: boot_env.thp,
        });
    }
    out
}

/// Every variant after the first against the first, per cell and workload of the suite.
/// `--reps auto`: how each cell ended, and the comparisons, each cell's from the boots
/// of the rounds up to its stopping look, at the looks' level: what the stopping
/// rule's error rate is about.
pub fn stopped_comparisons(
    d: &crate::sequential::Design,
    done: &[Stored],
    variants: &[Variant],
    suite: &crate::suite::Suite,
) -> (Vec<CellStop>, Vec<Comparison>) {
    let stops = crate::sequential::cell_stops(d, variants, suite, done);
    let cell = |s: &Stored| {
        let p = &s.record.provenance;
        (p.arch.clone(), p.vcpus, p.clock)
    };
    let described = stops
        .iter()
        .map(|(key, stop)| CellStop {
            arch: key.0.clone(),
            cpus: key.1,
            clock: key.2,
            boots: stop.look.n,
            boots_run: done.iter().filter(|s| &cell(s) == key).count(),
            undecided: stop.undecided.clone(),
            out_of_reach: stop.out_of_reach.clone(),
            equivalent: stop.equivalent.clone(),
            within_pct: Some(d.thresholds.min_change_pct),
            why: stop.why(),
        })
        .collect();
    let used: Vec<Stored> =
        done.iter().filter(|s| stops.get(&cell(s)).is_none_or(|stop| s.rep < stop.look.n)).cloned().collect();
    (described, comparisons(&used, variants, suite, &d.verdict_thresholds()))
}

pub fn comparisons(
    done: &[Stored],
    variants: &[Variant],
    suite: &crate::suite::Suite,
    t: &Thresholds,
) -> Vec<Comparison> {
    let tagged = tag(done, suite);
    variants.iter().skip(1).flat_map(|v| compare::compare(&tagged, &variants[0], v, t)).collect()
}

/// Each variant against the one before it (`--per-patch`), per cell and workload.
pub fn step_comparisons(
    done: &[Stored],
    variants: &[Variant],
    suite: &crate::suite::Suite,
    t: &Thresholds,
) -> Vec<Comparison> {
    let tagged = tag(done, suite);
    variants.windows(2).flat_map(|w| compare::compare(&tagged, &w[0], &w[1], t)).collect()
}

/// Every sample of the suite's runs in `done`, tagged with its cell and variant.
fn tag<'a>(done: &'a [Stored], suite: &'a crate::suite::Suite) -> Vec<Tagged<'a>> {
    let mut tagged = Vec::new();
    for s in done {
        let p = &s.record.provenance;
        for run in &suite.runs {
            tagged.push(Tagged {
                arch: &p.arch,
                accel: p.accel,
                clock: p.clock,
                cpus: p.vcpus,
                variant: &s.variant,
                sample: s.record.boot.results.iter().find(|r| r.id == run.id),
                id: &run.id,
            });
        }
    }
    tagged
}
