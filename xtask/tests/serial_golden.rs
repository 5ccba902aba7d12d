//! Every serial log in tests/data/serial through the parser, compared with
//! tests/data/serial-golden/<name>.txt (re-bless with UPDATE_EXPECT=1).

mod common;

use expect_test::expect_file;
use std::fmt::Write;
use xtask::serial;

fn render(b: &serial::Boot) -> String {
    let mut o = String::new();
    writeln!(o, "status: {:?}", b.status).unwrap();
    writeln!(o, "suite: {:?}", b.suite).unwrap();
    if let Some(e) = &b.env {
        writeln!(
            o,
            "env: {} {} page {} cpus {} {} thp {} mthp {}",
            e.kernel, e.machine, e.page_size, e.cpus, e.cpu_model, e.thp, e.mthp
        )
        .unwrap();
    }
    writeln!(o, "lines: {} repaired, {} corrupt", b.repaired_lines, b.corrupt_lines).unwrap();
    for s in &b.results {
        writeln!(
            o,
            "result {} {} median {} [{} .. {}] reps {} samples {:?}",
            s.id, s.metric, s.median, s.min, s.max, s.reps, s.samples
        )
        .unwrap();
    }
    for f in &b.failures {
        writeln!(o, "failed {}: {}", f.id, f.reason).unwrap();
    }
    for w in &b.warnings {
        writeln!(o, "warning {w}").unwrap();
    }
    for l in b.excerpt.iter().take(8) {
        writeln!(o, "| {l}").unwrap();
    }
    o
}

#[test]
fn every_log_matches_its_golden() {
    let dir = common::data("serial");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 6, "{names:?}");
    for name in names {
        let text = String::from_utf8_lossy(&std::fs::read(dir.join(&name)).unwrap()).into_owned();
        let boot = serial::parse(&text, name.starts_with("timeout"));
        expect_file![format!("data/serial-golden/{name}.txt")].assert_eq(&render(&boot));
    }
}

#[test]
fn crlf_and_interleaving_lose_nothing() {
    let read = |n: &str| {
        String::from_utf8_lossy(&std::fs::read(common::data(&format!("serial/{n}"))).unwrap()).into_owned()
    };
    let normal = serial::parse(&read("normal-x86_64.log"), false);
    let crlf = serial::parse(&read("crlf-x86_64.log"), false);
    let inter = serial::parse(&read("interleaved-x86_64.log"), false);
    assert_eq!(normal.results.len(), 8);
    assert_eq!(crlf.results, normal.results);
    assert_eq!(inter.results, normal.results);
    assert_eq!((inter.repaired_lines, inter.corrupt_lines), (2, 0));
}
