//! A series by message-id against a real public-inbox archive (what lore runs):
//! Debian's public-inbox, an inbox made with `public-inbox-init`, the shipped gate
//! series delivered into it with `public-inbox-mda`, served by `public-inbox-httpd` on
//! 127.0.0.1 (started here and stopped by its pid). `series`, `apply` and
//! `eval --dry-run` by message-id, by a patch's message-id and by link must say exactly
//! what they say for the file; a missing message, a stopped server, an answer that is
//! not gzip and a truncated one each give one line.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const SERIES: &str = "../patches/mprotect-folio-hint-gate.mbox";
const COVER: &str = "20261110083000.5151-0-mira@example.org";

fn xtask(args: &[&str]) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The archive: an inbox and its httpd, killed (by pid) when dropped.
struct Archive {
    _dir: tempfile::TempDir,
    httpd: Child,
    base: String,
}

impl Drop for Archive {
    fn drop(&mut self) {
        let _ = self.httpd.kill();
        let _ = self.httpd.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A v3 of the shipped series, sent a week after v2 as a thread of its own: v2's
/// cover and patches with the version, ids, threading and date changed.
fn v3() -> Vec<Vec<u8>> {
    let shipped = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(SERIES)).unwrap();
    xtask::mail::split_container(&shipped)
        .unwrap()
        .into_iter()
        .map(|m| String::from_utf8(m).unwrap())
        .filter(|m| m.contains("Message-ID: <20261110083000.5151-"))
        .map(|m| {
            let mut m = m
                .replace("[PATCH v2 ", "[PATCH v3 ")
                .replace("20261110083000.5151-", "20261117083000.6161-")
                .replace("Tue, 10 Nov 2026", "Tue, 17 Nov 2026");
            if m.contains("Message-ID: <20261117083000.6161-0-") {
                m = m
                    .replace("In-Reply-To: <20261103091500.4242-0-mira@example.org>\n", "")
                    .replace("References: <20261103091500.4242-0-mira@example.org>\n", "");
            }
            m.replace("<20261103091500.4242-0-mira@example.org> ", "").into_bytes()
        })
        .collect()
}

fn archive() -> Archive {
    xtask::host::require(&[("public-inbox-httpd", "public-inbox")]).unwrap();
    // The search index (what --check-newer asks) needs Xapian's Perl binding.
    if !Command::new("perl").args(["-MSearch::Xapian", "-e1"]).status().unwrap().success() {
        xtask::host::install(&["libsearch-xapian-perl"]).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/test");
    let config = d.join("config");
    let pi = |prog: &str| {
        let mut c = Command::new(prog);
        c.env("PI_CONFIG", &config).env("HOME", d).env("PI_EMERGENCY", d.join("emergency"));
        c
    };
    let ok = pi("public-inbox-init")
        .args(["-V2", "test"])
        .arg(d.join("inbox"))
        .args([&url, "test@example.org"])
        .status()
        .unwrap()
        .success();
    assert!(ok, "public-inbox-init");
    let ok = Command::new("git")
        .args(["config", "-f"])
        .arg(&config)
        .args(["publicinboxmda.spamcheck", "none"])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let shipped = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(SERIES)).unwrap();
    let mut messages = xtask::mail::split_container(&shipped).unwrap();
    messages.extend(v3());
    for m in &messages {
        let mut mda = pi("public-inbox-mda")
            .arg("--no-precheck")
            .env("ORIGINAL_RECIPIENT", "test@example.org")
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        mda.stdin.take().unwrap().write_all(m).unwrap();
        assert!(mda.wait().unwrap().success(), "public-inbox-mda");
    }
    let httpd = pi("public-inbox-httpd")
        .args(["-l", &format!("http://127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let a = Archive { _dir: dir, httpd, base: format!("{url}/") };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return a;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("public-inbox-httpd did not listen on {port}");
}

/// One answer to whatever is asked, from a listener of our own: `body` with `status`.
fn one_answer(status: &str, content_type: &str, body: Vec<u8>) -> (String, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}/x/", l.local_addr().unwrap().port());
    let status = status.to_string();
    let content_type = content_type.to_string();
    let t = std::thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    (base, t)
}

#[test]
fn a_series_by_message_id_is_the_series_of_the_file() {
    let a = archive();
    let from_file = xtask(&["series", SERIES]);
    assert!(from_file.0, "{}", from_file.2);
    let patch = "20261110083000.5151-2-mira@example.org";
    let link = format!("{}{COVER}/T/#t", a.base);
    for arg in [format!("<{COVER}>"), patch.to_string(), link] {
        let (ok, out, err) = xtask(&["series", &arg, "--lore", &a.base]);
        assert!(ok, "{arg}: {err}");
        assert_eq!(out, from_file.1, "{arg}");
        assert!(err.contains("fetching the thread of <"), "{err}");
    }

    // --check-newer: v3, a thread of its own, found by the archive's search as b4
    // searches (subject and author from the series' date on).
    let v3_cover = "20261117083000.6161-0-mira@example.org";
    let (ok, out, err) = xtask(&["series", COVER, "--lore", &a.base, "--check-newer"]);
    assert!(ok, "{err}");
    assert_eq!(out, from_file.1, "stdout is the summary, as without the flag");
    assert!(
        err.contains(&format!("newer: v3 is in {} (<{v3_cover}>): cargo xtask series {v3_cover}", a.base)),
        "{err}"
    );
    let (ok, _, err) = xtask(&["series", v3_cover, "--lore", &a.base, "--check-newer"]);
    assert!(ok, "{err}");
    assert!(err.contains(&format!("newer: none in {}", a.base)), "{err}");
    let dry = tempfile::tempdir().unwrap();
    let d = dry.path().to_str().unwrap();
    let (ok, _, err) = xtask(&["eval", COVER, "--lore", &a.base, "--check-newer", "--dry-run", "--out", d]);
    assert!(!ok);
    assert!(
        err.contains(&format!("v3 of this series is in {} (<{v3_cover}>): evaluate it (cargo xtask eval {v3_cover}), or pass --rev", a.base)),
        "{err}"
    );
    let (ok, out, err) =
        xtask(&["eval", COVER, "--lore", &a.base, "--check-newer", "--rev", "2", "--dry-run", "--out", d]);
    assert!(ok && out.starts_with("plan: "), "{err}");
    assert!(err.contains("warning: v3 of this series is in"), "{err}");

    // apply: the same commits as from the file (the same series on the same base).
    let (ok, from_file, err) = xtask(&["apply", SERIES]);
    assert!(ok, "{err}");
    let (ok, by_id, err) = xtask(&["apply", COVER, "--lore", &a.base]);
    assert!(ok, "{err}");
    assert_eq!(by_id, from_file);

    // eval --dry-run: the same plan; nothing written.
    let out = tempfile::tempdir().unwrap();
    let o = out.path().to_str().unwrap();
    let common = ["--arch", "x86_64", "--reps", "2", "--boot-jobs", "2", "--dry-run", "--out", o];
    let (ok, plan_file, err) = xtask(&[&["eval", SERIES][..], &common].concat());
    assert!(ok, "{err}");
    let (ok, plan_id, err) = xtask(&[&["eval", COVER, "--lore", &a.base][..], &common].concat());
    assert!(ok, "{err}");
    assert_eq!(plan_id, plan_file);
    assert!(std::fs::read_dir(out.path()).unwrap().next().is_none(), "a dry run wrote something");

    // What goes wrong is one line, naming the URL and what to do.
    let one_line = |args: &[&str], want: &[&str]| {
        let (ok, _, err) = xtask(args);
        assert!(!ok, "{args:?} succeeded");
        let last = err.lines().filter(|l| !l.contains("fetching the thread")).collect::<Vec<_>>();
        assert_eq!(last.len(), 1, "{err}");
        for w in want {
            assert!(last[0].contains(w), "{:?} lacks {w:?}", last[0]);
        }
    };
    one_line(
        &["series", "no-such-message@example.org", "--lore", &a.base],
        &["404", "no-such-message@example.org/t.mbox.gz", "check the message-id"],
    );
    let (html, t) = one_answer("200 OK", "text/html", b"<html>not an archive</html>".to_vec());
    one_line(&["series", COVER, "--lore", &html], &["did not answer with a gzip'd mbox", "<html>"]);
    t.join().unwrap();
    // A thread cut short: the first half of the real answer.
    let whole = {
        let mut body = Vec::new();
        let url = xtask::lore::thread_url(&a.base, COVER);
        let o = Command::new("curl").args(["-sS", "-L", "--fail", &url]).output().unwrap();
        assert!(o.status.success());
        body.extend(o.stdout);
        body
    };
    assert!(whole.starts_with(&[0x1f, 0x8b]), "public-inbox answers gzip");
    let (cut, t) = one_answer("200 OK", "application/gzip", whole[..whole.len() / 2].to_vec());
    one_line(&["series", COVER, "--lore", &cut], &["damaged", "fetch it again"]);
    t.join().unwrap();
    drop(a);
    // Nothing listens there any more.
    let gone = format!("http://127.0.0.1:{}/test/", free_port());
    one_line(&["series", COVER, "--lore", &gone], &["cannot reach", "save the thread"]);
    // Nothing half-written is left in the cache.
    let lore = xtask::reftree::cache_root().join("lore");
    let parts: Vec<PathBuf> = std::fs::read_dir(&lore)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".part"))
        .collect();
    assert!(parts.is_empty(), "{parts:?}");
}
