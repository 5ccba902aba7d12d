//! The guest side, built on the host: `harness/mmharness.c` compiled statically per
//! architecture with the (cross) compiler, and packed with a suite into an initramfs.
//! Both are cached by content, so changing the suite never rebuilds a kernel or the
//! harness, and nothing is rebuilt when nothing changed.

use crate::arch::Arch;
use crate::reftree::{cache_root, project_root};
use crate::suite::{self, Suite};
use crate::{cpio, host};
use anyhow::{Context, Result};
use std::path::PathBuf;
use xshell::{cmd, Shell};

fn blob_id(data: &[u8]) -> String {
    git2::Oid::hash_object(git2::ObjectType::Blob, data).map(|o| o.to_string()).unwrap_or_default()
}

/// The content id of the harness source: part of every plan key, so that a resumed
/// evaluation never mixes boots of two harness versions.
pub fn source_id() -> Result<String> {
    let src = project_root().join("harness/mmharness.c");
    Ok(blob_id(&std::fs::read(&src).with_context(|| format!("cannot read {}", src.display()))?))
}

/// The static harness binary for `arch`.
pub fn build_harness(arch: &Arch) -> Result<PathBuf> {
    let cc = format!("{}gcc", arch.cross_compile);
    host::require(&[(cc.as_str(), arch.compiler_package.as_str())])?;
    host::require_files(&[(arch.libc_static.as_str(), arch.libc_package.as_str())])?;
    let src = project_root().join("harness/mmharness.c");
    let text = std::fs::read(&src).with_context(|| format!("cannot read {}", src.display()))?;
    let sh = Shell::new()?;
    let version = cmd!(sh, "{cc} --version").quiet().read()?;
    let flags = ["-O2", "-Wall", "-static", "-pthread"];
    let mut key = text.clone();
    key.extend_from_slice(version.as_bytes());
    key.extend_from_slice(flags.join(" ").as_bytes());
    let dir = cache_root().join("harness").join(format!("{}-{}", arch.name, &blob_id(&key)[..12]));
    let out = dir.join("mmharness");
    if out.is_file() {
        return Ok(out);
    }
    sh.create_dir(&dir)?;
    let tmp = dir.join("mmharness.tmp");
    cmd!(sh, "{cc} {flags...} -o {tmp} {src} -lm")
        .quiet()
        .run()
        .with_context(|| format!("the harness does not compile for {}", arch.name))?;
    std::fs::rename(&tmp, &out)?;
    Ok(out)
}

/// The initramfs for `arch` running `suite`: /init is the harness.
pub fn initramfs(arch: &Arch, suite: &Suite) -> Result<PathBuf> {
    let harness = std::fs::read(build_harness(arch)?)?;
    let archive = cpio::initramfs(harness, &suite::to_text(suite));
    let id = blob_id(&archive);
    let dir = cache_root().join("initramfs");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{}-{}-{}.cpio", arch.name, suite.name, &id[..12]));
    if !path.is_file() {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &archive)?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(path)
}
