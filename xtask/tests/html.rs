//! report.html in a real browser: Debian's headless Chromium loads every report
//! fixture's page; the DOM must hold one plot per comparison, strings from mail must
//! arrive as text (a `<script>` subject stays text), and a screenshot must show a page.

mod common;

use std::path::Path;
use std::process::Command;
use xtask::render::{html, Templates};
use xtask::report::Report;

fn chromium(args: &[&str], page: &Path, profile: &Path) -> std::process::Output {
    Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium (Debian package chromium)")
}

fn page(r: &Report, dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.html"));
    std::fs::write(&path, html::render(r, &Templates::load().unwrap(), &Default::default()).unwrap())
        .unwrap();
    path
}

fn fixture(name: &str) -> Report {
    serde_json::from_str(&std::fs::read_to_string(common::data(&format!("reports/{name}.json"))).unwrap())
        .unwrap()
}

#[test]
fn pages_render_in_chromium_with_their_plots() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["improvement", "panic", "apply-failure"] {
        let r = fixture(name);
        let p = page(&r, dir.path(), name);
        let out = chromium(&["--dump-dom"], &p, &dir.path().join("profile"));
        let dom = String::from_utf8_lossy(&out.stdout);
        assert!(dom.contains("<h1>"), "{name}: no page in {dom:.300}");
        let plots = r.comparisons.iter().filter(|c| c.base.n + c.new.n > 0).count();
        assert_eq!(dom.matches("<svg class=\"strip\"").count(), plots, "{name}: plots");
        // One overview per cell, its axis in percent, with the zero line and the band.
        let cells = xtask::compare::by_cell(&r.comparisons).len();
        assert_eq!(dom.matches("<svg class=\"overview\"").count(), cells, "{name}: overviews");
        if cells > 0 {
            assert!(dom.contains("0%</text>") && dom.contains("(right: faster)</text>"), "{name}: the axis");
            assert!(dom.contains("changes under 1% do not count"), "{name}: the band");
        }
        assert!(dom.matches("<tr>").count() >= r.comparisons.len(), "{name}: rows");
        if name == "panic" {
            assert!(dom.contains("kernel BUG at mm/mprotect.c"), "{name}: the failure's log lines");
        }
    }
    let shot = dir.path().join("improvement.png");
    let out = chromium(
        &["--hide-scrollbars", "--window-size=1300,2000", &format!("--screenshot={}", shot.display())],
        &dir.path().join("improvement.html"),
        &dir.path().join("profile"),
    );
    assert!(shot.is_file(), "{}", String::from_utf8_lossy(&out.stderr));
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let (w, h) = (
        u32::from_be_bytes(png[16..20].try_into().unwrap()),
        u32::from_be_bytes(png[20..24].try_into().unwrap()),
    );
    assert_eq!((w, h), (1300, 2000));
    // A blank page compresses to a few KB; tables and plots do not.
    assert!(png.len() > 50_000, "screenshot only {} bytes", png.len());
}

#[test]
fn strings_from_mail_are_text_not_markup() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = fixture("improvement");
    r.series.subject = "<script>document.title='pwned'</script><b>bold</b>".into();
    r.series.author.name = "\"><img src=x onerror=alert(1)>".into();
    r.series.patches[0].subject = "</li><script>alert(2)</script>".into();
    let p = page(&r, dir.path(), "hostile");
    let out = chromium(&["--dump-dom"], &p, &dir.path().join("profile"));
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(!dom.contains("<script>"), "a script element from mail: {dom:.2000}");
    assert!(!dom.contains("<img"), "an img element from mail");
    assert!(!dom.contains("<b>bold</b>"));
    assert!(dom.contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;"), "{dom:.1500}");
    assert!(!dom.contains("<title>pwned</title>"));
}
