//! The per-architecture facts of `linux-ref/arches.yaml`, the one table every other
//! module asks (names and aliases, make, cross compilers, images, QEMU machines,
//! consoles, the KVM rule). Loaded once per process.

use crate::model::ArchName;
use crate::reftree::project_root;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Arch {
    #[serde(skip_deserializing)]
    pub name: ArchName,
    /// Other names accepted for --arch.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// What a machine of this architecture calls itself (`uname -m`, Rust's ARCH).
    pub machine_names: Vec<String>,
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
    /// What distributions call the kernel in /boot: `<name>-<release>`.
    pub boot_images: Vec<String>,
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
    /// Whether KVM can run this guest on a host of the same architecture.
    pub kvm_capable: bool,
    /// LAVA's name for it: the `arch` of the qemu device type's template.
    pub lava_arch: String,
    /// The `kernel: type:` of a LAVA deploy to a board (image, zimage, bzimage).
    pub lava_kernel_type: String,
}

/// The table, in the file's order.
#[derive(Debug, Clone, Default)]
pub struct Table {
    rows: Vec<Arch>,
}

impl Table {
    pub fn parse(text: &str) -> Result<Table> {
        let map: serde_yaml::Mapping = serde_yaml::from_str(text)?;
        let mut rows = Vec::new();
        for (k, v) in map {
            let name = k.as_str().ok_or_else(|| anyhow!("a row's name is not a string"))?.to_string();
            let mut a: Arch = serde_yaml::from_value(v).with_context(|| format!("row {name}"))?;
            a.name = name.into();
            rows.push(a);
        }
        Ok(Table { rows })
    }

    pub fn get(&self, name: &str) -> Option<&Arch> {
        self.rows.iter().find(|a| a.name == name)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn names(&self) -> Vec<String> {
        self.rows.iter().map(|a| a.name.to_string()).collect()
    }

    pub fn rows(&self) -> &[Arch] {
        &self.rows
    }

    /// A name or an alias as users type it.
    pub fn by_name(&self, name: &str) -> Option<&Arch> {
        self.rows.iter().find(|a| a.name == name || a.aliases.iter().any(|x| x == name))
    }

    /// The row of a machine that says it is `machine` (`uname -m`).
    pub fn from_machine(&self, machine: &str) -> Option<&Arch> {
        self.rows.iter().find(|a| a.machine_names.iter().any(|m| m == machine))
    }

    /// This host's row.
    pub fn host(&self) -> Option<&Arch> {
        self.from_machine(std::env::consts::ARCH)
    }

    /// Whether KVM could run `arch`'s guest here (whether it really works is for a
    /// probe boot to say).
    pub fn kvm_possible(&self, arch: &Arch) -> bool {
        arch.kvm_capable && self.host().is_some_and(|h| h.name == arch.name)
    }

    /// `x86_64,arm64` (or `all`) to rows, in the order given, each once.
    pub fn parse_list(&self, list: &str) -> Result<Vec<Arch>> {
        let mut out: Vec<Arch> = Vec::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let found: Vec<&Arch> = if name == "all" {
                self.rows.iter().collect()
            } else {
                match self.by_name(name) {
                    Some(a) => vec![a],
                    None => bail!("unknown architecture `{name}`; known: {}", self.names().join(", ")),
                }
            };
            for a in found {
                if !out.contains(a) {
                    out.push(a.clone());
                }
            }
        }
        if out.is_empty() {
            bail!("no architecture given");
        }
        Ok(out)
    }
}

/// `linux-ref/arches.yaml`, read once.
pub fn table() -> Result<&'static Table> {
    static TABLE: OnceLock<std::result::Result<Table, String>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            let path = project_root().join("linux-ref/arches.yaml");
            std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
                .and_then(|t| {
                    Table::parse(&t).map_err(|e| format!("{} is not a valid table: {e:#}", path.display()))
                })
        })
        .as_ref()
        .map_err(|e| anyhow!("{e}"))
}

/// [`Table::parse_list`] over the table.
pub fn parse_list(list: &str) -> Result<Vec<Arch>> {
    table()?.parse_list(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_architecture_has_its_facts_and_fragment() {
        let t = table().unwrap();
        assert_eq!(t.names(), vec!["x86_64", "arm64", "ppc64le"]);
        for a in t.rows() {
            let frag = project_root().join("linux-ref/config").join(&a.fragment);
            assert!(frag.is_file(), "{} has no fragment {}", a.name, frag.display());
            assert!(!a.qemu.is_empty() && !a.console.is_empty() && !a.image.is_empty());
            assert!(!a.machine_names.is_empty(), "{}", a.name);
        }
    }

    #[test]
    fn lists_aliases_and_machine_names() {
        let t = table().unwrap();
        let names =
            |l: &str| t.parse_list(l).unwrap().into_iter().map(|a| a.name.to_string()).collect::<Vec<_>>();
        assert_eq!(names("aarch64,x86_64,arm64"), vec!["arm64", "x86_64"]);
        assert_eq!(names("all"), vec!["x86_64", "arm64", "ppc64le"]);
        assert_eq!(names("ppc64el,amd64"), vec!["ppc64le", "x86_64"]);
        assert!(t.parse_list("riscv").unwrap_err().to_string().contains("unknown architecture `riscv`"));
        // What machines and Rust call themselves, for every host this tool can run on.
        for (m, ours) in
            [("x86_64", "x86_64"), ("aarch64", "arm64"), ("ppc64le", "ppc64le"), ("powerpc64", "ppc64le")]
        {
            assert_eq!(t.from_machine(m).map(|a| a.name.as_str()), Some(ours), "{m}");
        }
        assert!(t.host().is_some(), "this host ({}) has no row", std::env::consts::ARCH);
        // KVM only for a guest of the host's own architecture.
        let kvm: Vec<ArchName> =
            t.rows().iter().filter(|a| t.kvm_possible(a)).map(|a| a.name.clone()).collect();
        assert!(kvm.iter().all(|n| Some(n) == t.host().map(|h| &h.name)), "{kvm:?}");
    }
}
