//! The stages of `cargo xtask`; `main.rs` is the command line over them.
//! ARCHITECTURE.md at the top of the repository is the map.

pub mod apply;
pub mod host;
pub mod input;
pub mod mail;
pub mod patch;
pub mod reftree;
pub mod series;
