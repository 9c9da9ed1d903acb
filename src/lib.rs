//! strata: a daemonless, rootless builder of OCI / Docker images.
//!
//! The binary (`src/main.rs`) only calls [`cli::main`]; everything else lives
//! here so whole-binary tests and unit tests can reach it. Data flows one way:
//! `cli` -> (`sandbox`, `layer`, `store`).

pub mod build;
pub mod cli;
pub mod container;
pub mod digest;
pub mod fuzz;
pub mod layer;
pub mod log;
pub mod platform;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod sandbox;
pub mod store;
pub mod sync;
