//! HTTP through curl (one external tool, as for every other command): the archive
//! (`lore`) and the lab's REST API (`lava`). A secret (an API token) goes to curl as a
//! config on its stdin, never on a command line another user could read in /proc.

use anyhow::Result;
use std::path::Path;
use xshell::{cmd, Shell};

/// What curl said of one request.
#[derive(Debug, Clone)]
pub struct Answer {
    /// curl's exit code (22: an HTTP error with --fail; 6, 7, 28: no connection).
    pub exit: Option<i32>,
    /// The HTTP status, e.g. "200" ("000" when there was no answer).
    pub status: String,
    /// curl's own error line.
    pub said: String,
}

impl Answer {
    /// No answer at all: name resolution, refused, timed out.
    pub fn unreachable(&self) -> bool {
        matches!(self.exit, Some(5) | Some(6) | Some(7) | Some(28) | Some(35) | Some(52) | Some(56))
    }

    /// curl's error without its "curl: " prefix.
    pub fn why(&self) -> &str {
        self.said.trim_start_matches("curl: ")
    }
}

/// `curl URL` into `to` with `extra` options, redirects followed; `secret_config`
/// (curl config lines, e.g. `header = "Authorization: Token T"`) is fed on stdin.
pub fn curl(extra: &[&str], url: &str, to: &Path, secret_config: Option<&str>) -> Result<Answer> {
    crate::host::require(&[("curl", "curl")])?;
    let sh = Shell::new()?;
    let write_out = "%{http_code}";
    let config: &[&str] = if secret_config.is_some() { &["-K", "-"] } else { &[] };
    let out = cmd!(sh, "curl -sS -L --max-time 120 {config...} {extra...} -o {to} -w {write_out} -- {url}")
        .quiet()
        .ignore_status()
        .stdin(secret_config.unwrap_or(""))
        .output()?;
    Ok(Answer {
        exit: out.status.code(),
        status: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        said: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}
