//! A bounded random-mutation loop over the parsers that read untrusted input: the
//! mail container and message parser, the patch and trailer parser, the series
//! builder, the diff parser and applier, and the serial-log parser. Inputs are the
//! shipped fixtures, mutated (bytes flipped, ranges cut or doubled, hostile tokens
//! put in, two fixtures spliced); the seed and the number of inputs are fixed, so a
//! failure is reproducible. Asserted for every input: no panic, no input over the time
//! limit (a watchdog aborts the process on a hang, naming the input), errors are one
//! short line, applying writes nothing outside the repository; and at the end the
//! peak memory of the whole loop is bounded.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The project's seeded generator, enough for choosing mutations.
use xtask::stats::SplitMix64 as Rng;

/// What hostile mail and broken logs are made of.
const TOKENS: &[&[u8]] = &[
    b"\n",
    b"\r\n",
    b"\n\n",
    b"@@ -1,4294967295 +1,99999999 @@\n",
    b"@@ -0,0 +1 @@\n+x\n",
    b"[PATCH v4294967295 1/4294967295] x\n",
    b"Subject: [PATCH 1/1000000] mm: x\n",
    b"diff --git a/mm/x.c b/mm/x.c\n",
    b"--- a/../../etc/passwd\n+++ b/../../etc/passwd\n",
    b"+++ b/.git/config\n",
    b"new file mode 120000\n",
    b"GIT binary patch\nliteral 5\n",
    b"\nFrom mboxrd@z Thu Jan  1 00:00:00 1970\n",
    b"\n>From x\n",
    b"=?utf-8?b?w7bDpMO8?=",
    b"=?x-unknown?q?=FF=FE?=",
    b"Content-Type: multipart/mixed; boundary=\"b\"\n\n--b\n",
    b"Content-Transfer-Encoding: base64\n\n",
    b"Content-Transfer-Encoding: quoted-printable\n\n=\n",
    b"\x1b]0;owned\x07\x1b[2J",
    b"\xff\xfe\x00",
    b"Message-ID: <$(touch /tmp/x)@evil>\n",
    b"In-Reply-To: <a@b>\nReferences: <a@b> <c@d>\n",
    b"Tested-by: \x1b[31mX\x1b[0m <x@y>\n",
    b"99999999999999999999999",
    b"---\n",
    b"-- \n",
    b"mmeval: result ",
    b"mmeval: begin ",
    b"mmeval: env ",
    b"mmeval: end\n",
    b"Kernel panic - not syncing: x\n",
];

fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] = rng.next_u64() as u8;
            }
            1 if len > 0 => {
                let a = rng.below(len);
                let b = (a + rng.below(256)).min(len);
                v.drain(a..b);
            }
            2 if len > 0 => {
                let a = rng.below(len);
                let b = (a + rng.below(4096)).min(len);
                let copy = v[a..b].to_vec();
                let at = rng.below(v.len());
                v.splice(at..at, copy);
            }
            3 | 4 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                let at = rng.below(len + 1);
                v.splice(at..at, t.iter().copied());
            }
            5 if len > 0 => v.truncate(rng.below(len)),
            _ if !other.is_empty() => {
                let cut = rng.below(len + 1);
                let from = rng.below(other.len());
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            _ => {}
        }
    }
    v
}

fn fixtures(dir: &Path, exts: &[&str]) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .filter(|e| exts.iter().any(|x| e.path().to_string_lossy().ends_with(x)))
        .map(|e| (e.path().to_path_buf(), std::fs::read(e.path()).unwrap()))
        .collect();
    out.sort();
    out
}

/// An error the user sees: one line, short.
fn one_line(what: &str, e: &anyhow::Error) {
    let text = format!("{e:#}");
    assert!(!text.contains('\n') && text.len() <= 2000, "{what}: not one short line: {text:?}");
}

/// Runs `f` for each input under a watchdog that aborts the process (naming the
/// input) when one takes longer than `limit`.
struct Watchdog {
    current: Arc<AtomicU64>,
    started: Arc<std::sync::Mutex<Instant>>,
}

impl Watchdog {
    fn new(limit: Duration, label: &'static str) -> Watchdog {
        let current = Arc::new(AtomicU64::new(u64::MAX));
        let started = Arc::new(std::sync::Mutex::new(Instant::now()));
        let (c, s) = (current.clone(), started.clone());
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(200));
            let n = c.load(Ordering::SeqCst);
            if n != u64::MAX && s.lock().unwrap().elapsed() > limit {
                eprintln!("{label}: input {n} took over {limit:?}: a hang");
                std::process::abort();
            }
        });
        Watchdog { current, started }
    }
    fn start(&self, n: u64) {
        *self.started.lock().unwrap() = Instant::now();
        self.current.store(n, Ordering::SeqCst);
    }
    fn stop(&self) -> Duration {
        self.current.store(u64::MAX, Ordering::SeqCst);
        self.started.lock().unwrap().elapsed()
    }
}

/// The slowest input may take this long (a debug build, a loaded machine).
const LIMIT: Duration = Duration::from_secs(5);

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn tree_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| !e.path().components().any(|c| c.as_os_str() == ".git"))
        .map(|e| e.path().to_path_buf())
        .collect();
    v.sort();
    v
}

#[test]
fn mutated_mail_never_panics_hangs_or_escapes() {
    let mut inputs = fixtures(&common::data("series"), &[".mbox", ".eml", ".patch", ".txt"]);
    inputs.extend(fixtures(&xtask::reftree::project_root().join("patches"), &[".mbox"]));
    let base = tempfile::tempdir().unwrap();
    let repo_dir = base.path().join("repo");
    std::fs::create_dir(&repo_dir).unwrap();
    let repo = common::toy_repo(&repo_dir);
    let before = tree_files(base.path());
    let head = repo.head().unwrap().target().unwrap();

    let dog = Watchdog::new(Duration::from_secs(60), "mail");
    let mut rng = Rng(0x6d6d_6576_616c_0001);
    let (mut slowest, mut parsed, mut applied) = (Duration::ZERO, 0, 0);
    const N: u64 = 10000;
    for n in 0..N {
        let (_, a) = &inputs[rng.below(inputs.len())];
        let (_, b) = &inputs[rng.below(inputs.len())];
        let input = mutate(&mut rng, a, b);
        dog.start(n);
        match xtask::mail::split_container(&input) {
            Err(e) => one_line("split", &e),
            Ok(raws) => {
                let mails: Vec<_> = raws
                    .iter()
                    .enumerate()
                    .filter_map(|(i, r)| xtask::mail::parse_message(r, i).ok())
                    .collect();
                for m in &mails {
                    let _ = xtask::patch::looks_like_reply(m);
                    let _ = xtask::patch::reply_trailers(m);
                    if let Err(e) = xtask::patch::parse_patch_mail(m) {
                        one_line("patch", &e);
                    }
                    let body: Vec<&[u8]> = m.raw_body.split(|&c| c == b'\n').collect();
                    if let Err(e) = xtask::diff::parse(&body) {
                        one_line("diff", &e);
                    }
                }
                match xtask::series::build_mailbox(&mails) {
                    Err(e) => one_line("mailbox", &e),
                    Ok(mb) => match xtask::series::choose(&mb, Default::default()) {
                        Err(e) => one_line("choose", &e),
                        Ok(s) => {
                            parsed += 1;
                            // Applying writes git objects and one ref, nothing else.
                            if n % 4 == 0 && !s.patches.is_empty() {
                                let refname = format!("refs/heads/eval/fuzz-{n}");
                                match xtask::apply::apply_series(&repo, &s, head, &refname) {
                                    Ok(xtask::apply::ApplyOutcome::Applied(_)) => applied += 1,
                                    Ok(_) => {}
                                    Err(e) => one_line("apply", &e),
                                }
                            }
                        }
                    },
                }
            }
        }
        let took = dog.stop();
        assert!(took < LIMIT, "input {n} took {took:?}");
        slowest = slowest.max(took);
    }
    assert_eq!(tree_files(base.path()), before, "applying wrote outside the object store");
    let peak = peak_rss_kib();
    eprintln!(
        "mail: {N} mutated inputs, {parsed} made a series, {applied} applied; slowest {slowest:?}, peak RSS {} MiB",
        peak >> 10
    );
    assert!(parsed > N / 20, "the mutations should leave many inputs parseable: {parsed}");
    assert!(peak < 1 << 20, "peak RSS {peak} KiB");
}

#[test]
fn mutated_serial_logs_never_panic_or_hang() {
    let inputs = fixtures(&common::data("serial"), &[".log"]);
    assert!(!inputs.is_empty());
    let dog = Watchdog::new(Duration::from_secs(60), "serial");
    let mut rng = Rng(0x6d6d_6576_616c_0002);
    let mut slowest = Duration::ZERO;
    const N: u64 = 10000;
    for n in 0..N {
        let (_, a) = &inputs[rng.below(inputs.len())];
        let (_, b) = &inputs[rng.below(inputs.len())];
        let input = mutate(&mut rng, a, b);
        let text = String::from_utf8_lossy(&input);
        dog.start(n);
        let boot = xtask::serial::parse(&text, n % 3 == 0);
        let took = dog.stop();
        // Whatever the log, the excerpt shown to the user stays small.
        let excerpt: usize = boot.excerpt.iter().map(String::len).sum();
        assert!(excerpt <= 64 << 10, "input {n}: excerpt of {excerpt} bytes");
        assert!(took < LIMIT, "input {n} took {took:?}");
        slowest = slowest.max(took);
    }
    eprintln!("serial: {N} mutated logs, slowest {slowest:?}, peak RSS {} MiB", peak_rss_kib() >> 10);
}
