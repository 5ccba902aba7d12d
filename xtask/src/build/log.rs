//! A build's output: streamed to its log and a progress bar (counting kbuild's steps),
//! and the compiler's error lines picked out of it for the report.

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

pub(super) fn progress(prefix: &str, expected: u64) -> ProgressBar {
    let pb = if expected > 0 { ProgressBar::new(expected) } else { ProgressBar::new_spinner() };
    let style = if expected > 0 {
        ProgressStyle::with_template("{prefix:>18} [{bar:30}] {pos}/{len} {elapsed:>4} {msg}")
    } else {
        ProgressStyle::with_template("{prefix:>18} {spinner} {pos} steps {elapsed:>4} {msg}")
    };
    pb.set_style(style.unwrap().progress_chars("=> "));
    pb.set_prefix(prefix.to_string());
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// Runs `command`, writing every line to `log` and counting kbuild steps
/// (`  CC      mm/mprotect.o`). Returns success, the step count and every other line.
pub(super) fn stream(
    mut command: Command,
    log: &mut std::fs::File,
    pb: &ProgressBar,
) -> Result<(bool, u64, String)> {
    // make, its sub-makes and compilers go with us however we end.
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut group = crate::host::spawn_group(command).context("cannot run make")?;
    let child = &mut group.child;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let readers: Vec<_> = [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ]
    .into_iter()
    .map(|r| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines().map_while(|l| l.ok()) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        })
    })
    .collect();
    drop(tx);
    let mut steps = 0u64;
    // Without a terminal the bar is hidden: a log gets a line every half minute instead.
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut said = std::time::Instant::now();
    // Not only the tail: with -j, other directories go on compiling after an error and
    // can push it far up the log. Step lines are left out; everything else is kept.
    let mut kept = String::new();
    for line in rx {
        if let Err(e) = writeln!(log, "{line}") {
            // make must not go on without us.
            group.kill();
            return Err(e).context("cannot write the build log");
        }
        if let Some(step) = kbuild_step(&line) {
            steps += 1;
            pb.set_position(steps);
            if !tty && said.elapsed() >= Duration::from_secs(30) {
                said = std::time::Instant::now();
                let of = pb.length().filter(|&n| n > 0).map(|n| format!(" of about {n}")).unwrap_or_default();
                crate::progress::say(&format!(
                    "build {}: {steps}{of} steps in {:.0} s, now {step}",
                    pb.prefix().trim(),
                    pb.elapsed().as_secs_f64()
                ));
            }
            pb.set_message(step);
            continue;
        }
        kept.push_str(&line);
        kept.push('\n');
    }
    for r in readers {
        let _ = r.join();
    }
    let status = child.wait()?;
    Ok((status.success(), steps, kept))
}

/// `  CC      mm/mprotect.o` -> `CC mm/mprotect.o`.
pub fn kbuild_step(line: &str) -> Option<String> {
    let rest = line.strip_prefix("  ")?;
    let (verb, target) = rest.split_once(' ')?;
    let ok =
        !verb.is_empty() && verb.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    ok.then(|| format!("{verb} {}", target.trim()))
}

/// The lines of a build log that say what went wrong: compiler and linker errors with
/// the lines after each (the source excerpt), and the first of make's `***` lines; at
/// most 25.
pub fn compiler_errors(log: &str) -> Vec<String> {
    let lines: Vec<&str> = log.lines().collect();
    let mut out: Vec<String> = Vec::new();
    let mut make_line = false;
    let mut i = 0;
    while i < lines.len() && out.len() < 25 {
        let l = lines[i];
        let is_make = l.starts_with("make") && l.contains("***");
        let is_error = l.contains(": error:")
            || l.contains(": fatal error:")
            || l.contains("undefined reference to")
            || (is_make && !make_line);
        make_line |= is_make;
        if is_error {
            out.push(l.trim_end().to_string());
            if l.contains("error:") {
                for extra in lines.iter().skip(i + 1).take(2) {
                    if extra.starts_with(' ') && !extra.trim().is_empty() {
                        out.push(extra.trim_end().to_string());
                    }
                }
            }
        }
        i += 1;
    }
    if out.is_empty() {
        out.extend(lines.iter().rev().take(10).rev().map(|l| l.to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn kbuild_steps_and_errors() {
        assert_eq!(kbuild_step("  CC      mm/mprotect.o").as_deref(), Some("CC mm/mprotect.o"));
        assert_eq!(kbuild_step("  LD [M]  foo.ko").as_deref(), Some("LD [M]  foo.ko"));
        assert_eq!(kbuild_step("mm/mprotect.c: In function 'x':"), None);
        let log = "  CC      mm/mprotect.o\n../mm/mprotect.c:42:9: error: 'foo' undeclared (first use in this function)\n   42 |         foo = 1;\n      |         ^~~\nmake[3]: *** [../scripts/Makefile.build:229: mm/mprotect.o] Error 1\n";
        expect![[r#"
            [
                "../mm/mprotect.c:42:9: error: 'foo' undeclared (first use in this function)",
                "   42 |         foo = 1;",
                "      |         ^~~",
                "make[3]: *** [../scripts/Makefile.build:229: mm/mprotect.o] Error 1",
            ]
        "#]]
        .assert_debug_eq(&compiler_errors(log));
    }
}
