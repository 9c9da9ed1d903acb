//! `strata build`: the Dockerfile executor and what it needs.
//!
//! - [`executor`] runs the stages and steps of a parsed Dockerfile.
//! - [`cache`] maps a step's key to the image it made.
//! - [`config_steps`] applies the metadata instructions to an image config.
//! - [`context`] is the build context and the sources one COPY selects.
//! - [`copy`] writes them into a container's root (COPY, ADD of archives).
//! - [`dockerignore`] is Docker's `.dockerignore` / COPY glob matching (pure).
//! - [`fetch`] downloads the URLs an ADD names.

pub mod cache;
pub mod config_steps;
pub mod context;
pub mod copy;
pub mod dockerignore;
pub mod executor;
pub mod fetch;
