//! The value types every stage shares: where a number came from (accelerator, clock,
//! target) and the cell it belongs to. Serialized exactly as the strings the report
//! always had (`"tcg"`, `"wall"`, `"ssh:root@box"`), so old reports still read. Pure.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// What ran the guest: KVM, QEMU's TCG emulation, or a real machine. (Variants in the
/// order of their names: tables are sorted by it, as they always were.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Metal,
    Tcg,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
            Accel::Metal => "metal",
        }
    }

    /// As the tables print it.
    pub fn upper(self) -> &'static str {
        match self {
            Accel::Kvm => "KVM",
            Accel::Tcg => "TCG",
            Accel::Metal => "METAL",
        }
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// What guest time means: the host's wall clock, or one nanosecond per guest
/// instruction (QEMU `-icount shift=0,sleep=off`), which repeats to well under 0.1%. (Variants in
/// the order of their names, as the tables are sorted.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Clock {
    Instructions,
    Wall,
}

impl Clock {
    pub fn name(self) -> &'static str {
        match self {
            Clock::Wall => "wall",
            Clock::Instructions => "instructions",
        }
    }

    /// In prose: "wall clock", "instruction count".
    pub fn words(self) -> &'static str {
        match self {
            Clock::Wall => "wall clock",
            Clock::Instructions => "instruction count",
        }
    }

    /// `--clock wall|instructions|both`.
    pub fn parse_list(s: &str) -> Option<Vec<Clock>> {
        match s {
            "wall" => Some(vec![Clock::Wall]),
            "instructions" => Some(vec![Clock::Instructions]),
            "both" => Some(vec![Clock::Wall, Clock::Instructions]),
            _ => None,
        }
    }
}

impl fmt::Display for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// Where the boots run: QEMU here, this machine's own hardware, a machine over ssh, or
/// a LAVA lab. Written `qemu`, `metal`, `ssh:<dest>`, `lava:<device type>@<url>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    Qemu,
    Local,
    Ssh(String),
    /// A LAVA lab's devices of one type: (lab URL, device type).
    Lava(String, String),
}

impl Target {
    pub fn name(&self) -> String {
        match self {
            Target::Qemu => "qemu".into(),
            Target::Local => "metal".into(),
            Target::Ssh(d) => format!("ssh:{d}"),
            Target::Lava(url, device_type) => format!("lava:{device_type}@{url}"),
        }
    }

    pub fn parse(s: &str) -> Option<Target> {
        match s {
            "qemu" => Some(Target::Qemu),
            "metal" => Some(Target::Local),
            _ if s.starts_with("lava:") => {
                let (device_type, url) = s["lava:".len()..].split_once('@')?;
                Some(Target::Lava(url.to_string(), device_type.to_string()))
            }
            _ => s.strip_prefix("ssh:").map(|d| Target::Ssh(d.to_string())),
        }
    }

    /// A real machine rather than QEMU.
    pub fn is_machine(&self) -> bool {
        matches!(self, Target::Local | Target::Ssh(_))
    }
}

impl Serialize for Target {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Target, D::Error> {
        let s = String::deserialize(d)?;
        Target::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown target `{s}`")))
    }
}

/// A name that is one of a small set of identifiers, typed so that an architecture is
/// never passed where a variant is meant; serialized as the bare string.
macro_rules! name {
    ($(#[$doc:meta])* $t:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $t(pub String);

        impl $t {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $t {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $t {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // pad: widths and alignment in tables apply as to a str
                f.pad(&self.0)
            }
        }

        impl From<&str> for $t {
            fn from(s: &str) -> Self {
                $t(s.to_string())
            }
        }

        impl From<String> for $t {
            fn from(s: String) -> Self {
                $t(s)
            }
        }

        impl PartialEq<str> for $t {
            fn eq(&self, o: &str) -> bool {
                self.0 == o
            }
        }

        impl PartialEq<&str> for $t {
            fn eq(&self, o: &&str) -> bool {
                self.0 == *o
            }
        }

        impl PartialEq<String> for $t {
            fn eq(&self, o: &String) -> bool {
                &self.0 == o
            }
        }
    };
}

name!(
    /// An architecture as the table names it: `x86_64`, `arm64`, `ppc64le`.
    ArchName
);
name!(
    /// A kernel of a plan: `baseline`, `patched`, `v1`, `v6.12` ...; the plan's first is
    /// the baseline of every comparison.
    Variant
);

/// One table of the report: every comparison measured on the same architecture,
/// accelerator, clock and number of (v)CPUs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cell {
    pub arch: ArchName,
    pub accel: Accel,
    pub clock: Clock,
    pub cpus: u32,
}

impl Cell {
    /// The heading of the cell's table, with the number of boots behind it.
    pub fn title(&self, boots: usize) -> String {
        let clock = self.clock.words();
        match self.accel {
            Accel::Metal => format!(
                "{} -- on the machine itself (metal), {} CPUs, {clock}; {boots} boots of each kernel",
                self.arch, self.cpus
            ),
            Accel::Tcg => format!(
                "{} -- QEMU TCG (emulated: not silicon timings), {} vCPU, {clock}; {boots} boots of each kernel",
                self.arch, self.cpus
            ),
            Accel::Kvm => {
                format!("{} -- QEMU KVM, {} vCPU, {clock}; {boots} boots of each kernel", self.arch, self.cpus)
            }
        }
    }

    /// "TCG, wall clock, 2 vCPU" or "on the machine itself, wall clock, 8 CPUs".
    pub fn place(&self) -> String {
        match self.accel {
            Accel::Metal => format!("on the machine itself, {}, {} CPUs", self.clock.words(), self.cpus),
            a => format!("{}, {}, {} vCPU", a.upper(), self.clock.words(), self.cpus),
        }
    }
}

/// One boot of the plan: which cell, which kernel, which round.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BootKey {
    pub arch: ArchName,
    pub cpus: u32,
    pub clock: Clock,
    pub variant: Variant,
    pub rep: usize,
}

impl fmt::Display for BootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}cpu {} rep {}", self.arch, self.variant, self.cpus, self.clock, self.rep + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialized_as_the_report_always_had_them() {
        assert_eq!(serde_json::to_string(&Accel::Metal).unwrap(), "\"metal\"");
        assert_eq!(serde_json::to_string(&Clock::Instructions).unwrap(), "\"instructions\"");
        for t in [Target::Qemu, Target::Local, Target::Ssh("root@box".into())] {
            let s = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::from_str::<Target>(&s).unwrap(), t, "{s}");
        }
        assert_eq!(serde_json::to_string(&Target::Ssh("root@box".into())).unwrap(), "\"ssh:root@box\"");
        assert!(serde_json::from_str::<Target>("\"lab\"").is_err());
    }

    #[test]
    fn titles() {
        let c = Cell { arch: "x86_64".into(), accel: Accel::Tcg, clock: Clock::Wall, cpus: 1 };
        assert_eq!(serde_json::to_string(&c.arch).unwrap(), "\"x86_64\"");
        assert_eq!(
            c.title(9),
            "x86_64 -- QEMU TCG (emulated: not silicon timings), 1 vCPU, wall clock; 9 boots of each kernel"
        );
        assert_eq!(c.place(), "TCG, wall clock, 1 vCPU");
    }
}
