//! `cargo xtask build`: the base, or with a series the baseline and the patched tree,
//! for each architecture; `--smoke` boots each image to its console.

use crate::apply::ApplyOutcome;
use crate::arch::Arch;
use crate::build::{self, BuildOptions, BuildOutcome};
use crate::mail::MboxFormat;
use crate::series::Choice;
use crate::tree::{self, TreeHandle};
use crate::{apply, input, qemu};
use anyhow::{bail, Result};
use std::path::Path;

pub struct BuildRequest<'a> {
    pub series: Option<(&'a Path, Choice, MboxFormat)>,
    pub tree: &'a TreeHandle,
    pub base: Option<&'a str>,
    pub arches: &'a [Arch],
    pub options: &'a BuildOptions,
    pub smoke: bool,
}

/// Builds everything asked and prints each result; fails when any build failed.
pub fn build_kernels(r: &BuildRequest) -> Result<()> {
    let variants = match r.series {
        Some((file, choice, format)) => {
            let s = input::read_series_as(file, choice, format)?;
            let applied = match apply::apply_to_repo(&r.tree.repo_path, &s, r.base)? {
                ApplyOutcome::Applied(a) => a,
                ApplyOutcome::Failed(f) => bail!("{f}"),
            };
            println!("Applied v{} of \"{}\" as {}", s.version, s.subject(), applied.refname);
            vec![("baseline", applied.base), ("patched", applied.tip)]
        }
        None => vec![("baseline", tree::resolve_commit(r.tree, r.base.unwrap_or("HEAD"))?)],
    };
    let results = build::build_variants(r.tree, &variants, r.arches, r.options);
    let mut failed = 0;
    for b in &results {
        match &b.outcome {
            Ok(BuildOutcome::Built(a)) => {
                let how = if a.reused {
                    format!("stored (built earlier in {:.1} s)", a.meta.seconds)
                } else {
                    format!("built in {:.1} s", a.meta.seconds)
                };
                println!("{:<8} {:<9} {} {how}  {}", b.arch, b.variant, &b.commit[..12], a.image.display());
                if r.smoke {
                    let arch = r.arches.iter().find(|x| x.name == b.arch).expect("built for a given arch");
                    build::check_qemu(arch)?;
                    let banner = qemu::smoke(arch, &a.image, &a.dir.join("smoke-serial.log"))?;
                    println!("{:<8} {:<9} boots: {banner}", b.arch, b.variant);
                }
            }
            Ok(BuildOutcome::Failed(f)) => {
                failed += 1;
                println!("{:<8} {:<9} {} FAILED: {f}", b.arch, b.variant, &b.commit[..12]);
            }
            Err(e) => {
                failed += 1;
                println!("{:<8} {:<9} {} FAILED: {e:#}", b.arch, b.variant, &b.commit[..12]);
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} builds failed", results.len());
    }
    Ok(())
}
