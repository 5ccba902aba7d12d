//! The command line, in one place: flags in, stage calls out.

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use xtask::{apply, input, reftree, series};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Evaluate linux-mm patch series: apply, build, boot, measure, reply")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read a series (mbox, mbox.gz, .eml/.patch, or a directory) and summarise it.
    Series {
        file: PathBuf,
        #[command(flatten)]
        pick: Pick,
        /// Print the whole model as JSON (every revision, warnings, trailers).
        #[arg(long)]
        json: bool,
    },
    /// Apply a series to a kernel tree with git2, as commits on refs/heads/eval/<slug>.
    Apply {
        file: PathBuf,
        #[command(flatten)]
        pick: Pick,
        #[command(flatten)]
        tree: TreeArgs,
        /// Base commit (default: the series' base-commit when the tree has it, else HEAD).
        #[arg(long)]
        base: Option<String>,
    },
    /// Fetch and import a reference tree from linux-ref/refs.yaml into the cache.
    Ref {
        /// A name from linux-ref/refs.yaml (default: the manifest's default).
        name: Option<String>,
    },
}

#[derive(Args)]
struct Pick {
    /// Which revision (default: the highest).
    #[arg(long = "rev")]
    rev: Option<u32>,
    /// Accept an incomplete revision and use the patches that are there.
    #[arg(long)]
    partial: bool,
}

impl Pick {
    fn choice(&self) -> series::Choice {
        series::Choice { revision: self.rev, partial: self.partial }
    }
}

#[derive(Args)]
struct TreeArgs {
    /// Your own kernel checkout (never modified); default: the reference tree.
    #[arg(long)]
    tree: Option<PathBuf>,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Series { file, pick, json } => {
            if json {
                let mb = input::read_mailbox(&file)?;
                let chosen = series::choose(&mb, pick.choice())?;
                let out = serde_json::json!({ "chosen": chosen, "mailbox": mb });
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print!("{}", series::summary(&input::read_series(&file, pick.choice())?));
            }
        }
        Command::Apply { file, pick, tree, base } => {
            let s = input::read_series(&file, pick.choice())?;
            let tree = match tree.tree {
                Some(t) => t,
                None => reftree::existing_default()?,
            };
            let applied = apply::apply_to_repo(&tree, &s, base.as_deref())?;
            println!("Applied v{} of \"{}\" to {}", s.version, s.subject(), tree.display());
            println!("  base {} ({})", applied.base, applied.base_source);
            for p in &applied.patches {
                let how = if p.three_way { "  (three-way)" } else { "" };
                println!("  {} {}/{} {}{how}", &p.commit[..12], p.number, s.patches.len(), p.subject);
            }
            println!("  {} -> {}", applied.refname, applied.tip);
        }
        Command::Ref { name } => {
            let r = reftree::provision(name.as_deref())?;
            println!("{} at {} (commit {})", r.name, r.path.display(), r.commit);
        }
    }
    Ok(())
}
