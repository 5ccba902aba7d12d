//! The per-architecture facts of `linux-ref/arches.yaml`, the one table every other
//! module asks (make, cross compilers, images, QEMU machines, consoles).

use crate::reftree::project_root;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Arch {
    #[serde(skip_deserializing)]
    pub name: String,
    /// ARCH= for make.
    pub make_arch: String,
    /// CROSS_COMPILE= prefix; empty for the host compiler.
    pub cross_compile: String,
    pub compiler_package: String,
    pub libc_package: String,
    /// The static libc the harness links against (shipped by libc_package).
    pub libc_static: String,
    /// Kconfig fragment in linux-ref/config/, merged after common.config.
    pub fragment: String,
    pub make_target: String,
    /// The image QEMU boots, relative to the build directory.
    pub image: String,
    pub qemu: String,
    pub qemu_package: String,
    pub machine: String,
    pub cpu: String,
    pub console: String,
    /// Extra kernel command line for the deterministic (-icount) clock.
    pub icount_cmdline: String,
    /// Whether KVM can run this guest on a matching host.
    pub kvm_capable: bool,
}

pub const ALL: [&str; 3] = ["x86_64", "arm64", "ppc64le"];

pub fn table() -> Result<BTreeMap<String, Arch>> {
    let path = project_root().join("linux-ref/arches.yaml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut map: BTreeMap<String, Arch> =
        serde_yaml::from_str(&text).with_context(|| format!("{} is not a valid table", path.display()))?;
    for (k, v) in map.iter_mut() {
        v.name = k.clone();
    }
    Ok(map)
}

/// `x86_64,arm64` (or `all`) to the table's rows, in the order given.
pub fn parse_list(list: &str) -> Result<Vec<Arch>> {
    let table = table()?;
    let mut out: Vec<Arch> = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if name == "all" {
            out.extend(ALL.iter().map(|n| table[*n].clone()));
            continue;
        }
        let alias = match name {
            "x86" | "amd64" => "x86_64",
            "aarch64" => "arm64",
            "ppc64el" | "powerpc64le" => "ppc64le",
            n => n,
        };
        match table.get(alias) {
            Some(a) if !out.contains(a) => out.push(a.clone()),
            Some(_) => {}
            None => bail!(
                "unknown architecture `{name}`; known: {}",
                table.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        }
    }
    if out.is_empty() {
        bail!("no architecture given");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_architecture_has_its_facts_and_fragment() {
        let t = table().unwrap();
        assert_eq!(t.keys().cloned().collect::<Vec<_>>(), vec!["arm64", "ppc64le", "x86_64"]);
        for a in t.values() {
            let frag = project_root().join("linux-ref/config").join(&a.fragment);
            assert!(frag.is_file(), "{} has no fragment {}", a.name, frag.display());
            assert!(!a.qemu.is_empty() && !a.console.is_empty() && !a.image.is_empty());
        }
    }

    #[test]
    fn lists_and_aliases() {
        let names = |l: &str| parse_list(l).unwrap().into_iter().map(|a| a.name).collect::<Vec<_>>();
        assert_eq!(names("aarch64,x86_64,arm64"), vec!["arm64", "x86_64"]);
        assert_eq!(names("all"), vec!["x86_64", "arm64", "ppc64le"]);
        assert!(parse_list("riscv").unwrap_err().to_string().contains("unknown architecture `riscv`"));
    }
}
