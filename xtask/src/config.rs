//! `mmeval.yaml` (the tester, the thresholds, where regression reports go) and who
//! signs a mail: `--from`, else the file's tester, else git's identity.

use crate::compare::Thresholds;
use crate::mail::Addr;
use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// `mmeval.yaml` at the top of the repository.
#[derive(Debug, Default, Deserialize)]
pub struct Config {
    pub tester: Option<Addr>,
    #[serde(default)]
    pub thresholds: Thresholds,
    /// Where a `compare` regression report goes (a new thread).
    #[serde(default)]
    pub regressions: Recipients,
    /// The public-inbox archive a message-id is looked up in (default lore's `all/`).
    #[serde(default)]
    pub lore: Option<Lore>,
}

#[derive(Debug, Deserialize)]
pub struct Lore {
    pub url: String,
}

#[derive(Debug, Deserialize)]
pub struct Recipients {
    pub to: Vec<Addr>,
    pub cc: Vec<Addr>,
}

impl Default for Recipients {
    /// The lists the kernel's documentation asks regression reports to go to.
    fn default() -> Self {
        let a = |e: &str| Addr { name: String::new(), email: e.into() };
        Recipients { to: vec![a("linux-mm@kvack.org")], cc: vec![a("regressions@lists.linux.dev")] }
    }
}

pub fn config() -> Result<Config> {
    let p = crate::reftree::project_root().join("mmeval.yaml");
    match std::fs::read_to_string(&p) {
        Ok(t) => serde_yaml::from_str(&t).with_context(|| format!("{} is not valid", p.display())),
        Err(_) => Ok(Config::default()),
    }
}

/// Who signs the reply: --from, else mmeval.yaml's tester, else git's user.name/email.
pub fn tester(from: Option<Addr>, cfg: &Config) -> Result<Addr> {
    if let Some(a) = from.or_else(|| cfg.tester.clone()) {
        return Ok(a);
    }
    let sh = xshell::Shell::new()?;
    let get =
        |k: &str| xshell::cmd!(sh, "git config --get {k}").quiet().ignore_stderr().read().unwrap_or_default();
    let (name, email) = (get("user.name"), get("user.email"));
    if email.trim().is_empty() {
        // Still write the reply, but under an address that says where it came from.
        let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| "localhost".into());
        let email = format!("{user}@{}", host.trim());
        crate::progress::say(&format!(
            "warning: no tester identity; the reply is From: and Tested-by: {email}. Set --from \"Name <you@example.org>\", mmeval.yaml's tester, or git config user.email before sending it."
        ));
        return Ok(Addr { name: String::new(), email });
    }
    Ok(Addr { name: name.trim().to_string(), email: email.trim().to_string() })
}

/// `Name <addr>` from the command line.
pub fn parse_from(s: &str) -> Result<Addr> {
    match mailparse::addrparse(s).ok().as_ref().and_then(|l| l.first()) {
        Some(mailparse::MailAddr::Single(x)) => Ok(Addr {
            name: crate::mail::clean_header(x.display_name.as_deref().unwrap_or("")),
            email: crate::mail::clean_header(&x.addr),
        }),
        _ => bail!("--from `{s}` is not an address like \"Name <you@example.org>\""),
    }
}
