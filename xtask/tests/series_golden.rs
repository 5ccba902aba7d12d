//! Every mail fixture in tests/data/series, read as `cargo xtask series` reads it, with
//! the summary (or the one error) compared to tests/data/series-golden/<name>.txt.
//! Re-bless with UPDATE_EXPECT=1 after a deliberate change.

mod common;

use expect_test::expect_file;
use xtask::{input, series};

fn render(path: &std::path::Path, choice: series::Choice) -> String {
    let rel = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap();
    match input::read_series(rel, choice) {
        Ok(s) => series::summary(&s),
        Err(e) => format!("error: {e:#}\n"),
    }
}

#[test]
fn every_fixture_matches_its_golden() {
    let dir = common::data("series");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 20, "fixtures missing: {names:?}");
    for name in names {
        let out = render(&dir.join(&name), series::Choice::default());
        expect_file![format!("data/series-golden/{name}.txt")].assert_eq(&out);
    }
}

#[test]
fn older_revision_and_partial_on_request() {
    let v1 = render(
        &common::data("series/mixed-v1-v2.mbox"),
        series::Choice { revision: Some(1), partial: false },
    );
    expect_file!["data/series-golden/mixed-v1-v2.mbox.rev1.txt"].assert_eq(&v1);
    let none = render(
        &common::data("series/mixed-v1-v2.mbox"),
        series::Choice { revision: Some(4), partial: false },
    );
    assert_eq!(
        none,
        "error: tests/data/series/mixed-v1-v2.mbox: there is no v4 in the input; it has v1, v2\n"
    );
    let partial =
        render(&common::data("series/missing-patch.mbox"), series::Choice { revision: None, partial: true });
    expect_file!["data/series-golden/missing-patch.mbox.partial.txt"].assert_eq(&partial);
}

#[test]
fn json_model_of_a_thread() {
    let mb = input::read_mailbox(&common::data("series/good-v2.mbox")).unwrap();
    let json = serde_json::to_string_pretty(&mb).unwrap();
    expect_file!["data/series-golden/good-v2.mbox.json"].assert_eq(&format!("{json}\n"));
}

#[test]
fn forged_and_quoted_trailers_do_not_count() {
    let s = input::read_series(&common::data("series/good-v2.mbox"), series::Choice::default()).unwrap();
    let all: Vec<String> = s
        .patches
        .iter()
        .flat_map(|p| p.follow_up_trailers.iter().map(|t| format!("{}/{}", p.number, t.value)))
        .collect();
    assert!(!all.iter().any(|t| t.contains("alice@")), "relayed trailer counted: {all:?}");
    // Carla's reply quotes Tomasz's tag; only her own Acked-by counts, for patch 1 only.
    assert_eq!(
        all.iter().filter(|t| t.contains("carla@")).collect::<Vec<_>>(),
        vec!["1/Carla Reviewer <carla@example.org>"]
    );
    // Tomasz's reply to the cover letter counts for every patch.
    assert_eq!(all.iter().filter(|t| t.contains("tnowak@")).count(), 3);
}
