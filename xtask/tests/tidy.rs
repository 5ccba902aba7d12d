//! Checks that keep the tree what ARCHITECTURE.md says it is.

mod common;

use std::path::Path;
use xtask::mail::Addr;
use xtask::render::{self, Templates};
use xtask::report::Report;

fn sources() -> Vec<std::path::PathBuf> {
    walkdir::WalkDir::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect()
}

#[test]
fn every_module_says_what_it_is() {
    for p in sources() {
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("//!"), "{} has no module doc (//!)", p.display());
    }
}

#[test]
fn only_the_command_line_prints() {
    // The library says what happens through progress events; main.rs and cmd/ print.
    for p in sources() {
        let rel = p.strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")).join("src")).unwrap();
        let allowed =
            rel == Path::new("main.rs") || rel.starts_with("cmd") || rel == Path::new("progress.rs");
        let text = std::fs::read_to_string(&p).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        if !allowed {
            assert!(
                !code.contains("println!(") && !code.contains("eprintln!("),
                "{} prints; use progress::say or an Event",
                rel.display()
            );
        }
    }
}

fn reports(dir: &str) -> Vec<(String, Report)> {
    let mut out: Vec<(String, Report)> = std::fs::read_dir(common::data(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let r = serde_json::from_str(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), r)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn every_template_is_known_and_renders_over_every_fixture() {
    let dir = xtask::reftree::project_root().join("templates");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut known: Vec<String> = render::ALL.iter().map(|s| s.to_string()).collect();
    known.sort();
    assert_eq!(on_disk, known, "templates/ and render::ALL differ");
    // Strict undefined: a misspelled variable would fail here.
    let t = Templates::load().unwrap();
    let env = render::Envelope {
        from: Addr { name: "T".into(), email: "t@example.org".into() },
        date: "Sun, 22 Nov 2026 10:00:00 +0000".into(),
        message_id: "1.mmeval@example.org".into(),
    };
    let series = reports("reports");
    let trees = reports("compare");
    assert!(series.len() >= 8 && trees.len() >= 2);
    for (name, r) in &series {
        let mail = render::reply::render(r, &env, &t).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert!(mail.contains("\nWhat was tested\n"), "{name}");
    }
    for (name, r) in &trees {
        let mail =
            render::regression::render(r, &env, &[], &[], &t).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert!(mail.contains("\nTo reproduce with mmeval:\n"), "{name}");
    }
    for (name, r) in series.iter().chain(&trees) {
        let page =
            render::html::render(r, &t, &Default::default()).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert!(page.starts_with("<!DOCTYPE html>"), "{name}");
    }
}

#[test]
fn every_arch_row_has_its_fragment() {
    let t = xtask::arch::table().unwrap();
    for a in t.rows() {
        let f = xtask::reftree::project_root().join("linux-ref/config").join(&a.fragment);
        assert!(f.is_file(), "{}: no {}", a.name, f.display());
    }
}
