//! The stages of `cargo xtask`; `main.rs` is the command line over them.
//! ARCHITECTURE.md at the top of the repository is the map.

pub mod apply;
pub mod arch;
pub mod build;
pub mod compare;
pub mod cpio;
pub mod diff;
pub mod email;
pub mod eval;
pub mod harness;
pub mod host;
pub mod html;
pub mod input;
pub mod kconfig;
pub mod mail;
pub mod metal;
pub mod patch;
pub mod qemu;
pub mod reftree;
pub mod report;
pub mod run;
pub mod serial;
pub mod series;
pub mod stats;
pub mod suite;
pub mod tree;
