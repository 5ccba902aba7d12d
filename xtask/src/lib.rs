//! The stages of `cargo xtask`; `main.rs` is the command line over them.
//! ARCHITECTURE.md at the top of the repository is the map.

pub mod apply;
pub mod arch;
pub mod backend;
pub mod build;
pub mod cmd;
pub mod compare;
pub mod config;
pub mod cpio;
pub mod diff;
pub mod execute;
pub mod harness;
pub mod host;
pub mod hunks;
pub mod input;
pub mod kconfig;
pub mod lore;
pub mod mail;
pub mod metal;
pub mod model;
pub mod patch;
pub mod plan;
pub mod progress;
pub mod qemu;
pub mod record;
pub mod reftree;
pub mod render;
pub mod report;
pub mod rundir;
pub mod sandbox;
pub mod sequential;
pub mod serial;
pub mod series;
pub mod stats;
pub mod suite;
pub mod tree;
