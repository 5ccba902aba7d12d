//! Progress as events: the library says what happens, the command line decides how it
//! looks (plain lines on a terminal, timestamped ones in a log). Build progress bars are
//! drawn by the build itself (indicatif hides them when stderr is not a terminal).

use crate::model::{ArchName, BootKey, Variant};
use crate::serial::BootStatus;
use std::sync::{Mutex, OnceLock};

/// Something worth telling the user while a command runs.
#[derive(Debug, Clone)]
pub enum Event {
    /// Free text: a decision, a warning, what is being waited for.
    Note(String),
    /// A kernel was built (or found in the store), or failed to build.
    Build { arch: ArchName, variant: Variant, outcome: BuildNote },
    /// A boot ended.
    Boot {
        n: usize,
        of: usize,
        key: BootKey,
        status: BootStatus,
        results: usize,
        failed_runs: usize,
        seconds: f64,
        on: String,
    },
    /// A re-run found boots of the same plan done.
    Resumed { done: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildNote {
    Built,
    Stored,
    Failed,
}

/// The text of an event (without the command's name or a time).
pub fn text(e: &Event) -> String {
    match e {
        Event::Note(t) => t.clone(),
        Event::Build { arch, variant, outcome } => {
            let how = match outcome {
                BuildNote::Built => "ok",
                BuildNote::Stored => "(stored)",
                BuildNote::Failed => "FAILED",
            };
            format!("build {arch} {variant} {how}")
        }
        Event::Boot { n, of, key, status, results, failed_runs, seconds, on } => format!(
            "boot {n}/{of}: {} {} {}cpu {}{on} rep {}: {status:?}, {results} results, {failed_runs} failed runs ({seconds:.1} s)",
            key.arch,
            key.variant,
            key.cpus,
            key.clock,
            key.rep + 1
        ),
        Event::Resumed { done } => format!("resuming: {done} boots already done"),
    }
}

type Sink = Box<dyn Fn(&Event) + Send>;

fn sink() -> &'static Mutex<Option<Sink>> {
    static SINK: OnceLock<Mutex<Option<Sink>>> = OnceLock::new();
    SINK.get_or_init(|| Mutex::new(None))
}

/// Where events go from now on (the command line sets this once).
pub fn set_sink(f: impl Fn(&Event) + Send + 'static) {
    *sink().lock().unwrap() = Some(Box::new(f));
}

pub fn emit(e: Event) {
    match sink().lock().unwrap().as_ref() {
        Some(f) => f(&e),
        None => eprintln!("{}", text(&e)),
    }
}

pub fn say(t: &str) {
    emit(Event::Note(t.to_string()));
}
